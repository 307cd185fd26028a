"""Browser: a manager runs a recompute and watches its progress, opens an RFM segment, then opens a
saved segment; both land on the customer list filtered to the right customers."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from crm.accounts.models import User
from segmentation.models import CustomerScore
from segmentation.services import segment_create
from tests.segmentation.conftest import customer_with_orders

pytestmark = [pytest.mark.browser, pytest.mark.celery_worker]


def test_recompute_progress_then_segment_and_saved_segment_filter_the_list(
    page, committed_tenant, login, tenant_url, django_db_blocker
):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        regulars = [customer_with_orders([90, 60, 30, 5], city="上海") for _ in range(3)]
        newcomers = [customer_with_orders([3], city="北京") for _ in range(2)]
        lapsed = customer_with_orders([700, 650], city="上海")
        manager = User.objects.get(email=f"manager@{tenant.slug}.test")
        saved = segment_create(
            actor=manager,
            name="Shanghai customers",
            rules={"op": "and", "rules": [{"field": "city", "op": "eq", "value": "上海"}]},
        )
    connection.set_schema_to_public()

    login(page, tenant, f"manager@{tenant.slug}.test")
    page.goto(tenant_url(tenant, "/segments/"))
    assert page.get_by_text("Scores have not been computed yet.").is_visible()
    page.click('[data-testid="recompute-button"]')
    page.locator(".job-progress").wait_for()  # the progress bar replaces the button
    # When the job has finished the page reloads itself with the new figures: no manual refresh.
    page.get_by_text("for 6 customers").wait_for(timeout=60_000)
    assert page.locator(".job-progress").count() == 0
    assert page.locator('[data-testid="recompute-button"]').is_visible()

    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        segment = CustomerScore.objects.get(customer=regulars[0]).rfm_segment
        same_segment = set(
            CustomerScore.objects.filter(rfm_segment=segment).values_list("customer_id", flat=True)
        )
        assert CustomerScore.objects.count() == 6
    connection.set_schema_to_public()

    page.click(f'[data-testid="segment-link-{segment}"]')
    page.wait_for_url(f"**/customers/?rfm_segment={segment}")
    page.locator("tr[data-customer]").first.wait_for()
    shown = {
        int(v)
        for v in page.locator("tr[data-customer]").evaluate_all("rows => rows.map(r => r.dataset.customer)")
    }
    assert shown == same_segment and regulars[0].pk in shown

    page.goto(tenant_url(tenant, "/segments/saved/"))
    page.locator(f'tr[data-segment-id="{saved.pk}"] [data-count="4"]').wait_for()  # the live count
    page.click(f'tr[data-segment-id="{saved.pk}"] [data-testid="open-segment"]')
    page.wait_for_url(f"**/customers/?segment={saved.pk}")
    page.locator("tr[data-customer]").first.wait_for()
    shown = {
        int(v)
        for v in page.locator("tr[data-customer]").evaluate_all("rows => rows.map(r => r.dataset.customer)")
    }
    assert shown == {c.pk for c in regulars} | {lapsed.pk}
    assert not shown & {c.pk for c in newcomers}
