"""The managers' reports against a small hand-computed data set: every overview figure, its
comparison, the list behind it (same count), cohort percentages, segment migration; sales users see
their own customers only; another tenant's data never counts."""

import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboards import analyses, figures
from dashboards.periods import Period, change_percent, parse_selection
from dashboards.scope import Filters, Scope, parse_filters
from dashboards.team import team_rows
from interactions.followups.models import FollowUp
from interactions.service.models import Ticket
from interactions.surveys.models import SurveyResponse, SurveyTemplate
from interactions.surveys.services import _invite
from loyalty.models import Member, Tier
from loyalty.selectors import points_outstanding
from loyalty.services import programme_get
from segmentation.models import CustomerScore, LifecycleTransition, SegmentTransition
from segmentation.selectors import score_totals
from tests.factories import CustomerFactory, OrderFactory

JANUARY = {"range": "custom", "from": "2026-01-01", "to": "2026-01-31", "compare": "previous"}


def _at(tenant, day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=ZoneInfo(tenant.time_zone))


@pytest.fixture
def zone(tenant):
    with timezone.override(ZoneInfo(tenant.time_zone)):
        yield


@pytest.fixture
def data(tenant, sales_user, sales_user2):
    """A (sales): Dec 100; Jan 50 and 30 with 10 refunded. B (sales2): Jan 200 (new). C (sales): Jan 40
    and 60 (new, repeat). D (sales2): Nov 80, churned on 18 Jan. E: only a cancelled January order.
    F: a January order but in the recycle bin."""
    a = CustomerFactory(name="A", owner=sales_user, source="store")
    b = CustomerFactory(name="B", owner=sales_user2, source="website")
    c = CustomerFactory(name="C", owner=sales_user, source="website")
    d = CustomerFactory(name="D", owner=sales_user2, source="store")
    e = CustomerFactory(name="E", owner=sales_user)
    f = CustomerFactory(name="F", owner=sales_user, deleted_at=timezone.now())
    OrderFactory(customer=a, total=Decimal("100"), placed_at=_at(tenant, date(2025, 12, 10)))
    OrderFactory(customer=a, total=Decimal("50"), placed_at=_at(tenant, date(2026, 1, 5)), channel="online")
    OrderFactory(
        customer=a,
        total=Decimal("30"),
        refunded_total=Decimal("10"),
        status="partially_refunded",
        placed_at=_at(tenant, date(2026, 1, 20)),
    )
    OrderFactory(customer=b, total=Decimal("200"), placed_at=_at(tenant, date(2026, 1, 15)))
    OrderFactory(customer=c, total=Decimal("40"), placed_at=_at(tenant, date(2026, 1, 3)))
    OrderFactory(customer=c, total=Decimal("60"), placed_at=_at(tenant, date(2026, 1, 25)))
    OrderFactory(customer=d, total=Decimal("80"), placed_at=_at(tenant, date(2025, 11, 20)))
    OrderFactory(
        customer=e, total=Decimal("999"), status="cancelled", placed_at=_at(tenant, date(2026, 1, 9))
    )
    OrderFactory(customer=f, total=Decimal("777"), placed_at=_at(tenant, date(2026, 1, 9)))
    # The day boundary: 23:30 local on 31 January is in January; 00:30 on 1 February is not.
    OrderFactory(
        customer=b, total=Decimal("5"), placed_at=_at(tenant, date(2026, 2, 1), 0).replace(minute=30)
    )
    LifecycleTransition.objects.create(
        customer=d, from_stage="new", to_stage="churned", at=_at(tenant, date(2026, 1, 18))
    )
    SegmentTransition.objects.create(
        customer=a, from_segment="", to_segment="new", at=_at(tenant, date(2025, 12, 10))
    )
    SegmentTransition.objects.create(
        customer=a, from_segment="new", to_segment="promising", at=_at(tenant, date(2025, 12, 20))
    )
    SegmentTransition.objects.create(
        customer=a, from_segment="promising", to_segment="loyal", at=_at(tenant, date(2026, 1, 21))
    )
    SegmentTransition.objects.create(
        customer=c, from_segment="", to_segment="new", at=_at(tenant, date(2026, 1, 4))
    )
    # Follow-ups completed in January: A's on time, C's two days late.
    due = _at(tenant, date(2026, 1, 10))
    FollowUp.objects.create(
        customer=a, assignee=sales_user, due_at=due, title="on time", status="done", completed_at=due
    )
    FollowUp.objects.create(
        customer=c,
        assignee=sales_user,
        due_at=due,
        title="late",
        status="done",
        completed_at=due + timedelta(days=2),
    )
    # Tickets opened in January: B's answered within its target, D's an hour late.
    for customer, day, answered_in in ((b, date(2026, 1, 12), -1), (d, date(2026, 1, 13), 1)):
        ticket = Ticket.objects.create(customer=customer, subject=f"help {customer.name}")
        opened = _at(tenant, day, 9)
        Ticket.objects.filter(pk=ticket.pk).update(
            created_at=opened,
            first_response_due_at=opened + timedelta(hours=2),
            first_response_at=opened + timedelta(hours=2 + answered_in),
        )
    # Loyalty: 100 points are worth ¥1 by default; A holds 500 points, D none.
    programme_get()
    Member.objects.create(customer=a, number="M-A", joined_at=_at(tenant, date(2025, 12, 10)), balance=500)
    Member.objects.create(customer=d, number="M-D", joined_at=_at(tenant, date(2025, 11, 20)), balance=0)
    # Survey answers in January: NPS 10 from A and 3 from C; CSAT 5 from B and 2 from D.
    for customer, kind, score in ((a, "nps", 10), (c, "nps", 3), (b, "csat", 5), (d, "csat", 2)):
        template = SurveyTemplate.objects.filter(kind=kind).first()
        invitation = _invite(
            template=template, customer=customer, source="bulk", source_key=f"t:{customer.pk}"
        )
        SurveyResponse.objects.create(
            invitation=invitation,
            template=template,
            kind=kind,
            score=score,
            customer=customer,
            answered_at=_at(tenant, date(2026, 1, 16)),
        )
    return {"A": a, "B": b, "C": c, "D": d, "E": e, "F": f}


