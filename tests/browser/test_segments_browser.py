"""Browser: the RFM segments page of a big company, after a change, shows its figures as they were
with "Figures as of <time> (being updated)", then, once the real worker's refresh has landed, reloads
itself with the new figures and no label (crm.reportcache, the report "segments-rfm"). Desktop in
English and 390 px in Chinese, screenshots in test-artifacts/."""

from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from customers.services import customer_delete
from segmentation.models import CustomerScore
from tests.browser.conftest import (
    ARTIFACTS,
    hold_stale,
    let_the_refresh_land,
    sized_page,
    stale_label,
    stale_viewer,
)
from tests.factories import CustomerFactory

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(("language", "width"), [("en", 1280), ("zh-hans", 390)])
def test_stale_segment_figures_are_labelled_then_replaced_without_a_click(
    browser, committed_tenant, tenant_url, login, django_db_blocker, language, width
):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        manager = stale_viewer(tenant, language)
        now = timezone.now()
        customers = [CustomerFactory(name=name) for name in ("王芳", "李娜", "张伟")]
        for customer in customers:
            CustomerScore.objects.create(
                customer=customer,
                rfm_segment="loyal",
                r_score=4,
                f_score=4,
                m_score=4,
                lifecycle_stage="loyal",
                predicted_clv=Decimal("800.00"),
                window_revenue=Decimal("600.00"),
                stage_since=now,
                computed_at=now,
            )
    connection.set_schema_to_public()

    context, page = sized_page(browser, width)
    loyal = page.locator('tr[data-segment="loyal"] [data-figure="customers"]')
    as_of = page.locator('[data-testid="figures-as-of"]')
    try:
        login(page, tenant, f"manager@{tenant.slug}.test")
        page.goto(tenant_url(tenant, "/segments/"))
        assert loyal.inner_text().startswith("3") and as_of.count() == 0

        with django_db_blocker.unblock(), schema_context(tenant.schema_name):
            # The page took "5 s" to compute, and a refresh of it is already under way (its lock
            # held), so the page is served stale and the label can be looked at; then a customer
            # goes to the bin.
            entry, lock = hold_stale("segments-rfm")
            customer_delete(actor=manager, customer=customers[0])

        page.goto(tenant_url(tenant, "/segments/"))
        assert loyal.inner_text().startswith("3"), "as they were, at once"
        assert " ".join(as_of.inner_text().split()) == stale_label(language, entry.computed_at)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"segments_as_of_{language}_{width}.png"), full_page=True)

        let_the_refresh_land(page, lock, tenant=tenant, django_db_blocker=django_db_blocker)
        assert loyal.inner_text().startswith("2")
    finally:
        context.close()
