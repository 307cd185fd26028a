from urllib.parse import urlencode

import pytest
from django.db import connection
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from crm.accounts.models import User
from crm.jobs.models import BackgroundJob
from segmentation.models import ChurnAlert, Segment, SegmentationSettings
from segmentation.recompute import recompute
from segmentation.services import RECOMPUTE_JOB_KIND, alert_create, segment_create
from tests.conftest import clear_run_cache
from tests.factories import CustomerFactory

from .conftest import customer_with_orders, english

PAGES = ["index", "clv", "lifecycle", "alerts", "segments", "builder"]


@pytest.fixture
def scored(tenant, sales_user, sales_user2):
    mine = [
        customer_with_orders([5], owner=sales_user),
        customer_with_orders([100, 70, 40, 10], owner=sales_user),
    ]
    theirs = [
        customer_with_orders([3, 2], owner=sales_user2),
        customer_with_orders([800, 700], owner=sales_user2),
    ]
    recompute()
    return mine, theirs


@pytest.mark.parametrize("page", PAGES)
def test_every_role_can_open_the_pages(scored, client_for, users, page):
    for role in ("sales", "manager", "admin"):
        response = client_for(users[role]).get(reverse(f"segmentation:{page}"))
        assert response.status_code == 200, (role, page)


def test_history_is_for_managers_and_settings_for_admins(scored, client_for, users):
    assert client_for(users["sales"]).get(reverse("segmentation:history")).status_code == 403
    assert client_for(users["manager"]).get(reverse("segmentation:history")).status_code == 200
    assert client_for(users["manager"]).get(reverse("segmentation:settings")).status_code == 403
    assert client_for(users["sales"]).get(reverse("segmentation:settings")).status_code == 403
    assert client_for(users["admin"]).get(reverse("segmentation:settings")).status_code == 200


def test_anonymous_visitors_are_sent_to_sign_in(anon_client):
    response = anon_client.get(reverse("segmentation:index"))
    assert response.status_code == 302 and "/accounts/login" in response["Location"]


# --- recompute button ---------------------------------------------------------------------------------


def test_sales_cannot_start_a_recompute_and_a_second_click_joins_the_first(tenant, client_for, users):
    url = reverse("segmentation:recompute")
    assert client_for(users["sales"]).post(url).status_code == 403
    first = client_for(users["manager"]).post(url, HTTP_HX_REQUEST="true")
    assert first.status_code == 200 and 'class="job-progress"' in first.content.decode()
    second = client_for(users["admin"]).post(url)
    assert second.status_code == 302
    jobs = BackgroundJob.objects.filter(kind=RECOMPUTE_JOB_KIND)
    assert jobs.count() == 1
    assert f'id="job-{jobs.get().pk}"' in first.content.decode()
    # the overview shows the running job's progress instead of the button
    html = client_for(users["manager"]).get(reverse("segmentation:index")).content.decode()
    assert f'id="job-{jobs.get().pk}"' in html and 'data-testid="recompute-button"' not in html


# --- alerts --------------------------------------------------------------------------------------------


@pytest.fixture
def alerts(tenant, users):
    from tests.factories import CustomerFactory

    mine = alert_create(customer=CustomerFactory(owner=users["sales"]), reason="entered_at_risk")
    theirs = alert_create(customer=CustomerFactory(owner=users["sales2"]), reason="entered_cannot_lose")
    return mine, theirs


def test_sales_see_and_handle_only_their_own_alerts(alerts, client_for, users):
    mine, theirs = alerts
    sales = client_for(users["sales"])
    html = sales.get(reverse("segmentation:alerts")).content.decode()
    assert f'id="alert-{mine.pk}"' in html and f'id="alert-{theirs.pk}"' not in html
    assert sales.post(reverse("segmentation:alert_dismiss", args=[theirs.pk])).status_code == 404
    response = sales.post(reverse("segmentation:alert_dismiss", args=[mine.pk]), HTTP_HX_REQUEST="true")
    assert 'data-alert-status="dismissed"' in response.content.decode()
    html = (
        client_for(users["manager"]).get(reverse("segmentation:alerts"), {"status": "all"}).content.decode()
    )
    assert f'id="alert-{mine.pk}"' in html and f'id="alert-{theirs.pk}"' in html
    html = client_for(users["manager"]).get(reverse("segmentation:alerts")).content.decode()
    assert f'id="alert-{mine.pk}"' not in html  # handled: no longer open