def _values(user, params=JANUARY, filters=None):
    selection = parse_selection(params, date(2026, 2, 15))
    scope = Scope(user=user, filters=filters or Filters())
    return (
        scope,
        selection,
        {v.definition.key: v for v in figures.overview_values(scope, selection.period, selection.compared)},
    )


def test_overview_figures_match_the_hand_computed_month(zone, data, manager_user):
    _scope, selection, v = _values(manager_user)
    assert selection.compared == Period(date(2025, 12, 1), date(2025, 12, 31))
    assert v["revenue"].value == Decimal("370")  # 50 + (30 - 10) + 200 + 40 + 60
    assert v["orders"].value == 5
    assert v["average_order_value"].value == Decimal("74.00")
    assert v["active_customers"].value == 3  # A, B, C
    assert v["new_customers"].value == 2  # B, C
    assert v["returning_customers"].value == 1  # A
    assert (v["repeat_rate"].numerator, v["repeat_rate"].denominator, v["repeat_rate"].value) == (2, 3, 66.7)
    assert (v["churn_rate"].numerator, v["churn_rate"].denominator, v["churn_rate"].value) == (1, 2, 50.0)
    assert (v["followups_on_time"].numerator, v["followups_on_time"].denominator) == (1, 2)
    assert (v["sla_first_response"].numerator, v["sla_first_response"].denominator) == (1, 2)
    assert v["loyalty_liability"].numerator == 500
    assert (v["nps"].value, v["nps"].numerator) == (0.0, 2)  # one promoter, one detractor
    assert (v["csat"].value, v["csat"].numerator, v["csat"].denominator) == (50.0, 1, 2)
    # December: A's 100 only.
    assert (v["revenue"].previous, v["orders"].previous, v["new_customers"].previous) == (
        Decimal("100"),
        1,
        1,
    )
    assert v["revenue"].change == 270.0
    assert change_percent(5, 0) is None


def test_a_sales_user_counts_only_their_own_customers(zone, data, sales_user):
    _scope, _selection, v = _values(sales_user)
    assert v["revenue"].value == Decimal("170")  # A 50 + 20, C 40 + 60
    assert (v["active_customers"].value, v["new_customers"].value) == (2, 1)
    assert (v["repeat_rate"].numerator, v["repeat_rate"].denominator) == (2, 2)
    assert (v["churn_rate"].numerator, v["churn_rate"].denominator) == (0, 1)
    assert (v["followups_on_time"].numerator, v["followups_on_time"].denominator) == (1, 2)
    assert (v["sla_first_response"].value, v["loyalty_liability"].numerator) == (
        None,
        500,
    )  # B, D: not theirs


