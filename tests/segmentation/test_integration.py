"""Segmentation on the customer pages: list filters and columns (no N+1), the "Value" panel, the
timeline, the navigation badge, and the builder preview agreeing with the saved-segment filter."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers.selectors import customer_list
from customers.views import COLUMNS_SESSION_KEY
from segmentation.models import ChurnAlert, CustomerScore, LifecycleTransition
from segmentation.recompute import recompute
from segmentation.services import alert_create, segment_create
from tests.conftest import clear_run_cache
from tests.factories import CustomerFactory

from .conftest import customer_with_orders, english

SEGMENTATION_COLUMNS = ["rfm_segment", "lifecycle_stage", "predicted_clv", "probability_alive"]


def make_score(customer, **values):
    now = timezone.now()
    return CustomerScore.objects.create(customer=customer, stage_since=now, computed_at=now, **values)


@pytest.fixture
def scored_customers(tenant, sales_user, sales_user2):
    champion = CustomerFactory(owner=sales_user, city="Shanghai")
    make_score(
        champion,
        rfm_segment="champions",
        lifecycle_stage="loyal",
        predicted_clv=900,
        probability_alive=0.95,
        r_score=5,
        f_score=5,
        m_score=5,
        clv_model="bgnbd_gg",
    )
    slipping = CustomerFactory(owner=sales_user2, city="Shanghai")
    make_score(
        slipping,
        rfm_segment="at_risk",
        lifecycle_stage="at_risk",
        predicted_clv=300,
        probability_alive=0.2,
        r_score=1,
        f_score=4,
        m_score=4,
        clv_model="bgnbd_gg",
    )
    prospect = CustomerFactory(owner=sales_user, city="Beijing")
    make_score(prospect, lifecycle_stage="prospect")
    return champion, slipping, prospect


def ids(qs) -> set[int]:
    return set(qs.values_list("pk", flat=True))


def test_registered_filters_narrow_the_customer_list(scored_customers, manager_user, sales_user, sales_user2):
    champion, slipping, prospect = scored_customers
    assert ids(customer_list(user=manager_user, filters={"rfm_segment": "champions"})) == {champion.pk}
    assert ids(customer_list(user=manager_user, filters={"lifecycle_stage": "at_risk"})) == {slipping.pk}
    assert ids(customer_list(user=manager_user, filters={"clv_min": 200, "clv_max": 500})) == {slipping.pk}
    assert ids(customer_list(user=manager_user, filters={"alive_below": 0.5})) == {slipping.pk}
    shanghai = segment_create(
        actor=sales_user2,
        name="Shanghai",
        is_shared=False,
        rules={"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Shanghai"}]},
    )
    assert ids(customer_list(user=manager_user, filters={"segment": shanghai.pk})) == {
        champion.pk,
        slipping.pk,
    }
    # a sales user sees only their own customers, and cannot use another's private segment
    assert ids(customer_list(user=sales_user2, filters={"segment": shanghai.pk})) == {slipping.pk}
    assert ids(customer_list(user=sales_user, filters={"segment": shanghai.pk})) == set()


def test_the_list_page_filters_by_segment_in_the_query_string(scored_customers, manager_client):
    champion, slipping, _prospect = scored_customers
    response = manager_client.get(reverse("customers:list"), {"rfm_segment": "at_risk"})
    assert response.status_code == 200
    page_ids = {c.pk for c in response.context["page"].rows}
    assert page_ids == {slipping.pk}


def _list_queries(client) -> int:
    clear_run_cache()  # the navigation badge is cached: start each measurement alike
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("customers:list"), {"sort": "-predicted_clv"})
    assert response.status_code == 200
    return len(queries)


def test_list_query_count_does_not_grow_with_rows_when_the_columns_are_on(tenant, manager_user, client_for):
    english(manager_user)
    client = client_for(manager_user)
    session = client.session
    session[COLUMNS_SESSION_KEY] = ["orders", *SEGMENTATION_COLUMNS]
    session.save()
    customer = CustomerFactory()
    make_score(customer, rfm_segment="new", lifecycle_stage="new", predicted_clv=10, probability_alive=0.5)
    one = _list_queries(client)
    for index in range(30):
        other = CustomerFactory()
        make_score(
            other, rfm_segment="lost", lifecycle_stage="churned", predicted_clv=index, probability_alive=0.1
        )
    CustomerFactory.create_batch(5)  # no score at all: the cells are empty, still no extra query
    many = _list_queries(client)
    assert one == many
    response = client.get(reverse("customers:list"))
    html = response.content.decode()
    assert "Lost" in html and "Churned" in html and "10%" in html


def test_builder_preview_counts_what_the_saved_segment_filters(scored_customers, client_for, users):
    champion, slipping, prospect = scored_customers
    CustomerFactory.create_batch(3, city="Shanghai")  # unscored customers in Shanghai
    rules = {
        "op": "and",
        "rules": [
            {"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Shanghai"}]},
            {
                "op": "or",
                "rules": [
                    {"field": "rfm_segment", "op": "in", "value": ["champions", "at_risk"]},
                    {"field": "predicted_clv", "op": "is_empty"},
                ],
            },
        ],
    }
    segment = segment_create(actor=users["manager"], name="Shanghai mix", rules=rules)
    form = {
        "top_op": "and",
        "g0_op": "and",
        "g0_c0_field": "city",
        "g0_c0_op": "eq",
        "g0_c0_value": "Shanghai",
        "g1_op": "or",
        "g1_c0_field": "rfm_segment",
        "g1_c0_op": "in",
        "g1_c0_value": ["champions", "at_risk"],
        "g1_c1_field": "predicted_clv",
        "g1_c1_op": "is_empty",
    }
    for role in ("manager", "sales", "sales2"):
        client = client_for(users[role])
        preview = client.post(reverse("segmentation:builder_preview"), form)
        previewed = int(re.search(r'data-count="(\d+)"', preview.content.decode()).group(1))
        listed = customer_list(user=users[role], filters={"segment": segment.pk}).count()
        page = client.get(reverse("customers:list"), {"segment": segment.pk})
        assert previewed == listed == page.context["total"].value, role
    assert listed == 1  # sales2 sees only their own at-risk customer


def test_value_panel_timeline_and_badge_on_the_customer_pages(
    tenant, sales_user, client_for, django_capture_on_commit_callbacks
):
    customer = customer_with_orders([40, 20], owner=sales_user)
    recompute()
    english(sales_user)
    LifecycleTransition.objects.create(
        customer=customer, from_stage="repeat", to_stage="at_risk", at=timezone.now()
    )
    alert = alert_create(customer=customer, reason="entered_at_risk", details={"stage": "at_risk"})
    client = client_for(sales_user)
    response = client.get(reverse("customers:detail", args=[customer.pk]))
    html = response.content.decode()
    assert 'data-panel="segmentation.value"' in html
    assert 'data-testid="historical-estimate"' in html  # one customer: the model falls back, and says so
    timeline = client.get(reverse("customers:timeline", args=[customer.pk])).content.decode()
    assert "Stage: Repeat → At risk" in timeline
    assert "Churn alert: Moved into At risk" in timeline
    badge = re.search(r'data-nav="segments".*?text-bg-danger">(\d+)<', html, re.S)
    assert badge and badge.group(1) == "1"

    with django_capture_on_commit_callbacks(execute=True):  # the badge cache is invalidated on commit
        response = client.post(
            reverse("segmentation:alert_acknowledge", args=[alert.pk]), HTTP_HX_REQUEST="true"
        )
    assert response.status_code == 200 and 'data-alert-status="acknowledged"' in response.content.decode()
    html = client.get(reverse("segmentation:index")).content.decode()
    assert not re.search(r'data-nav="segments".*?text-bg-danger', html.split("</nav>")[0], re.S)


def test_timeline_providers_respect_before_and_limit(tenant):
    customer = CustomerFactory()
    now = timezone.now()
    for days in (1, 2, 3):
        LifecycleTransition.objects.create(
            customer=customer,
            from_stage="new",
            to_stage="repeat" if days % 2 else "loyal",
            at=now - timedelta(days=days),
        )
    from segmentation.integration import stage_changes_provider

    entries = list(
        stage_changes_provider(customer=customer, before=now - timedelta(days=1, hours=1), limit=1)
    )
    assert (
        len(entries) == 1 and entries[0].when == now - timedelta(days=2) and entries[0].kind == "stage_change"
    )
    assert ChurnAlert.objects.count() == 0


def test_a_heatmap_cell_opens_the_list_of_its_customers(scored_customers, manager_user, manager_client):
    champion, slipping, _prospect = scored_customers
    assert ids(customer_list(user=manager_user, filters={"r_score": "1", "f_score": "4"})) == {slipping.pk}
    assert ids(customer_list(user=manager_user, filters={"r_score": "5"})) == {champion.pk}
    english(manager_user)
    page = manager_client.get(reverse("segmentation:index")).content.decode()
    link = re.search(r'href="([^"]+)" data-testid="heatmap-cell-14"', page)
    assert link and 'data-testid="heatmap-cell-11"' not in page  # empty cells are not links
    listed = manager_client.get(link.group(1).replace("&amp;", "&")).content.decode()
    assert set(map(int, re.findall(r'data-customer="(\d+)"', listed))) == {slipping.pk}


def test_the_saved_segment_filter_offers_what_the_viewer_may_use(
    tenant, sales_user, sales_user2, manager_user, client_for
):
    rules = {"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Shanghai"}]}
    shared = segment_create(actor=manager_user, name="Everyone's", is_shared=True, rules=rules)
    mine = segment_create(actor=sales_user, name="Mine only", is_shared=False, rules=rules)
    theirs = segment_create(actor=sales_user2, name="Theirs only", is_shared=False, rules=rules)

    def offered(user) -> set[int]:
        page = client_for(user).get(reverse("customers:list")).content.decode()
        select = re.search(r'<select name="segment"[^>]*>(.*?)</select>', page, re.S)
        assert select, "the saved-segment filter is in the filter bar"
        return {int(v) for v in re.findall(r'<option value="(\d+)"', select.group(1))}

    assert offered(sales_user) == {shared.pk, mine.pk}
    assert offered(sales_user2) == {shared.pk, theirs.pk}
    assert offered(manager_user) == {shared.pk, mine.pk, theirs.pk}
