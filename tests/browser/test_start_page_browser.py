"""Browser: a big company's first visit of a day to the start page shows the day before's figures at
once with "Figures as of <date and time> (being updated)", then, once the real worker's refresh has
landed, reloads itself with today's figures and no label (dashboards.caching, the daily report
"home"). Desktop in English and 390 px in Chinese, screenshots in test-artifacts/."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.browser.conftest import (
    ARTIFACTS,
    hold_stale,
    let_the_refresh_land,
    sized_page,
    stale_label,
    stale_viewer,
)
from tests.dashboards.test_start_page_cache import _order
from tests.factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(("language", "width"), [("en", 1280), ("zh-hans", 390)])
def test_the_day_befores_start_page_is_labelled_then_replaced_without_a_click(
    browser, committed_tenant, tenant_url, login, django_db_blocker, language, width
):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        manager = stale_viewer(tenant, language)
        OrderFactory(customer=CustomerFactory(name="王芳"), total=Decimal("88"), placed_at=timezone.now())
    connection.set_schema_to_public()

    context, page = sized_page(browser, width)
    revenue = page.locator('[data-figure="revenue"]')
    as_of = page.locator('[data-testid="figures-as-of"]')
    try:
        login(page, tenant, f"manager@{tenant.slug}.test")
        page.goto(tenant_url(tenant, "/"))
        assert revenue.inner_text().strip() == "¥88.00" and as_of.count() == 0

        with django_db_blocker.unblock(), schema_context(tenant.schema_name):
            # Computed yesterday, in "5 s", and a refresh of it already under way (its lock held),
            # so the page is served stale and the label can be looked at; then an order of today.
            entry, lock = hold_stale("home", computed_at=timezone.now() - timedelta(days=1))
            _order(manager, CustomerFactory(name="李雷"), "SO-HOME")  # ¥10, autocommit

        page.goto(tenant_url(tenant, "/"))
        assert revenue.inner_text().strip() == "¥88.00", "the day before's figures, at once"
        # a date and a time: it was computed on another day
        assert " ".join(as_of.inner_text().split()) == stale_label(language, entry.computed_at)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"start_page_as_of_{language}_{width}.png"), full_page=True)

        let_the_refresh_land(page, lock, tenant=tenant, django_db_blocker=django_db_blocker)
        assert revenue.inner_text().strip() == "¥98.00"
    finally:
        context.close()