@pytest.mark.parametrize(
    ("user_key", "clv", "scored", "points"),
    [("manager_user", "190", 3, 500), ("sales_user", "150", 2, 500), ("sales_user2", "40", 1, 0)],
)
def test_predicted_clv_and_points_leave_the_binned_customers_out(
    zone, data, request, user_key, clv, scored, points
):
    """A manager's company-wide totals are summed on the scores and the members alone (a sales rep's
    and a filtered view's through the customers): both leave F, in the bin, out, keep to what the
    user sees, and agree with the lists the figures open."""
    for name, value in (("A", "100"), ("B", "40"), ("C", "50"), ("F", "1000")):
        CustomerScore.objects.create(
            customer=data[name],
            predicted_clv=Decimal(value),
            stage_since=timezone.now(),
            computed_at=timezone.now(),
        )
    Member.objects.create(customer=data["F"], number="M-F", joined_at=timezone.now(), balance=700)
    user = request.getfixturevalue(user_key)
    scope, selection, v = _values(user)
    assert (v["clv_total"].value, v["clv_total"].numerator) == (Decimal(clv), scored)
    assert v["clv_average"].value == (Decimal(clv) / scored).quantize(Decimal("0.01"))
    assert v["loyalty_liability"].numerator == points
    assert figures.rows("clv_total", scope, selection.period).count() == scored
    assert sum(m.balance for m in figures.rows("loyalty_liability", scope, selection.period)) == points
    # The selectors the company-wide figures use keep to what any user sees.
    totals = score_totals(user=user)
    assert (totals["clv_total"], totals["scored"]) == (Decimal(clv), scored)
    assert points_outstanding(user=user) == points


def test_filters_narrow_every_figure(zone, data, manager_user):
    _scope, _selection, v = _values(manager_user, filters=Filters(source="website"))
    assert (v["revenue"].value, v["active_customers"].value, v["new_customers"].value) == (
        Decimal("300"),
        2,
        2,
    )
    _scope, _selection, v = _values(manager_user, filters=Filters(channel="online"))
    assert (v["revenue"].value, v["orders"].value, v["active_customers"].value) == (Decimal("50"), 1, 1)
    # Through the online channel A's first purchase is in January: new there.
    assert v["new_customers"].value == 1


def test_chart_buckets_follow_the_period_length():
    assert Period(date(2026, 1, 1), date(2026, 1, 31)).bucket == "day"
    assert len(Period(date(2026, 1, 1), date(2026, 1, 31)).buckets()) == 31
    year = Period(date(2025, 1, 1), date(2025, 12, 31))
    assert year.bucket == "week"
    weeks = year.buckets()
    assert weeks[0] == date(2024, 12, 30) and all(d.weekday() == 0 for d in weeks)  # Mondays
    assert weeks[-1] == date(2025, 12, 29) and len(weeks) == 53
    long = Period(date(2023, 1, 15), date(2025, 12, 31))
    assert long.bucket == "month"
    months = long.buckets()
    assert (months[0], months[-1], len(months)) == (date(2023, 1, 1), date(2025, 12, 1), 36)


def test_the_overview_chart_is_revenue_per_day_beside_the_earlier_period(
    zone, data, manager_user, client_for
):
    scope, selection, _v = _values(manager_user)
    series = figures.overview_series(scope, selection.period, selection.compared)
    assert series["unit"] == "day" and len(series["current"]) == 31 and len(series["earlier"]) == 31
    assert series["current"][0] == 0 and series["current"][2] == Decimal("40")  # C on 3 January
    assert series["current"][19] == Decimal("20")  # A's 30, 10 refunded, on 20 January
    assert sum(series["current"]) == Decimal("370")  # the revenue figure
    assert series["earlier"][9] == Decimal("100") and sum(series["earlier"]) == Decimal("100")  # A, 10 Dec
    client = client_for(manager_user)
    html = client.get("/dashboards/", JANUARY).content.decode()
    assert 'id="overview-revenue-data"' in html
    csv = b"".join(
        client.get("/dashboards/", JANUARY | {"export": "csv", "table": "revenue"}).streaming_content
    )
    lines = csv.decode("utf-8-sig").splitlines()
    assert len(lines) == 32 and lines[3].split(",")[:2] == ["2026-01-03", "40.00"]


