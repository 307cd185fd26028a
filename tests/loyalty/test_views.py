"""The loyalty pages: overview, member look-up, member page with statement and adjustments, enrolment,
programme and tier settings; scoped per user, bad input refused with nothing written."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm.audit.models import AuditEvent
from loyalty import services
from loyalty.models import Member, PointsEntry, Programme, Tier
from tests.factories import CustomerFactory

from .conftest import buy, member_with_balance


@pytest.fixture(autouse=True)
def _english(users):
    for user in users.values():
        type(user).objects.filter(pk=user.pk).update(language="en")


def test_overview_shows_members_liability_and_tiers_in_the_users_scope(
    programme, sales_client, sales_user, manager_client
):
    Programme.objects.filter(pk=1).update(redemption_points=100, redemption_value="1.00")
    member_with_balance(1000, owner=sales_user)
    member_with_balance(3000)
    mine = sales_client.get(reverse("loyalty:index"))
    assert mine.status_code == 200
    assert mine.context["figures"].members == 1 and mine.context["figures"].points == 1000
    assert "¥10.00" in mine.content.decode()
    everyone = manager_client.get(reverse("loyalty:index"))
    figures = everyone.context["figures"]
    assert (figures.members, figures.points, str(figures.liability)) == (2, 4000, "40.00")
    base = next(row for row in figures.tiers if row.tier and row.tier.rank == 0)
    assert base.members == 2 and f"?tier={base.tier.pk}" in everyone.content.decode()


def test_lookup_by_phone_number_and_name_within_scope(programme, sales_client, sales_user, sales_user2):
    member = member_with_balance(10, owner=sales_user, name="陈大文", phone="+8613900001111")
    hidden = member_with_balance(10, owner=sales_user2, name="陈小明", phone="+8613900002222")
    url = reverse("loyalty:members")
    queries = ("13900001111", "+86 139 0000 1111", member.number, member.number.lower(), "陈大文")
    for query in (*queries, "chendawen"):
        response = sales_client.get(url, {"q": query})
        assert [m.pk for m in response.context["results"]] == [member.pk], query
    assert sales_client.get(url, {"q": "13900002222"}).context["results"] == []
    assert sales_client.get(url, {"q": hidden.number}).context["results"] == []
    response = sales_client.get(url, {"q": "x" * 500})
    assert response.status_code == 200 and response.context["results"] == []


def test_lookup_htmx_returns_the_fragment(programme, sales_client, sales_user):
    member = member_with_balance(10, owner=sales_user, name="Lookup Person")
    response = sales_client.get(reverse("loyalty:members"), {"q": "lookup person"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "<html" not in body and member.number in body


def test_member_page_statement_pages_by_keyset_with_a_fixed_number_of_queries(
    programme, sales_client, sales_user
):
    member = member_with_balance(0, owner=sales_user)
    for n in range(30):
        services.points_adjust(actor=sales_user, member=member, points=n + 1, reason=f"r{n}")
    url = reverse("loyalty:member", args=[member.pk])
    with CaptureQueriesContext(connection) as first:
        response = sales_client.get(url)
    statement = response.context["statement"]
    assert len(statement.entries) == 25 and statement.next_before is not None
    assert [e.reason for e in statement.entries[:2]] == ["r29", "r28"]
    older = sales_client.get(url, {"before": statement.next_before})
    assert [e.reason for e in older.context["statement"].entries] == [f"r{n}" for n in range(4, -1, -1)]
    assert older.context["statement"].next_before is None
    # More entries, same number of queries.
    for n in range(30, 60):
        services.points_adjust(actor=sales_user, member=member, points=1, reason=f"r{n}")
    with CaptureQueriesContext(connection) as second:
        sales_client.get(url)
    assert len(second) == len(first) <= 30


def test_another_reps_member_answers_404(programme, sales_client, sales_user2):
    member = member_with_balance(10, owner=sales_user2)
    assert sales_client.get(reverse("loyalty:member", args=[member.pk])).status_code == 404
    response = sales_client.post(
        reverse("loyalty:member_adjust", args=[member.pk]), {"points": "5", "reason": "x"}
    )
    assert response.status_code == 404
    assert not PointsEntry.objects.filter(kind="adjust", reason="x").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"points": "501", "reason": "big"}, "need a manager"),
        ({"points": "-5", "reason": "too many"}, "Only 0 points"),
        ({"points": "0", "reason": "zero"}, "other than zero"),
        ({"points": "1e9", "reason": "exp"}, ""),
        ({"points": "10", "reason": ""}, "required"),
        ({"points": "10", "reason": "x" * 301}, "300"),
    ],
)
def test_bad_adjustments_by_sales_write_nothing(programme, sales_client, sales_user, data, message):
    member = member_with_balance(0, owner=sales_user)
    response = sales_client.post(reverse("loyalty:member_adjust", args=[member.pk]), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not PointsEntry.objects.filter(member=member).exists()
    assert not AuditEvent.objects.filter(action="loyalty.points_adjusted").exists()


def test_manager_adjusts_above_the_limit(programme, manager_client, sales_user):
    member = member_with_balance(0, owner=sales_user)
    response = manager_client.post(
        reverse("loyalty:member_adjust", args=[member.pk]), {"points": "5000", "reason": "VIP gesture"}
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.balance == 5000


def test_enrol_from_the_customer_page(programme, sales_client, sales_user):
    customer = CustomerFactory(owner=sales_user)
    page = sales_client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    assert 'data-testid="enrol"' in page
    response = sales_client.post(reverse("loyalty:enrol", args=[customer.pk]))
    member = Member.objects.get(customer=customer)
    assert response.status_code == 302 and response["Location"] == reverse("loyalty:member", args=[member.pk])
    page = sales_client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    assert member.number in page and 'data-testid="loyalty-panel"' in page


def test_admin_saves_the_programme_and_a_bad_value_is_refused(programme, admin_client):
    url = reverse("loyalty:settings")
    form = admin_client.get(url).context["form"]
    data = {name: form[name].value() for name in form.fields}
    data = {
        k: ("on" if v is True else v) for k, v in data.items() if not (v is None or v is False or v == [])
    }
    data.update(
        points_per_unit="2",
        excluded_categories="Gift cards, Gift cards, Deposits",
        earning_channels=["store"],
    )
    saved = admin_client.post(url, data)
    assert saved.status_code == 302, saved.context["form"].errors
    programme.refresh_from_db()
    assert programme.points_per_unit == 2 and programme.excluded_categories == ["Gift cards", "Deposits"]
    assert programme.earning_channels == ["store"]
    assert AuditEvent.objects.filter(action="loyalty.programme_updated").exists()
    bad = admin_client.post(
        url,
        {
            **data,
            "points_per_unit": "1e400000",
            "campaign_starts": "2026-12-10",
            "campaign_ends": "2026-12-01",
        },
    )
    assert bad.status_code == 400
    programme.refresh_from_db()
    assert programme.points_per_unit == 2


def test_admin_adds_and_edits_tiers(programme, admin_client):
    response = admin_client.post(
        reverse("loyalty:tier_new"), {"name": "黑金", "rank": "4", "threshold": "100000", "multiplier": "3"}
    )
    assert response.status_code == 302
    tier = Tier.objects.get(rank=4)
    duplicate = admin_client.post(
        reverse("loyalty:tier_new"), {"name": "Again", "rank": "4", "threshold": "1", "multiplier": "1"}
    )
    assert duplicate.status_code == 400 and Tier.objects.filter(rank=4).count() == 1
    response = admin_client.post(
        reverse("loyalty:tier_edit", args=[tier.pk]),
        {"name": "黑金卡", "rank": "4", "threshold": "90000", "multiplier": "3"},
    )
    assert response.status_code == 302
    tier.refresh_from_db()
    assert tier.name == "黑金卡"


def test_customer_page_panel_and_timeline(programme, sales_client, sales_user):
    customer = CustomerFactory(owner=sales_user)
    buy(customer, "1500", days_ago=1)
    services.points_earn_for_orders()
    page = sales_client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    assert 'data-testid="loyalty-panel"' in page and "银卡" in page and "1,500" in page
    timeline = sales_client.get(reverse("customers:timeline", args=[customer.pk])).content.decode()
    assert "Points Earned: +1500" in timeline and "Tier: 普通 → 银卡" in timeline


def test_list_filters_and_columns(programme, manager_client):
    rich = member_with_balance(800, name="Rich Member").customer
    member_with_balance(50, name="Poor Member")
    CustomerFactory(name="Not Member")
    url = reverse("customers:list")
    names = lambda response: {c.name for c in response.context["page"].rows}  # noqa: E731
    assert names(manager_client.get(url, {"points_min": "100"})) == {rich.name}
    assert names(manager_client.get(url, {"points_max": "100"})) == {"Poor Member"}
    assert names(manager_client.get(url, {"tier": "none"})) == {"Not Member"}
    base = Tier.objects.get(rank=0)
    assert names(manager_client.get(url, {"tier": str(base.pk)})) == {"Rich Member", "Poor Member"}
    since = (timezone.localdate() - timedelta(days=1)).isoformat()
    assert names(manager_client.get(url, {"member_since": since})) == {"Rich Member", "Poor Member"}
    manager_client.post(reverse("customers:columns"), {"columns": ["tier", "points", "member_since"]})
    response = manager_client.get(url)
    body = response.content.decode()
    assert "普通" in body and "800" in body
    rows = {row.name: row for row in response.context["page"].rows}
    joined = Member.objects.get(customer=rich).joined_at
    assert timezone.localdate(joined).isoformat() in body and rows["Not Member"].pk
    # Sorted by member since, newest first: the later member comes first, non-members last.
    newest = manager_client.get(url, {"sort": "-member_since"})
    assert [c.name for c in newest.context["page"].rows][:2] == ["Poor Member", "Rich Member"]


def test_segment_rules_can_use_tier_and_points(programme):
    from customers.models import Customer
    from segmentation.rules import rules_to_q

    rich = member_with_balance(800).customer
    member_with_balance(50)
    rules = {
        "op": "and",
        "rules": [{"op": "and", "rules": [{"field": "loyalty_points", "op": "gte", "value": 100}]}],
    }
    assert list(Customer.objects.filter(rules_to_q(rules)).values_list("pk", flat=True)) == [rich.pk]
    base = Tier.objects.get(rank=0)
    rules = {
        "op": "and",
        "rules": [{"op": "and", "rules": [{"field": "loyalty_tier", "op": "in", "value": [base.pk]}]}],
    }
    assert Customer.objects.filter(rules_to_q(rules)).count() == 2


@pytest.mark.parametrize("who", ["manager", "sales"])
def test_overview_leaves_out_the_members_of_customers_in_the_bin(
    programme, sales_client, sales_user, manager_client, who
):
    """The binned customers' members and their points entries are left out by id (not through a join
    with every customer): members, points and the points earned in the last 30 days, both roles."""
    from django.db import transaction

    from customers.models import Customer
    from loyalty.services import credit, lock_member

    live = member_with_balance(1000, owner=sales_user)
    binned = member_with_balance(3000, owner=sales_user)
    for member, points in ((live, 40), (binned, 900)):
        with transaction.atomic():
            credit(lock_member(member), kind=PointsEntry.Kind.BONUS, points=points, source="user", reason="t")
    Customer.objects.filter(pk=binned.customer_id).update(deleted_at=timezone.now())
    client = manager_client if who == "manager" else sales_client
    figures = client.get(reverse("loyalty:index")).context["figures"]
    assert (figures.members, figures.active, figures.points, figures.earned_30d) == (1, 1, 1040, 40)
    assert sum(row.members for row in figures.tiers) == 1
