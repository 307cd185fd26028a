"""Browser: the loyalty overview of a big company, after a change, shows its figures as they were with
"Figures as of <time> (being updated)", then, once the real worker's refresh has landed, reloads itself
with the new figures and no label (crm.reportcache, the report "loyalty-overview"). Desktop in English
and 390 px in Chinese, screenshots in test-artifacts/."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from loyalty import services
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
def test_stale_loyalty_figures_are_labelled_then_replaced_without_a_click(
    browser, committed_tenant, tenant_url, login, django_db_blocker, language, width
):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        manager = stale_viewer(tenant, language)
        member = services.member_enrol(actor=None, customer=CustomerFactory(name="王芳"))
        services.points_adjust(actor=manager, member=member, points=300, reason="welcome")
    connection.set_schema_to_public()

    context, page = sized_page(browser, width)
    points = page.locator('[data-testid="loyalty-figures"]')
    as_of = page.locator('[data-testid="figures-as-of"]')
    try:
        login(page, tenant, f"manager@{tenant.slug}.test")
        page.goto(tenant_url(tenant, "/loyalty/"))
        assert "300" in points.inner_text() and as_of.count() == 0

        with django_db_blocker.unblock(), schema_context(tenant.schema_name):
            # The overview took "5 s" to compute, and a refresh of it is already under way (its lock
            # held), so the page is served stale and the label can be looked at; then 50 points more.
            entry, lock = hold_stale("loyalty-overview")
            services.points_adjust(actor=manager, member=member, points=50, reason="goodwill")

        page.goto(tenant_url(tenant, "/loyalty/"))
        assert "300" in points.inner_text() and "350" not in points.inner_text(), "as they were, at once"
        assert " ".join(as_of.inner_text().split()) == stale_label(language, entry.computed_at)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"loyalty_as_of_{language}_{width}.png"), full_page=True)

        let_the_refresh_land(page, lock, tenant=tenant, django_db_blocker=django_db_blocker)
        assert "350" in points.inner_text()
    finally:
        context.close()