def test_the_tier_filter_counts_that_tiers_members_only(zone, data, manager_user, client_for):
    gold = Tier.objects.create(name="金卡", rank=2, threshold=Decimal("1000"))
    Member.objects.create(customer=data["C"], number="M-C", joined_at=timezone.now(), tier=gold)
    Member.objects.filter(customer=data["A"]).update(tier=None)
    _scope, _selection, v = _values(manager_user, filters=Filters(tier=gold.pk))
    assert (v["revenue"].value, v["active_customers"].value, v["new_customers"].value) == (
        Decimal("100"),
        1,
        1,
    )
    assert v["repeat_rate"].numerator == 1  # C bought twice in January
    assert v["loyalty_liability"].numerator == 0  # C holds no points
    # On the page: the tier is offered by name, and an unknown tier id is ignored (the whole company).
    client = client_for(manager_user)
    html = client.get("/dashboards/", JANUARY | {"tier": gold.pk}).content.decode()
    assert "金卡" in html
    assert re.search(r'data-figure="active_customers">\s*1\s*<', html)
    html = client.get("/dashboards/", JANUARY | {"tier": "99999"}).content.decode()
    assert re.search(r'data-figure="active_customers">\s*3\s*<', html)


@pytest.mark.parametrize("user_key", ["manager_user", "sales_user"])
def test_every_figure_opens_a_list_of_exactly_what_it_counts(zone, data, request, user_key):
    user = request.getfixturevalue(user_key)
    scope, selection, v = _values(user)
    for key, value in v.items():
        for period, attr in ((selection.period, "value"), (selection.compared, "previous")):
            if not value.definition.per_period and attr == "previous":
                continue
            rows = figures.rows(key, scope, period)
            expected = getattr(value, attr) if attr == "value" else None
            if key in ("repeat_rate", "churn_rate", "followups_on_time", "sla_first_response", "nps"):
                expected = value.numerator if attr == "value" else None
            if expected is None and attr == "previous":
                continue
            if key == "revenue":
                listed = sum((o.total - o.refunded_total for o in rows), Decimal("0"))
                assert listed == value.value, key
            elif key == "average_order_value":
                assert rows.count() == v["orders"].value
            elif key == "csat":
                assert rows.count() == (value.denominator if attr == "value" else rows.count())
            elif key == "loyalty_liability":
                assert sum(m.balance for m in rows) == value.numerator
            elif key in ("clv_total", "clv_average"):
                assert rows.count() == value.numerator
            else:
                assert rows.count() == expected, key


def test_figure_pages_show_the_same_numbers_as_the_overview(data, client_for, manager_user):
    client = client_for(manager_user)
    page = client.get("/dashboards/", JANUARY)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-figure="new_customers"' in html
    listing = client.get("/dashboards/figures/new_customers/", JANUARY)
    assert listing.status_code == 200
    text = listing.content.decode()
    assert ">B<" in text and ">C<" in text and ">A<" not in text
    assert "2 customers" in text
    previous = client.get("/dashboards/figures/orders/", JANUARY | {"period": "compared"}).content.decode()
    assert "1 order" in previous
    assert client.get("/dashboards/figures/nonsense/", JANUARY).status_code == 404


def test_only_managers_are_offered_the_owner_filter(data, client_for, manager_user, sales_user):
    manager_page = client_for(manager_user).get("/dashboards/").content.decode()
    sales_page = client_for(sales_user).get("/dashboards/").content.decode()
    assert 'id="f-owner"' in manager_page
    assert 'id="f-owner"' not in sales_page
    # The loyalty reports (managers only) and the survey reports are one tab away.
    assert 'href="/loyalty/reports/"' in manager_page and 'href="/loyalty/reports/"' not in sales_page
    assert 'href="/surveys/"' in sales_page


def test_a_sales_user_cannot_widen_the_scope_with_an_owner_filter(data, client_for, sales_user, sales_user2):
    filters = parse_filters({"owner": str(sales_user2.pk)}, sales_user)
    assert filters.owner is None
    text = client_for(sales_user).get(
        "/dashboards/figures/active_customers/", JANUARY | {"owner": sales_user2.pk}
    )
    body = text.content.decode()
    assert ">B<" not in body and "2 customers" in body


