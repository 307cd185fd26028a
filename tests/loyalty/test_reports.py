"""Loyalty reports (issue 12): earn and burn per month, liability over time, redemption rate, tier
movements, members' repeat-purchase rate against non-members, and the members behind each figure;
managers and admins only for the report, drill-downs scoped per user, query counts fixed, tenants
apart, bad parameters refused."""

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from dashboards.caching import data_changed
from loyalty import reports, services
from loyalty.models import Member, PointsEntry, Programme, TierChange
from tests.factories import CustomerFactory

from .conftest import buy, member_with_balance


@pytest.fixture(autouse=True)
def _english(users):
    for user in users.values():
        type(user).objects.filter(pk=user.pk).update(language="en")


def _in_month(months_back: int, day: int = 10) -> datetime:
    """Noon on `day` of the month `months_back` before the current one (tenant's time zone)."""
    month = reports._months(24)[-1 - months_back]
    return timezone.make_aware(datetime.combine(month.replace(day=day), datetime.min.time())) + timedelta(
        hours=12
    )


def _month_key(months_back: int) -> str:
    return reports._months(24)[-1 - months_back].strftime("%Y-%m")


@pytest.fixture
def history(programme, manager_user, sales_user):
    """A member (the sales rep's) who earned 500 two months ago and 300 this month, then redeemed 200
    and lost 100 to an adjustment this month; another member with an opening balance of 1,000."""
    Programme.objects.filter(pk=1).update(redemption_points=100, redemption_value=Decimal("1.00"))
    customer = CustomerFactory(owner=sales_user, name="Report Person")
    member = services.member_enrol(actor=None, customer=customer, joined_at=_in_month(3))
    buy(customer, "500.00", placed_at=_in_month(2))
    buy(customer, "300.00", placed_at=_in_month(0, day=1) + timedelta(hours=1))
    services.points_earn_for_orders()
    services.points_redeem(actor=manager_user, member=member, points=200, reason="tea cup")
    services.points_adjust(actor=manager_user, member=member, points=-100, reason="correction")
    other = member_with_balance(0)
    PointsEntry.objects.create(
        member=other, kind="opening", points=1000, balance_after=1000, remaining=1000, source="import",
        source_key="opening:test:1", occurred_at=timezone.now(),
    )  # fmt: skip
    Member.objects.filter(pk=other.pk).update(balance=1000)
    member.refresh_from_db()
    return {"member": member, "other": other}


def test_earn_and_burn_per_month_liability_and_redemption_rate(history, manager_user):
    report = reports.loyalty_report(user=manager_user, period=12)
    assert len(report.flows) == 12 and report.flows[-1].month == timezone.localdate().replace(day=1)
    by_month = {row.month.strftime("%Y-%m"): row for row in report.flows}
    two_ago, now = by_month[_month_key(2)], by_month[_month_key(0)]
    assert (two_ago.earned, two_ago.redeemed, two_ago.outstanding) == (500, 0, 500)
    assert (now.earned, now.redeemed, now.adjusted, now.opening) == (300, 200, -100, 1000)
    # Outstanding points at each month's end: the ledger's running sum; valued at ¥0.01 a point.
    assert now.outstanding == 500 + 300 - 200 - 100 + 1000 == report.flows[-1].outstanding
    assert now.liability == Decimal("15.00") and report.liability == Decimal("15.00")
    assert by_month[_month_key(1)].outstanding == 500
    # Opening balances are neither earned in the period nor part of the redemption rate.
    assert (report.earned, report.redeemed, report.redemption_percent) == (800, 200, 25.0)
    assert (report.members, report.redeemers, report.redeemer_percent) == (2, 1, 50.0)
    assert sum(PointsEntry.objects.values_list("points", flat=True)) == now.outstanding


def test_a_shorter_period_is_bounded_and_an_unknown_one_is_the_default(history, manager_user):
    assert reports.clean_period("24") == 24 and reports.clean_period("1000000") == 12
    assert reports.clean_period("x") == 12 and reports.clean_period(None) == 12
    report = reports.loyalty_report(user=manager_user, period=24)
    assert len(report.flows) == 24 and len(report.movements) == 24


def test_tier_movements_per_month(history, manager_user, programme):
    member = history["member"]
    joined = TierChange.objects.filter(member=member, reason="joined")
    assert joined.exists()
    # The 800 spend put the member in 银卡 (threshold 1,000)? No: 800 < 1,000; buy more to upgrade.
    buy(member.customer, "400.00")
    services.points_earn_for_orders()
    report = reports.loyalty_report(user=manager_user)
    this_month = report.movements[-1]
    assert this_month.upgrade == 1
    assert (
        this_month.joined
        == TierChange.objects.filter(
            reason="joined", at__gte=reports._aware(report.movements[-1].month)
        ).count()
    )


