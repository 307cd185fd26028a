"""Browser: a manager's overview whose figures are being recomputed after a change shows the figures
as they were with "Figures as of <time> (being updated)", then, once the real worker's refresh has
landed, reloads itself with the new figures and no label (dashboards.caching). Desktop in English and
390 px in Chinese, screenshots in test-artifacts/."""

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from tests.browser.conftest import (
    ARTIFACTS,
    hold_stale,
    let_the_refresh_land,
    sized_page,
    stale_label,
    stale_viewer,
)
from tests.dashboards.test_stale_figures import _order
from tests.factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.browser

YEAR_2024 = "/dashboards/?range=custom&from=2024-01-01&to=2024-12-31"


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.parametrize(("language", "width"), [("en", 1280), ("zh-hans", 390)])
def test_stale_figures_are_labelled_then_replaced_without_a_click(
    browser, committed_tenant, tenant_url, login, django_db_blocker, language, width
):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        manager = stale_viewer(tenant, language)
        placed_at = datetime(2024, 3, 5, 12, tzinfo=ZoneInfo("Asia/Shanghai"))
        OrderFactory(customer=CustomerFactory(name="王芳"), total=Decimal("88"), placed_at=placed_at)
    connection.set_schema_to_public()

    context, page = sized_page(browser, width)
    orders = page.locator('[data-figure="orders"]')
    as_of = page.locator('[data-testid="figures-as-of"]')
    try:
        login(page, tenant, f"manager@{tenant.slug}.test")
        page.goto(tenant_url(tenant, YEAR_2024))
        assert orders.inner_text().strip() == "1" and as_of.count() == 0

        with django_db_blocker.unblock(), schema_context(tenant.schema_name):
            # The overview took "5 s" to compute, and a refresh of it is already under way (its lock
            # held), so the page is served stale and the label can be looked at; then an order.
            entry, lock = hold_stale("overview-and-chart")
            _order(manager, CustomerFactory(name="李雷"), "SO-STALE")  # autocommit: the version changes

        page.goto(tenant_url(tenant, YEAR_2024))
        assert orders.inner_text().strip() == "1", "the figures as they were, at once"
        assert " ".join(as_of.inner_text().split()) == stale_label(language, entry.computed_at)
        assert _fits(page)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"stale_figures_{language}_{width}.png"), full_page=True)

        let_the_refresh_land(page, lock, tenant=tenant, django_db_blocker=django_db_blocker)
        assert orders.inner_text().strip() == "2"
    finally:
        context.close()