def test_bad_dates_fall_back_with_a_message_and_bounded_input(data, client_for, manager_user):
    client = client_for(manager_user)
    for bad in (
        {"from": "1e10000000", "to": "2026-01-31"},
        {"from": "2026-02-01", "to": "2026-01-01"},
        {"from": "1999-01-01", "to": "2026-01-01"},
        {"from": "2020-01-01", "to": "2026-01-01"},
    ):
        page = client.get("/dashboards/", {"range": "custom", **bad})
        assert page.status_code == 200
        assert "could not be used" in page.content.decode()
    assert client.get("/dashboards/", {"range": "x" * 5000, "compare": "y" * 5000}).status_code == 200


def test_cohort_matrix_by_first_purchase_month(zone, data, manager_user):
    scope = Scope(user=manager_user, filters=Filters())
    rows = {r.month: r for r in analyses.cohort_matrix(scope, months=4, today=date(2026, 2, 15))}
    assert list(rows) == [date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1)]
    assert (rows[date(2025, 11, 1)].size, rows[date(2025, 12, 1)].size, rows[date(2026, 1, 1)].size) == (
        1,
        1,
        2,
    )
    december = rows[date(2025, 12, 1)].cells
    assert december[0]["share"] == 100.0
    assert (december[1]["customers"], december[1]["share"], december[1]["revenue_per_customer"]) == (
        1,
        100.0,
        Decimal("70.00"),
    )
    assert december[2]["share"] == 0.0 and december[3] is None  # March 2026 is still to come
    january = rows[date(2026, 1, 1)].cells
    assert (january[0]["share"], january[1]["customers"], january[1]["share"]) == (100.0, 1, 50.0)  # B in Feb
    assert rows[date(2026, 2, 1)].size == 0
    assert [c.name for c in analyses.cohort_customers(scope, cohort=date(2025, 12, 1), k=1)] == ["A"]
    assert {c.name for c in analyses.cohort_customers(scope, cohort=date(2026, 1, 1), k=0)} == {"B", "C"}
    line = analyses.cohort_line(list(rows.values()))
    assert line["shares"][0] == 100.0


def test_cohorts_through_one_channel_start_at_the_first_purchase_there(zone, data, manager_user):
    """A bought in store in December and online in January: online, A belongs to January's cohort."""
    scope = Scope(user=manager_user, filters=Filters(channel="online"))
    rows = {r.month: r for r in analyses.cohort_matrix(scope, months=4, today=date(2026, 2, 15))}
    assert (rows[date(2025, 12, 1)].size, rows[date(2026, 1, 1)].size) == (0, 1)
    assert rows[date(2026, 1, 1)].cells[0]["revenue_per_customer"] == Decimal("50.00")
    assert [c.name for c in analyses.cohort_customers(scope, cohort=date(2026, 1, 1), k=0)] == ["A"]
    everyone = Scope(user=manager_user, filters=Filters())
    assert [c.name for c in analyses.cohort_customers(everyone, cohort=date(2025, 12, 1), k=0)] == ["A"]


def test_cohort_page_and_its_cells(data, client_for, manager_user):
    client = client_for(manager_user)
    page = client.get("/dashboards/cohorts/", {"months": "6"})
    assert page.status_code == 200
    assert 'data-testid="cohort-table"' in page.content.decode()
    cell = client.get("/dashboards/cohorts/customers/", {"cohort": "2025-12", "k": "1"}).content.decode()
    assert ">A<" in cell and "1 customer" in cell
    assert client.get("/dashboards/cohorts/customers/", {"cohort": "20x5-12", "k": "1"}).status_code == 404
    assert (
        client.get("/dashboards/cohorts/customers/", {"cohort": "2025-12", "k": "9" * 50}).status_code == 404
    )


