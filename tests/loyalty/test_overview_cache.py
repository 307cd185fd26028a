"""The loyalty overview's figures are kept like a report's (crm.reportcache, the report
"loyalty-overview"): the same page again reads no points entry; an adjustment, a tier renamed or the
point value changed through the services shows at once; a slow company's stale figures are served at
once, labelled "as of", with one background refresh; each scope keeps its own entry."""

import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dashboards.tasks import report_refresh_task
from loyalty import services
from loyalty.models import Tier
from tests.dashboards.test_stale_figures import SLOW, _rewrite

from .conftest import member_with_balance

AS_OF = 'data-testid="figures-as-of"'


def _figures(client):
    response = client.get(reverse("loyalty:index"))
    assert response.status_code == 200
    return response.context["figures"], response.content.decode()


@pytest.fixture
def programme(request, django_capture_on_commit_callbacks):
    """The loyalty tests' programme and tiers, written as if their transaction had committed (its
    on-commit replacement of the data version run): else the test transaction keeps that replacement
    waiting, and no later change in the test replaces the version again."""
    with django_capture_on_commit_callbacks(execute=True):
        return request.getfixturevalue("programme")


def test_the_overview_is_kept_until_a_change_then_right_at_once(
    programme,
    manager_client,
    manager_user,
    admin_user,
    sales_client,
    sales_user,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):  # as when their transactions commit
        member = member_with_balance(1000)
        member_with_balance(300, owner=sales_user)
    figures, _html = _figures(manager_client)
    assert (figures.members, figures.points) == (2, 1300)
    assert _figures(sales_client)[0].points == 300  # the rep's own entry
    with CaptureQueriesContext(connection) as captured:
        figures, _html = _figures(manager_client)
    assert figures.points == 1300
    assert not [q for q in captured if "loyalty_pointsentry" in q["sql"]], "no ledger read again"
    with django_capture_on_commit_callbacks(execute=True):
        services.points_adjust(actor=manager_user, member=member, points=50, reason="goodwill")
    assert _figures(manager_client)[0].points == 1350
    assert _figures(sales_client)[0].points == 300

    base = Tier.objects.order_by("rank").first()
    with django_capture_on_commit_callbacks(execute=True):
        services.tier_save(actor=admin_user, tier=base, data={"name": "青铜"})
    assert "青铜" in _figures(manager_client)[1]
    with django_capture_on_commit_callbacks(execute=True):
        services.programme_update(
            actor=admin_user, data={"redemption_points": 100, "redemption_value": "2.00"}
        )
    assert _figures(manager_client)[0].liability == Decimal("27.00")  # 1,350 points at ¥0.02


def test_a_slow_overview_is_served_stale_with_one_refresh(
    programme, manager_client, manager_user, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # as when its transaction commits
        member = member_with_balance(1000)
    assert _figures(manager_client)[0].points == 1000
    _rewrite("loyalty-overview", seconds=SLOW)
    with django_capture_on_commit_callbacks(execute=True):
        services.points_adjust(actor=manager_user, member=member, points=20, reason="goodwill")
    with django_capture_on_commit_callbacks(execute=True):
        figures, html = _figures(manager_client)
    assert figures.points == 1000 and AS_OF in html
    assert [(m["name"], m["scope"]) for m in sent] == [("loyalty-overview", "all")]
    poll = re.search(r'id="figures-as-of"[^>]*hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    polled = manager_client.get(poll, headers={"HX-Request": "true", "HX-Trigger": "figures-as-of"})
    assert polled.status_code == 204
    assert report_refresh_task(**sent[0]) == "refreshed"
    figures, html = _figures(manager_client)
    assert figures.points == 1020 and AS_OF not in html


def test_the_report_page_is_kept_per_period_until_a_change_then_stale_while_it_is_refreshed(
    programme, manager_client, manager_user, sent, django_capture_on_commit_callbacks
):
    url = reverse("loyalty:reports")
    with django_capture_on_commit_callbacks(execute=True):
        member = member_with_balance(1000)

    def redeemed(period: int) -> tuple[int, str]:
        response = manager_client.get(url, {"period": period})
        assert response.status_code == 200
        return response.context["report"].redeemed, response.content.decode()

    assert redeemed(12)[0] == 0
    with django_capture_on_commit_callbacks(execute=True):
        services.points_redeem(actor=manager_user, member=member, points=100)
    assert redeemed(12)[0] == 100 and redeemed(24)[0] == 100  # right at once, each period its own entry
    with CaptureQueriesContext(connection) as captured:
        assert redeemed(12)[0] == 100
    assert not [q for q in captured if "loyalty_pointsentry" in q["sql"]], "kept: no ledger read again"

    _rewrite("loyalty-report", seconds=SLOW)
    with django_capture_on_commit_callbacks(execute=True):
        services.points_redeem(actor=manager_user, member=member, points=50)
    with django_capture_on_commit_callbacks(execute=True):
        shown, html = redeemed(12)
    assert shown == 100 and AS_OF in html
    assert [(m["name"], m["params"]["period"]) for m in sent] == [("loyalty-report", 12)]
    assert report_refresh_task(**sent[0]) == "refreshed"
    assert redeemed(12)[0] == 150


def test_a_sweep_that_earns_makes_the_figures_stale_and_one_that_finds_nothing_does_not(
    programme, django_capture_on_commit_callbacks
):
    """The earning sweep runs after every order and import, and writes set-based (no row signal): it
    says whether it wrote anything, and only then are the cached figures stale."""
    from customers.models import Order
    from dashboards.caching import data_version
    from loyalty.models import PointsEntry
    from tests.factories import CustomerFactory

    from .conftest import buy

    def sweep(customer_ids):
        with django_capture_on_commit_callbacks(execute=True):  # as in its task, each batch committed
            services.points_earn_for_orders(customer_ids=customer_ids)

    customer = CustomerFactory()
    with django_capture_on_commit_callbacks(execute=True):
        order = buy(customer, "200.00")
    before = data_version()
    sweep([customer.pk])
    assert PointsEntry.objects.filter(member__customer=customer, kind=PointsEntry.Kind.EARN).exists()
    earned = data_version()
    assert earned != before, "points earned: the figures are stale"
    sweep([customer.pk])
    sweep(None)
    assert data_version() == earned, "nothing left to earn: the figures stay"
    Order.objects.filter(pk=order.pk).update(status=Order.Status.REFUNDED, refunded_total=order.total)
    sweep([customer.pk])
    assert data_version() != earned, "a refund's points taken back: stale again"