def test_alerts_and_segments_stay_in_their_tenant(alerts, tenant_b, client_for, users):
    mine, _theirs = alerts
    segment = segment_create(actor=users["manager"], name="Alpha only", rules=RULES)
    connection.set_tenant(tenant_b)
    beta_manager = User.objects.get(email="manager@beta.test")
    beta = client_for(beta_manager, tenant_b)
    html = beta.get(reverse("segmentation:alerts"), {"status": "all"}).content.decode()
    assert 'data-testid="no-alerts"' in html
    assert beta.post(reverse("segmentation:alert_acknowledge", args=[mine.pk])).status_code == 404
    assert beta.get(reverse("segmentation:segment_open", args=[segment.pk])).status_code == 404
    assert "Alpha only" not in beta.get(reverse("segmentation:segments")).content.decode()
    assert ChurnAlert.objects.count() == 0 and Segment.objects.count() == 0  # beta's own tables


# --- saved segments and the builder --------------------------------------------------------------------

RULES = {"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Shanghai"}]}


def test_private_segments_are_for_their_author_and_managers(tenant, client_for, users):
    private = segment_create(actor=users["sales"], name="My list", rules=RULES, is_shared=False)
    shared = segment_create(actor=users["sales"], name="Team list", rules=RULES)
    other = client_for(users["sales2"])
    html = other.get(reverse("segmentation:segments")).content.decode()
    assert "Team list" in html and "My list" not in html
    assert other.get(reverse("segmentation:segment_open", args=[private.pk])).status_code == 404
    assert other.get(reverse("segmentation:builder_edit", args=[shared.pk])).status_code == 403
    assert other.post(reverse("segmentation:segment_delete", args=[shared.pk])).status_code == 403
    opened = client_for(users["manager"]).get(reverse("segmentation:segment_open", args=[private.pk]))
    assert (
        opened.status_code == 302
        and opened["Location"] == f"{reverse('customers:list')}?segment={private.pk}"
    )
    count = client_for(users["sales"]).get(reverse("segmentation:segment_count", args=[private.pk]))
    assert 'data-count="0"' in count.content.decode()


def test_builder_saves_a_valid_segment_and_explains_a_bad_one(tenant, client_for, users):
    english(users["sales"])
    client = client_for(users["sales"])
    form = {
        "name": "Big spenders",
        "description": "",
        "is_shared": "on",
        "top_op": "and",
        "g0_op": "and",
        "g0_c0_field": "total_spent",
        "g0_c0_op": "gte",
        "g0_c0_value": "lots",
    }
    response = client.post(reverse("segmentation:builder"), form)
    assert response.status_code == 400
    assert "Group 1, condition 1 (Total spent): enter a number." in response.content.decode()
    assert not Segment.objects.exists()
    form["g0_c0_value"] = "1000"
    response = client.post(reverse("segmentation:builder"), form)
    assert response.status_code == 302
    segment = Segment.objects.get()
    assert segment.rules == {
        "op": "and",
        "rules": [{"op": "and", "rules": [{"field": "total_spent", "op": "gte", "value": 1000}]}],
    }
    edit = client.get(reverse("segmentation:builder_edit", args=[segment.pk])).content.decode()
    assert 'value="1000"' in edit and 'name="g0_c0_field"' in edit


def test_builder_refresh_adds_conditions_and_follows_the_chosen_field(tenant, client_for, users):
    client = client_for(users["sales"])
    form = {
        "top_op": "and",
        "g0_op": "and",
        "g0_c0_field": "rfm_segment",
        "g0_c0_op": "gte",
        "action": "add_condition:0",
    }
    html = client.post(reverse("segmentation:builder_refresh"), form).content.decode()
    assert 'name="g0_c1_field"' in html
    assert 'type="checkbox" name="g0_c0_value"' in html  # segment -> values to tick
    assert '<option value="in" selected>' in html