def test_segment_migration_between_two_dates(zone, data, manager_user, sales_user):
    scope = Scope(user=manager_user, filters=Filters())
    counts = analyses.migration_matrix(
        scope, dimension="rfm", first=date(2025, 12, 31), second=date(2026, 1, 31)
    )
    assert counts == {("promising", "loyal"): 1, ("", "new"): 1}  # A's latest state, not its first
    moved = analyses.migration_customers(
        scope,
        dimension="rfm",
        first=date(2025, 12, 31),
        second=date(2026, 1, 31),
        before="promising",
        after="loyal",
    )
    assert [c.name for c in moved] == ["A"]
    stages = analyses.migration_matrix(
        scope, dimension="stage", first=date(2026, 1, 1), second=date(2026, 1, 31)
    )
    assert stages == {("", "churned"): 1}
    mine = Scope(user=sales_user, filters=Filters())
    assert (
        analyses.migration_matrix(mine, dimension="stage", first=date(2026, 1, 1), second=date(2026, 1, 31))
        == {}
    )


def test_migration_page_cells_open_their_customers(data, client_for, manager_user):
    client = client_for(manager_user)
    params = {"dimension": "rfm", "from": "2025-12-31", "to": "2026-01-31"}
    page = client.get("/dashboards/migration/", params).content.decode()
    assert "data-migration-cell" in page
    cell = client.get("/dashboards/migration/customers/", params | {"before": "promising", "after": "loyal"})
    assert ">A<" in cell.content.decode()
    assert (
        client.get(
            "/dashboards/migration/customers/", params | {"before": "nope", "after": "loyal"}
        ).status_code
        == 404
    )


def test_another_tenants_orders_never_count(zone, data, tenant, manager_user, tenant_b):
    connection.set_tenant(tenant_b)
    try:
        other = CustomerFactory(name="Beta buyer")
        OrderFactory(customer=other, total=Decimal("12345"), placed_at=_at(tenant_b, date(2026, 1, 10)))
    finally:
        connection.set_tenant(tenant)
    _scope, _selection, v = _values(manager_user)
    assert v["revenue"].value == Decimal("370")


def test_lifecycle_funnel_counts_and_conversion(zone, tenant, manager_user, client_for):
    p1, p2, p3, p4 = (CustomerFactory(name=n) for n in ("P1", "P2", "P3", "P4"))
    for customer, frm, to, day in (
        (p1, "", "prospect", date(2025, 12, 1)),
        (p1, "prospect", "new", date(2026, 1, 10)),
        (p2, "", "prospect", date(2026, 1, 5)),
        (p3, "", "new", date(2025, 12, 15)),
        (p3, "new", "repeat", date(2026, 1, 20)),
        (p4, "", "new", date(2025, 12, 20)),
    ):
        LifecycleTransition.objects.create(
            customer=customer, from_stage=frm, to_stage=to, at=_at(tenant, day)
        )
    scope = Scope(user=manager_user, filters=Filters())
    start, end = Period(date(2026, 1, 1), date(2026, 1, 31)).bounds(ZoneInfo(tenant.time_zone))
    rows = {r["stage"]: r for r in analyses.funnel_rows(scope, start=start, end=end)}
    assert (rows["prospect"]["base"], rows["prospect"]["converted"], rows["prospect"]["rate"]) == (2, 1, 50.0)
    assert (rows["new"]["base"], rows["new"]["converted"], rows["new"]["rate"]) == (3, 1, 33.3)
    assert (rows["repeat"]["base"], rows["repeat"]["converted"]) == (1, 0)
    names = {c.name for c in analyses.funnel_customers(scope, stage="new", step="base", start=start, end=end)}
    assert names == {"P1", "P3", "P4"}
    client = client_for(manager_user)
    page = client.get("/dashboards/funnel/", JANUARY)
    assert page.status_code == 200 and 'data-testid="funnel-table"' in page.content.decode()
    url = "/dashboards/funnel/customers/"
    listed = client.get(url, JANUARY | {"from_stage": "prospect", "step": "converted"}).content.decode()
    assert ">P1<" in listed and ">P2<" not in listed
    assert client.get(url, {"from_stage": "loyal", "step": "base"}).status_code == 404


