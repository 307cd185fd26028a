"""Pages that aggregate customers show a sales user only their own customers, in every figure and
list: two reps, each with a customer that has purchases, scores, a stage change and an alert; the
sales user's page counts one customer where the manager's counts two."""

from decimal import Decimal

import pytest
from django.urls import reverse

from customers.services import customer_refresh_order_stats
from segmentation.models import ChurnAlert
from segmentation.recompute import recompute
from tests.segmentation.conftest import buy, customer_with_orders


@pytest.fixture
def two_reps(tenant, users):
    mine = customer_with_orders([400, 300], amount="100.00", owner=users["sales"], name="Mine Customer")
    theirs = customer_with_orders([400, 300], amount="900.00", owner=users["sales2"], name="Theirs Customer")
    recompute(with_holdout=False)
    for customer in (mine, theirs):  # back again: a stage change for each
        buy(customer, 5, "100.00" if customer is mine else "900.00")
        buy(customer, 2, "100.00" if customer is mine else "900.00")
    recompute(with_holdout=False)
    customer_refresh_order_stats(customer_ids=[mine.pk, theirs.pk])
    for customer in (mine, theirs):
        ChurnAlert.objects.get_or_create(customer=customer, owner=customer.owner, reason="entered_at_risk")
    return {"mine": mine, "theirs": theirs}


def _page(client_for, user, name, **params):
    response = client_for(user).get(reverse(name), params)
    assert response.status_code == 200
    return response.context


def test_dashboard_figures_count_only_the_sales_users_customers(two_reps, client_for, users):
    # The manager first: the monthly series they see is cached, and must not be what sales get.
    manager = _page(client_for, users["manager"], "home")
    sales = _page(client_for, users["sales"], "home")
    assert (sales["customers"]["total"], manager["customers"]["total"]) == (1, 2)
    assert (sales["customers"]["buyers"], sales["customers"]["repeat_buyers"]) == (1, 1)
    assert (sales["current"].orders, manager["current"].orders) == (2, 4)
    assert (sales["current"].revenue, manager["current"].revenue) == (Decimal("200.00"), Decimal("2000.00"))
    assert sum(m["revenue"] for m in sales["monthly"]) == 300.0  # the purchases of the last twelve months
    assert sum(m["revenue"] for m in manager["monthly"]) == 3000.0
    assert "Theirs Customer" not in client_for(users["sales"]).get(reverse("home")).content.decode()


def test_segment_overview_and_rfm_table_count_only_the_sales_users_customers(two_reps, client_for, users):
    sales = _page(client_for, users["sales"], "segmentation:index")
    manager = _page(client_for, users["manager"], "segmentation:index")
    assert (sales["totals"]["customers"], manager["totals"]["customers"]) == (1, 2)
    assert sales["totals"]["revenue"] < manager["totals"]["revenue"]
    assert sum(row.customers for row in sales["rows"]) == 1
    assert (sales["heatmap"]["total"], manager["heatmap"]["total"]) == (1, 2)


def test_lifecycle_funnel_and_stage_changes_show_only_the_sales_users_customers(two_reps, client_for, users):
    sales = _page(client_for, users["sales"], "segmentation:lifecycle")
    manager = _page(client_for, users["manager"], "segmentation:lifecycle")
    assert (sum(s["count"] for s in sales["funnel"]), sum(s["count"] for s in manager["funnel"])) == (1, 2)
    assert {t.customer_id for t in sales["transitions"]} == {two_reps["mine"].pk}
    assert {t.customer_id for t in manager["transitions"]} == {c.pk for c in two_reps.values()}


def test_clv_histogram_and_top_customers_show_only_the_sales_users_customers(two_reps, client_for, users):
    sales = _page(client_for, users["sales"], "segmentation:clv")
    manager = _page(client_for, users["manager"], "segmentation:clv")
    assert (sales["distribution"]["n"], manager["distribution"]["n"]) == (1, 2)
    assert sum(sales["distribution"]["counts"]) == 1
    assert [s.customer_id for s in sales["top"]] == [two_reps["mine"].pk]
    assert [s.customer_id for s in manager["top"]] == [two_reps["theirs"].pk, two_reps["mine"].pk]


def test_alerts_and_their_badge_show_only_the_sales_users_own(two_reps, client_for, users):
    from segmentation.selectors import alert_badge

    # the badge counts what is new for the user, so read it before the queue is opened
    assert (alert_badge(users["sales"]), alert_badge(users["manager"])) == ("1", "2")
    sales = _page(client_for, users["sales"], "segmentation:alerts")
    manager = _page(client_for, users["manager"], "segmentation:alerts")
    assert {a.customer_id for a in sales["alerts"]} == {two_reps["mine"].pk} and sales["total"] == 1
    assert manager["total"] == 2
    assert (alert_badge(users["sales"]), alert_badge(users["manager"])) == ("", "")  # seen now