# --- settings and history -----------------------------------------------------------------------------


def test_admin_updates_settings_with_clear_errors(tenant, client_for, users):
    english(users["admin"])
    client = client_for(users["admin"])
    data = client.get(reverse("segmentation:settings")).context["form"].initial
    data = {key: value for key, value in data.items() if value is not None and key != "id"}
    data.update({"scoring_method": "thresholds", "thresholds_recency": "90, 30", "churn_multiplier": "1"})
    response = client.post(reverse("segmentation:settings"), data)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "thresholds_recency" in errors and "churn_multiplier" in errors
    data.update({"thresholds_recency": "7, 30, 90, 180", "churn_multiplier": "3", "margin": "0.25"})
    response = client.post(reverse("segmentation:settings"), data)
    assert response.status_code == 302
    row = SegmentationSettings.objects.get()
    assert row.scoring_method == "thresholds" and row.score_thresholds == {
        "recency": [7.0, 30.0, 90.0, 180.0]
    }
    assert str(row.margin) == "0.2500" and row.updated_by == users["admin"]


def test_history_shows_snapshots_and_movement_after_two_runs(scored, client_for, users):
    from customers.models import Order

    mine, _theirs = scored
    Order.objects.filter(customer=mine[0]).delete()  # the new customer's only purchase is gone
    recompute()
    response = client_for(users["manager"]).get(reverse("segmentation:history"))
    assert response.context["has_history"] and len(response.context["chart"]["dates"]) == 2
    movement = response.context["movement"]
    assert movement["moved_total"] >= 1
    assert 'data-testid="movement-table"' in response.content.decode()


# --- query counts ----------------------------------------------------------------------------------


def _queries(client, url, **params) -> int:
    from django.test.utils import CaptureQueriesContext

    clear_run_cache()
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, params).status_code == 200
    return len(queries)


@pytest.mark.parametrize("page", ["alerts", "lifecycle", "clv", "segments", "index"])
def test_page_query_counts_do_not_grow_with_rows(tenant, client_for, users, page):
    from tests.factories import CustomerFactory

    client = client_for(users["manager"])
    url = reverse(f"segmentation:{page}")

    def add(n):
        for _ in range(n):
            customer = customer_with_orders([40, 10], owner=users["sales"])
            alert_create(customer=customer, reason="entered_at_risk")
            segment_create(actor=users["sales"], name=f"S{customer.pk}", rules=RULES)
        CustomerFactory()
        recompute()

    add(1)
    few = _queries(client, url, status="all")
    add(15)
    assert _queries(client, url, status="all") == few


@pytest.mark.parametrize("value", ["1e400000", "1e10000000", "9" * 10_000, "nan"])
def test_builder_preview_answers_a_huge_number_with_an_error_not_a_500(tenant, client_for, users, value):
    import time

    english(users["sales"])
    client = client_for(users["sales"])
    form = {
        "top_op": "and",
        "g0_op": "and",
        "g0_c0_field": "orders_count",
        "g0_c0_op": "gte",
        "g0_c0_value": value,
    }
    started = time.perf_counter()
    response = client.post(reverse("segmentation:builder_preview"), form)
    assert time.perf_counter() - started < 2
    assert response.status_code in (200, 400)
    body = response.content.decode()
    assert "Group 1, condition 1 (Order count):" in body
    assert "enter a number" in body or "too long" in body