def test_team_rows_per_rep_and_a_rep_sees_only_themself(
    zone, data, tenant, manager_user, sales_user, sales_user2
):
    due = _at(tenant, date(2026, 1, 10))  # the data has A's follow-up done on time and C's late
    FollowUp.objects.create(customer=data["B"], assignee=sales_user2, due_at=due, title="open", status="open")
    january = Period(date(2026, 1, 1), date(2026, 1, 31))
    rows = {r.user_id: r for r in team_rows(Scope(user=manager_user, filters=Filters()), january)}
    mine, theirs = rows[sales_user.pk], rows[sales_user2.pk]
    assert (mine.revenue, mine.customers, mine.followups_done, mine.followups_on_time) == (
        Decimal("170"),
        3,
        2,
        1,
    )
    assert mine.on_time_share == 50.0
    assert (theirs.revenue, theirs.followups_overdue) == (Decimal("200"), 1)
    own = team_rows(Scope(user=sales_user, filters=Filters()), january)
    assert [r.user_id for r in own] == [sales_user.pk]
    from crm.accounts.models import User

    newcomer = User.objects.create_user(email="new-rep@alpha.test", password="x" * 20, role="sales")
    quiet = team_rows(Scope(user=newcomer, filters=Filters()), january)
    assert [r.user_id for r in quiet] == [newcomer.pk]  # their own row, even with nothing in it
    assert not quiet[0].active


def test_reports_download_as_csv_and_xlsx(data, client_for, manager_user, sales_user):
    client = client_for(manager_user)
    csv = b"".join(client.get("/dashboards/", JANUARY | {"export": "csv"}).streaming_content).decode(
        "utf-8-sig"
    )
    assert csv.splitlines()[0] == "Figure,Value,Earlier period,Change (%)"
    assert "Revenue,370" in csv
    team = client.get("/dashboards/team/", JANUARY | {"export": "csv"})
    text = b"".join(team.streaming_content).decode("utf-8-sig")
    assert sales_user.full_name in text and "170" in text
    xlsx = client.get("/dashboards/cohorts/", {"export": "xlsx"})
    assert xlsx["Content-Type"].startswith("application/vnd.openxmlformats") and xlsx.content[:2] == b"PK"
    migration = client.get("/dashboards/migration/", {"export": "csv", "dimension": "stage"})
    assert b"".join(migration.streaming_content).decode("utf-8-sig").startswith("From / to,")


def test_the_selectors_the_reports_read_are_scoped_to_the_user(data, manager_user, sales_user):
    from customers.selectors import customer_scope, purchase_orders
    from interactions.service.selectors import tickets_visible
    from segmentation.selectors import segment_transitions, stage_transitions

    SegmentTransition.objects.create(customer=data["B"], from_segment="", to_segment="new", at=timezone.now())
    mine = {data["A"].pk, data["C"].pk, data["E"].pk}  # F is in the bin
    assert {c.pk for c in customer_scope(user=sales_user)} == mine
    assert {o.customer_id for o in purchase_orders(user=sales_user)} == {data["A"].pk, data["C"].pk}
    assert not stage_transitions(user=sales_user).exists()  # D's change: another rep's customer
    assert stage_transitions(user=manager_user).count() == 1
    assert {t.customer_id for t in segment_transitions(user=sales_user)} == {data["A"].pk, data["C"].pk}
    assert not tickets_visible(user=sales_user).exists()  # B's and D's tickets
    assert tickets_visible(user=manager_user).count() == 2


@pytest.mark.parametrize("user_key", ["manager_user", "sales_user"])
def test_the_period_and_its_comparison_in_one_pass_equal_each_period_counted_alone(
    zone, data, tenant, request, user_key
):
    """The overview reads both periods in the same statements (the period decided per row); each side
    must equal that period counted on its own, for both comparisons and for periods that overlap (a
    purchase in both is counted in both)."""
    OrderFactory(customer=data["D"], total=Decimal("15"), placed_at=_at(tenant, date(2025, 1, 1)))
    user = request.getfixturevalue(user_key)
    scope = Scope(user=user, filters=Filters())
    long_range = {"range": "custom", "from": "2025-01-01", "to": "2026-01-31", "compare": "last_year"}
    # Per pair of periods: revenue per bucket, purchases per buyer, churned, customers, the programme,
    # and follow-ups, tickets and answers per period; overlapping periods take a pass of each of the
    # first three per period. For the whole company (a manager, no filter) the customers' scores and
    # points are summed on their own tables: two statements more.
    more = 2 if user_key == "manager_user" else 0
    for params, queries in (
        (JANUARY, 11 + more),
        (JANUARY | {"compare": "last_year"}, 11 + more),
        (long_range, 14 + more),
    ):
        selection = parse_selection(params, date(2026, 2, 15))
        with CaptureQueriesContext(connection) as captured:
            both = figures.overview_values(scope, selection.period, selection.compared)
        # (django-tenants may first set the search path: not one of the figures' queries)
        assert len([q for q in captured if not q["sql"].startswith("SET ")]) == queries
        alone = figures.period_values(scope, selection.period)
        earlier = figures.period_values(scope, selection.compared)
        for value in both:
            if value.definition.key in alone:
                key = value.definition.key
                assert (value.value, value.numerator, value.denominator) == (
                    alone[key].value,
                    alone[key].numerator,
                    alone[key].denominator,
                ), key
                assert value.previous == earlier[key].value, key
    selection = parse_selection(long_range, date(2026, 2, 15))
    v = {x.definition.key: x for x in figures.overview_values(scope, selection.period, selection.compared)}
    if (
        user_key == "manager_user"
    ):  # D (sales2's) bought for 15 on 1 January 2025: in both periods, in the first bucket
        assert (v["revenue"].value, v["revenue"].previous) == (Decimal("15") + 100 + 80 + 370, Decimal("15"))
        assert (v["new_customers"].value, v["new_customers"].previous) == (4, 1)
    series = figures.overview_series(scope, selection.period, selection.compared)
    assert sum(series["earlier"]) == v["revenue"].previous