def test_repeat_purchase_rate_of_members_against_non_members(programme, manager_user):
    Programme.objects.filter(pk=1).update(auto_enrol=False)
    twice, once = CustomerFactory(), CustomerFactory()
    for customer in (twice, once):
        services.member_enrol(actor=None, customer=customer)
    buy(twice, "10.00", days_ago=40)
    buy(twice, "10.00", days_ago=5)
    buy(once, "10.00", days_ago=5)
    others = [CustomerFactory() for _ in range(3)]
    buy(others[0], "10.00", days_ago=3)
    buy(others[0], "10.00", days_ago=2)
    buy(others[1], "10.00", days_ago=2)
    buy(others[2], "10.00", days_ago=2)
    buy(others[2], "10.00", days_ago=500)  # before the period: a one-order buyer in it
    buy(CustomerFactory(), "10.00", days_ago=2, status="cancelled")  # not a paid order
    report = reports.loyalty_report(user=manager_user)
    assert (report.repeat_members.buyers, report.repeat_members.repeaters) == (2, 1)
    assert (report.repeat_others.buyers, report.repeat_others.repeaters) == (3, 1)
    assert report.repeat_members.percent == 50.0 and report.repeat_others.percent == 33.3
    drill = reports.Drill(figure="repeaters")
    assert [m.customer_id for m in reports.drill_members(user=manager_user, drill=drill)] == [twice.pk]


def test_the_report_page_for_managers_with_links_to_members_and_a_fixed_query_count(
    history, manager_client, sales_client, admin_client
):
    url = reverse("loyalty:reports")
    assert sales_client.get(url).status_code == 403
    assert admin_client.get(url).status_code == 200
    manager_client.get(url)  # the session and the user's first-request reads
    data_changed()  # the page's figures are kept like a report's: computed again after a change
    with CaptureQueriesContext(connection) as first:
        response = manager_client.get(url, {"period": "12"})
    body = response.content.decode()
    assert response.status_code == 200
    assert f"figure=redeemed&amp;month={_month_key(0)}" in body and "figure=repeaters" in body
    assert 'id="loyalty-report-data"' in body and "chart.umd.min.js" in body
    assert 'data-testid="flow-table"' in body  # the table under the chart holds the same figures
    # Many more members and entries: the same number of queries.
    for n in range(15):
        extra = member_with_balance(10 + n)
        services.points_redeem(actor=None, member=extra, points=5)
    data_changed()
    with CaptureQueriesContext(connection) as second:
        manager_client.get(url, {"period": "24"})
    assert len(second) == len(first), [q["sql"][:90] for q in second.captured_queries]


def test_drill_down_lists_the_members_of_a_figure_in_the_users_scope(
    history, sales_client, sales_user, manager_client
):
    url = reverse("loyalty:report_members")
    member, other = history["member"], history["other"]
    query = {"figure": "redeemed", "month": _month_key(0)}
    managers = manager_client.get(url, query)
    assert [m.pk for m in managers.context["page"].members] == [member.pk]
    assert "Members who redeemed points in" in managers.content.decode()
    opening = manager_client.get(url, {"figure": "opening", "month": _month_key(0)})
    assert [m.pk for m in opening.context["page"].members] == [other.pk]
    assert [m.pk for m in manager_client.get(url, {"figure": "earned", "month": _month_key(2)}).context[
        "page"].members] == [member.pk]  # fmt: skip
    assert manager_client.get(url, {"figure": "earned", "month": _month_key(1)}).context["page"].members == []
    # The sales rep sees their own member, not the other one (not theirs).
    holding = sales_client.get(url, {"figure": "outstanding"})
    assert [m.pk for m in holding.context["page"].members] == [member.pk]
    assert other.customer.name not in holding.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        {"figure": "everything"},
        {"figure": "earned"},  # a monthly figure needs its month
        {"figure": "earned", "month": "2026-13"},
        {"figure": "earned", "month": "x" * 5000},
        {"figure": "tier", "tier": "1 OR 1=1"},
    ],
)
def test_drill_down_refuses_bad_parameters(programme, manager_client, query):
    assert manager_client.get(reverse("loyalty:report_members"), query).status_code == 404


def test_drill_down_pages_by_keyset_with_a_fixed_query_count(programme, manager_client, manager_user):
    members = [member_with_balance(10) for _ in range(60)]
    url = reverse("loyalty:report_members")
    manager_client.get(url)  # the session and the user's first-request reads
    data_changed()  # the page's figures are kept like a report's: computed again after a change
    with CaptureQueriesContext(connection) as first:
        page = manager_client.get(url, {"figure": "outstanding"}).context["page"]
    assert [m.pk for m in page.members] == [m.pk for m in members[::-1][:50]]
    rest = manager_client.get(url, {"figure": "outstanding", "after": page.next_after}).context["page"]
    assert [m.pk for m in rest.members] == [m.pk for m in members[::-1][50:]] and rest.next_after is None
    for _ in range(40):
        member_with_balance(10)
    with CaptureQueriesContext(connection) as second:
        manager_client.get(url, {"figure": "outstanding"})
    assert len(second) == len(first)


def test_tier_drill_down_and_no_leak_between_tenants(history, manager_user, tenant_b):
    base = history["member"].tier
    drill = reports.clean_drill({"figure": "tier", "tier": str(base.pk)})
    assert {m.pk for m in reports.drill_members(user=manager_user, drill=drill)} == {
        history["member"].pk,
        history["other"].pk,
    }
    mine = reports.loyalty_report(user=manager_user)
    with schema_context(tenant_b.schema_name):
        services.programme_get()
        stranger = member_with_balance(0)
        services.points_adjust(actor=None, member=stranger, points=400, reason="beta")
        theirs = reports.loyalty_report(user=manager_user)
        assert theirs.flows[-1].adjusted == 400 and theirs.flows[-1].earned == 0
    again = reports.loyalty_report(user=manager_user)
    assert [row.adjusted for row in again.flows] == [row.adjusted for row in mine.flows]
    assert again.flows[-1].outstanding == mine.flows[-1].outstanding