def test_the_clv_page_speaks_plainly_and_keeps_the_model_jargon_behind_a_disclosure(
    scored, client_for, users
):
    """Issue 15: "预测 CLV", "BG/NBD", r/α, log-likelihood and "存活概率" were up front. Up front now:
    what customer lifetime value means, why the expected order value differs from a plain average,
    what the RFM window is; the model's parameters sit inside a "model details" <details>."""
    manager = users["manager"]
    User.objects.filter(pk=manager.pk).update(language="zh-hans")
    html = client_for(manager).get(reverse("segmentation:clv")).content.decode()
    details_start = html.index('data-testid="model-details"')
    details_end = html.index("</details>", details_start)
    outside = html[:details_start] + html[details_end:]
    for jargon in ("BG/NBD", "Log-likelihood", "对数似然", "r, α", "存活概率", "预测 CLV"):
        assert jargon not in outside, jargon
    assert "所用模型" in html[details_start:details_end]  # "Model used", with its parameters when fitted
    assert "客户终身价值" in outside and "活跃概率" in outside
    assert 'data-testid="clv-explained"' in html and "预期客单价" in outside
    assert 'data-testid="rfm-window"' in html and "最近 365 天" in outside


def test_the_history_chart_gets_times_for_a_real_time_axis(scored, client_for, users):
    """The segment history chart spaced runs evenly (a month looked like a minute): the page sends
    each run's time, which charts.js puts on a linear time axis."""
    recompute()
    response = client_for(users["manager"]).get(reverse("segmentation:history"))
    chart = response.context["chart"]
    assert len(chart["times"]) == len(chart["dates"]) == 2
    assert chart["times"] == sorted(chart["times"]) and all(isinstance(t, int) for t in chart["times"])


# --- the builder as a new user meets it (issue 15) ---------------------------------------------------


def test_the_untouched_builder_shows_no_error_but_everyone(tenant, client_for, users):
    english(users["sales"])
    client = client_for(users["sales"])
    CustomerFactory(owner=users["sales"], name="Ann Early")
    page = client.get(reverse("segmentation:builder")).content.decode()
    assert 'data-testid="rule-errors"' not in page and "alert-danger" not in page
    for form in ({"top_op": "and", "g0_op": "and", "g0_c0_field": ""}, {"top_op": "and"}):
        preview = client.post(reverse("segmentation:builder_preview"), form).content.decode()
        assert "text-danger" not in preview and "rule-errors" not in preview
        assert 'data-count="1"' in preview and "no conditions yet" in preview
    # a field chosen but no value yet: a hint, not a red error
    preview = client.post(
        reverse("segmentation:builder_preview"),
        {"top_op": "and", "g0_op": "and", "g0_c0_field": "total_spent", "g0_c0_op": "gte", "g0_c0_value": ""},
    ).content.decode()
    assert "text-danger" not in preview and 'data-testid="rule-hints"' in preview


def test_a_quantity_starts_with_at_least(tenant, client_for, users):
    """Issue 15: "Total spent is 1000" matched almost nobody; money and counts start at "at least"."""
    from segmentation.rules import available_fields

    client = client_for(users["sales"])
    for key in ("total_spent", "orders_count", "predicted_clv", "probability_alive"):
        html = client.post(
            reverse("segmentation:builder_refresh"), {"top_op": "and", "g0_op": "and", "g0_c0_field": key}
        ).content.decode()
        assert '<option value="gte" selected>' in html, key
    fields = available_fields()
    assert fields["total_spent"].default_operator == "gte"
    assert fields["city"].default_operator == "eq" and fields["rfm_segment"].default_operator == "in"


def test_many_values_are_ticked_without_ctrl_click_with_a_search_box(tenant, client_for, users):
    from customers.models import Tag

    client = client_for(users["sales"])
    for index in range(8):
        Tag.objects.create(name=f"tag-{index}")
    html = client.post(
        reverse("segmentation:builder_refresh"),
        {
            "top_op": "and",
            "g0_op": "and",
            "g0_c0_field": "tags",
            "g0_c0_op": "has_any",
            "g0_c0_value": ["tag-1"],
        },
    ).content.decode()
    assert "multiple" not in html
    assert html.count('type="checkbox" name="g0_c0_value"') == 8
    assert "data-choice-filter" in html  # a long list gets a search box