def test_cohort_months_start_at_local_midnight_across_daylight_saving(manager_user):
    """New York is on summer time (UTC-4) on 1 April: a purchase at 23:30 on 31 March is in March,
    one at 00:30 on 1 April in April, although both are on 1 April in UTC and the matrix's first
    month (February) starts at UTC-5."""
    zone = ZoneInfo("America/New_York")
    g, h = CustomerFactory(name="G"), CustomerFactory(name="H")
    OrderFactory(customer=g, total=Decimal("10"), placed_at=datetime(2026, 3, 31, 23, 30, tzinfo=zone))
    OrderFactory(customer=g, total=Decimal("20"), placed_at=datetime(2026, 4, 1, 0, 30, tzinfo=zone))
    OrderFactory(customer=h, total=Decimal("40"), placed_at=datetime(2026, 4, 1, 0, 30, tzinfo=zone))
    with timezone.override(zone):
        scope = Scope(user=manager_user, filters=Filters())
        rows = {r.month: r for r in analyses.cohort_matrix(scope, months=3, today=date(2026, 4, 15))}
        march, april = rows[date(2026, 3, 1)], rows[date(2026, 4, 1)]
        assert (march.size, march.cells[0]["revenue_per_customer"]) == (1, Decimal("10.00"))
        assert (march.cells[1]["customers"], march.cells[1]["revenue_per_customer"]) == (1, Decimal("20.00"))
        assert (april.size, april.cells[0]["revenue_per_customer"]) == (1, Decimal("40.00"))
        assert [c.name for c in analyses.cohort_customers(scope, cohort=date(2026, 3, 1), k=1)] == ["G"]


def test_chart_days_start_at_local_midnight_across_daylight_saving(manager_user):
    """New York moves to summer time on 8 March 2026: 23:30 that day is on the 8th, 00:30 the next
    day on the 9th (both on the 9th in UTC, and the 9th starts an hour earlier than on 1 March)."""
    zone = ZoneInfo("America/New_York")
    g = CustomerFactory(name="G")
    OrderFactory(customer=g, total=Decimal("10"), placed_at=datetime(2026, 3, 8, 23, 30, tzinfo=zone))
    OrderFactory(customer=g, total=Decimal("20"), placed_at=datetime(2026, 3, 9, 0, 30, tzinfo=zone))
    OrderFactory(customer=g, total=Decimal("5"), placed_at=datetime(2026, 2, 28, 23, 30, tzinfo=zone))
    with timezone.override(zone):
        scope = Scope(user=manager_user, filters=Filters())
        selection = parse_selection(
            {"range": "custom", "from": "2026-03-01", "to": "2026-03-31", "compare": "previous"},
            date(2026, 4, 15),
        )
        series = figures.overview_series(scope, selection.period, selection.compared)
    by_day = dict(zip(series["days"], series["current"], strict=True))
    assert (by_day[date(2026, 3, 8)], by_day[date(2026, 3, 9)]) == (Decimal("10"), Decimal("20"))
    assert sum(series["current"]) == Decimal("30")
    assert series["earlier"][-1] == Decimal("5")  # 28 February, the last day of the earlier period
