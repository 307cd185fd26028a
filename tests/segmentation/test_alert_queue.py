"""The alerts work queue: order by what is at stake, keyset pages, filters, phone and last purchase,
bulk acknowledge/assign, the "new for you" badge, the action hook; and the evaluation on the
lifecycle page and its command."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm.accounts.models import User
from crm.audit.models import AuditEvent
from customers.models import Customer
from segmentation import selectors
from segmentation.models import AlertEvaluation, ChurnAlert, CustomerScore
from segmentation.registry import AlertAction, register_alert_action, unregister_alert_action
from segmentation.services import alert_create
from tests.factories import CustomerFactory

from .conftest import buy, customer_with_orders, english


def _alert(
    *, owner, clv, last_days, reason="entered_at_risk", stage="at_risk", segment="at_risk", phone=None
):
    customer = CustomerFactory(owner=owner, **({"phone": phone} if phone else {}))
    now = timezone.now()
    last = None if last_days is None else now - timedelta(days=last_days)
    Customer.objects.filter(pk=customer.pk).update(last_order_at=last)
    CustomerScore.objects.create(
        customer=customer,
        predicted_clv=None if clv is None else Decimal(clv),
        lifecycle_stage=stage,
        rfm_segment=segment,
        stage_since=now,
        computed_at=now,
    )
    return alert_create(customer=customer, reason=reason)


@pytest.fixture
def queue(tenant, users):
    sales, sales2 = users["sales"], users["sales2"]
    return {
        "big_recent": _alert(owner=sales, clv="900.00", last_days=40, phone="+8613800001111"),
        "big_old": _alert(owner=sales, clv="900.00", last_days=200),
        "small": _alert(
            owner=sales2, clv="50.00", last_days=300, reason="entered_cannot_lose", segment="cannot_lose_them"
        ),
        "unknown": _alert(owner=sales, clv=None, last_days=None, stage="churned", segment="lost"),
        "middle": _alert(owner=sales2, clv="300.00", last_days=100, reason="probability_alive_below"),
    }  # fmt: skip


def _ids(html: str, queue: dict) -> list[str]:
    positions = {name: html.find(f'id="alert-{alert.pk}"') for name, alert in queue.items()}
    return [name for name, at in sorted(positions.items(), key=lambda item: item[1]) if at >= 0]


def test_the_queue_puts_the_most_at_stake_first_and_pages_by_keyset(queue, users):
    qs = selectors.alert_queue(user=users["manager"])
    seen, cursor = [], None
    for _ in range(5):
        page = selectors.alert_queue_page(qs, cursor=cursor, page_size=2)
        seen.extend(page.rows)
        cursor = page.next_cursor
        if cursor is None:
            break
    names = {alert.pk: name for name, alert in queue.items()}
    # CLV first (unknown last); on a tie the longer silence first
    assert [names[a.pk] for a in seen] == ["big_old", "big_recent", "middle", "small", "unknown"]
    # a malformed cursor is the first page, not an error
    assert selectors.alert_queue_page(qs, cursor="%%%not-a-cursor", page_size=2).rows == seen[:2]


def test_queue_page_shows_phone_last_purchase_and_stake_with_next_page(queue, client_for, users):
    manager = client_for(english(users["manager"]))
    response = manager.get(reverse("segmentation:alerts"))
    html = response.content.decode()
    assert _ids(html, queue) == ["big_old", "big_recent", "middle", "small", "unknown"]
    assert 'href="tel:+8613800001111"' in html
    assert "¥900.00" in html
    last = Customer.objects.get(pk=queue["big_recent"].customer_id).last_order_at
    assert timezone.localtime(last).strftime("%Y-%m-%d") in html
    assert 'data-testid="next-page"' not in html  # 5 rows fit in one page of 25


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"reason": "entered_cannot_lose"}, ["small"]),
        ({"segment": "lost"}, ["unknown"]),
        ({"stage": "churned"}, ["unknown"]),
        ({"owner": "sales2"}, ["middle", "small"]),
        (
            {"reason": "bogus"},
            ["big_old", "big_recent", "middle", "small", "unknown"],
        ),  # ignored, shown as an error
    ],
)
def test_queue_filters(queue, client_for, users, params, expected):
    if params.get("owner"):
        params = {"owner": users[params["owner"]].pk}
    html = client_for(english(users["manager"])).get(reverse("segmentation:alerts"), params).content.decode()
    assert _ids(html, queue) == expected


def test_sales_see_their_own_alerts_without_an_owner_filter(queue, client_for, users):
    html = client_for(english(users["sales"])).get(reverse("segmentation:alerts")).content.decode()
    assert _ids(html, queue) == ["big_old", "big_recent", "unknown"]
    assert 'name="owner"' not in html and 'data-testid="bulk-assign"' not in html


def test_queue_query_count_does_not_grow_with_rows(tenant, client_for, users):
    manager = client_for(users["manager"])
    url = reverse("segmentation:alerts")
    _alert(owner=users["sales"], clv="10.00", last_days=5)
    manager.get(url)
    with CaptureQueriesContext(connection) as few:
        manager.get(url)
    for i in range(20):
        _alert(owner=users["sales"], clv=f"{i}.00", last_days=i)
    with CaptureQueriesContext(connection) as many:
        manager.get(url)
    assert len(many.captured_queries) == len(few.captured_queries)


def test_bulk_acknowledge_touches_only_what_the_user_may_handle(queue, client_for, users):
    sales = client_for(english(users["sales"]))
    mine, theirs = queue["big_old"], queue["small"]
    # bad input: a clear message, nothing written
    response = sales.post(
        reverse("segmentation:alerts_bulk"), {"action": "acknowledge", "alert": [mine.pk, "x"]}, follow=True
    )
    assert "Select a valid choice" in response.content.decode()
    assert ChurnAlert.objects.get(pk=mine.pk).status == "open"
    response = sales.post(
        reverse("segmentation:alerts_bulk"), {"action": "acknowledge", "alert": [mine.pk, theirs.pk]}
    )
    assert response.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.status, mine.acted_by) == ("acknowledged", users["sales"])
    assert theirs.status == "open"
    assert AuditEvent.objects.filter(action="segmentation.alert_acknowledged").count() == 1
    # sales cannot assign: nothing changes
    sales.post(
        reverse("segmentation:alerts_bulk"),
        {"action": "assign", "alert": [queue["big_recent"].pk], "owner": users["sales2"].pk},
    )
    assert ChurnAlert.objects.get(pk=queue["big_recent"].pk).owner == users["sales"]


def test_bulk_assign_by_a_manager_with_audit_and_validation(queue, client_for, users):
    manager = client_for(english(users["manager"]))
    url = reverse("segmentation:alerts_bulk")
    ids = [queue["big_old"].pk, queue["unknown"].pk]
    response = manager.post(url, {"action": "assign", "alert": ids}, follow=True)
    assert "Choose whom to assign the alerts to." in response.content.decode()
    assert set(ChurnAlert.objects.filter(pk__in=ids).values_list("owner", flat=True)) == {users["sales"].pk}
    response = manager.post(url, {"action": "assign", "alert": ids, "owner": users["sales2"].pk}, follow=True)
    assert "2 alerts assigned." in response.content.decode()
    assert set(ChurnAlert.objects.filter(pk__in=ids).values_list("owner", flat=True)) == {users["sales2"].pk}
    assert AuditEvent.objects.filter(action="segmentation.alert_assigned").count() == 2
    too_many = manager.post(url, {"action": "acknowledge", "alert": list(range(1, 300))}, follow=True)
    assert "at most 200" in too_many.content.decode()
    assert ChurnAlert.objects.filter(status="open").count() == 5


def test_the_badge_counts_what_is_new_for_each_user(
    queue, client_for, users, tenant_b, django_capture_on_commit_callbacks
):
    manager, sales = users["manager"], users["sales"]
    assert selectors.alert_badge(manager) == "5" and selectors.alert_badge(sales) == "3"
    client_for(manager).get(reverse("segmentation:alerts"))
    assert selectors.alert_badge(manager) == ""  # seen
    assert selectors.alert_badge(sales) == "3"  # not by sales
    with django_capture_on_commit_callbacks(execute=True):  # the cached counts are renewed on commit
        _alert(owner=sales, clv="1.00", last_days=3)
    assert selectors.alert_badge(manager) == "1" and selectors.alert_badge(sales) == "4"
    # the other tenant: its own alerts, its own cache keys (same user ids in another schema)
    connection.set_tenant(tenant_b)
    beta_manager = User.objects.get(email="manager@beta.test")
    assert selectors.alert_badge(beta_manager) == ""


def test_the_badge_stops_counting_past_its_most(queue, users, monkeypatch):
    """Past BADGE_MOST the badge says so ("3+" for five new alerts here) instead of counting every one;
    at the most itself it shows the number."""
    monkeypatch.setattr(selectors, "BADGE_MOST", 3)
    manager, sales = users["manager"], users["sales"]
    assert selectors.alert_badge(manager) == "3+"
    assert selectors.new_alert_count(user=manager) == 4  # counted no further than the most + 1
    assert selectors.alert_badge(sales) == "3"  # three: exactly the most


def test_the_badges_leave_out_the_alerts_of_customers_in_the_bin(queue, users):
    """The counts leave the binned customers' alerts out by id (not through a join): the same as the
    queue lists, for a manager and for the owner."""
    manager, sales = users["manager"], users["sales"]
    Customer.objects.filter(pk=queue["big_old"].customer_id).update(deleted_at=timezone.now())
    assert selectors.alert_list(user=manager).count() == 4 and selectors.alert_list(user=sales).count() == 2
    assert (selectors.open_alert_count(user=manager), selectors.open_alert_count(user=sales)) == (4, 2)
    assert (selectors.alert_badge(manager), selectors.alert_badge(sales)) == ("4", "2")


def test_a_registered_action_links_from_the_row_in_one_call_per_page(queue, client_for, users):
    calls = []

    def links(alerts, user):
        calls.append(len(alerts))
        return {queue["middle"].pk: f"/follow-ups/for-alert/{queue['middle'].pk}/"}

    def broken(alerts, user):
        raise RuntimeError("an app's hook failed")

    register_alert_action(AlertAction(key="test.follow_up", label="Follow-up", links=links))
    register_alert_action(AlertAction(key="test.broken", label="Broken", links=broken))
    try:
        html = client_for(english(users["manager"])).get(reverse("segmentation:alerts")).content.decode()
    finally:
        unregister_alert_action("test.follow_up")
        unregister_alert_action("test.broken")
    assert calls == [5]
    assert f'href="/follow-ups/for-alert/{queue["middle"].pk}/"' in html
    assert html.count('data-action="test.follow_up"') == 1 and "Broken" not in html


# --- the evaluation ---------------------------------------------------------------------------------


def test_lifecycle_page_explains_the_rule_and_shows_the_last_evaluation(tenant, client_for, users):
    manager = client_for(english(users["manager"]))
    html = manager.get(reverse("segmentation:lifecycle")).content.decode()
    assert "usual time between purchases" in html and "Not evaluated yet" in html
    call_command(
        "evaluate_alerts", tenant=tenant.slug, simulated=True, seed=7, customers=3000, stdout=StringIO()
    )
    row = AlertEvaluation.objects.get()
    assert row.source == "simulated" and row.seed == 7 and row.beats_naive
    html = manager.get(reverse("segmentation:lifecycle")).content.decode()
    assert f"{round(row.precision * 100)}%" in html and f"{round(row.naive_recall * 100)}%" in html
    assert "did better than the simple rule on both counts" in html
    chinese = users["manager"]
    type(chinese).objects.filter(pk=chinese.pk).update(language="zh-hans")
    html = client_for(chinese).get(reverse("segmentation:lifecycle")).content.decode()
    assert "简单规则" in html


def test_evaluate_alerts_on_a_tenant_reads_nothing_after_the_cutoff(tenant, users):
    today = timezone.now().date()
    cutoff = today - timedelta(days=120)
    days_before = (today - cutoff).days
    # six regulars (every 30 days until the cut-off, then silent), one who comes back in the window
    for _ in range(6):
        customer_with_orders([days_before + d for d in (150, 120, 90, 60, 30, 0)])
    back = customer_with_orders([days_before + d for d in (150, 120, 90, 60, 30)])
    call_command("evaluate_alerts", tenant=tenant.slug, cutoff=cutoff.isoformat(), stdout=StringIO())
    first = AlertEvaluation.objects.get()
    assert first.source == "tenant" and first.cutoff == cutoff and first.customers == 7
    # a purchase after the cut-off changes the outcome only; one after the window changes nothing
    buy(back, days_before - 10)
    buy(back, 5)
    call_command("evaluate_alerts", tenant=tenant.slug, cutoff=cutoff.isoformat(), stdout=StringIO())
    second = AlertEvaluation.objects.order_by("-id").first()
    assert second.flagged == first.flagged and second.naive_flagged == first.naive_flagged
    assert second.lapsed == first.lapsed - 1
    with pytest.raises(CommandError, match="90 days after it must be over"):
        call_command("evaluate_alerts", tenant=tenant.slug, cutoff=(today - timedelta(days=30)).isoformat())
    with pytest.raises(CommandError, match="not a date"):
        call_command("evaluate_alerts", tenant=tenant.slug, cutoff="yesterday")
    with pytest.raises(CommandError, match="No tenant"):
        call_command("evaluate_alerts", tenant="nope")
    assert AlertEvaluation.objects.count() == 2