def test_chance_still_active_is_entered_and_shown_in_percent(tenant, client_for, users, sales_user):
    from segmentation.builder import builder_context, rules_from_post
    from segmentation.models import CustomerScore

    english(users["sales"])
    client = client_for(users["sales"])
    likely = CustomerFactory(owner=sales_user, name="Likely")
    unlikely = CustomerFactory(owner=sales_user, name="Unlikely")
    for customer, chance in ((likely, "0.80"), (unlikely, "0.30")):
        CustomerScore.objects.create(
            customer=customer,
            recency_days=1,
            frequency=1,
            monetary="10.00",
            probability_alive=chance,
            stage_since=timezone.now(),
            computed_at=timezone.now(),
        )
    form = {"top_op": "and", "g0_op": "and", "g0_c0_field": "probability_alive", "g0_c0_op": "gte"}
    rules = rules_from_post(QueryDict(urlencode({**form, "g0_c0_value": "50"})))
    assert rules["rules"][0]["rules"][0]["value"] == "0.5"
    preview = client.post(
        reverse("segmentation:builder_preview"), {**form, "g0_c0_value": "50"}
    ).content.decode()
    assert 'data-count="1"' in preview and "Likely" in preview and "Unlikely" not in preview
    stored = {"field": "probability_alive", "op": "gte", "value": 0.5}
    shown = builder_context({"op": "and", "rules": [{"op": "and", "rules": [stored]}]})
    assert shown["groups"][0]["conditions"][0]["value"] == "50"
    page = client.get(reverse("segmentation:builder")).content.decode()
    assert "Chance still active (%)" in page and "(0-1)" not in page


def test_the_preview_lists_the_first_customers_and_a_saved_segment_can_be_exported_and_acted_on(
    tenant, client_for, users, sales_user
):
    english(users["sales"])
    client = client_for(users["sales"])
    customers = [
        customer_with_orders([5], amount=f"{100 * (i + 1)}.00", owner=sales_user, name=f"Buyer {i}")
        for i in range(12)
    ]
    from customers.services import customer_refresh_order_stats

    customer_refresh_order_stats(customer_ids=[c.pk for c in customers])
    form = {
        "top_op": "and",
        "g0_op": "and",
        "g0_c0_field": "total_spent",
        "g0_c0_op": "gte",
        "g0_c0_value": "100",
    }
    preview = client.post(reverse("segmentation:builder_preview"), form).content.decode()
    assert 'data-count="12"' in preview
    assert preview.count('href="/customers/') == 10
    assert reverse("customers:detail", args=[customers[-1].pk]) in preview  # the biggest spender first
    assert 'data-testid="preview-save-hint"' in preview and 'data-testid="preview-actions"' not in preview
    segment = segment_create(
        actor=sales_user,
        name="Spenders",
        rules={
            "op": "and",
            "rules": [{"op": "and", "rules": [{"field": "total_spent", "op": "gte", "value": 100}]}],
        },
        description="",
        is_shared=False,
    )
    saved = client.post(
        reverse("segmentation:builder_preview"), {**form, "segment": segment.pk}
    ).content.decode()
    assert reverse("segmentation:segment_open", args=[segment.pk]) in saved
    assert reverse("customers:export") + f"?segment={segment.pk}" in saved
    export_page = client.get(reverse("customers:export") + f"?segment={segment.pk}")
    assert export_page.status_code == 200 and export_page.context["count"] == 12
    changed = client.post(
        reverse("segmentation:builder_preview"), {**form, "g0_c0_value": "500", "segment": segment.pk}
    ).content.decode()
    assert 'data-testid="preview-actions"' not in changed  # the saved rules are not the ones shown


def test_a_percentage_out_of_range_is_explained_in_percent(tenant, client_for, users):
    english(users["sales"])
    client = client_for(users["sales"])
    form = {"top_op": "and", "g0_op": "and", "g0_c0_field": "probability_alive", "g0_c0_op": "gte"}
    preview = client.post(
        reverse("segmentation:builder_preview"), {**form, "g0_c0_value": "150"}
    ).content.decode()
    assert "enter a percentage from 0 to 100" in preview
    assert "at most 1" not in preview
