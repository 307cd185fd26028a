"""Browser: a manager opens the reports, reads a figure, opens the customers behind it (the same
number), then the cohort table and its chart. Desktop in English and 390 px in Chinese (screenshots in
test-artifacts/); the pages fit the phone's width and the charts draw without a CSP violation."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.accounts.models import User
from tests.browser.conftest import ARTIFACTS
from tests.factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.browser

TEXT = {
    "en": {"new": "New customers", "listed": "3 customers", "cohorts": "Cohort retention"},
    "zh-hans": {"new": "新客户", "listed": "3 位客户", "cohorts": "群组留存"},
}


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"reports_{name}.png"), full_page=True)


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.parametrize(("language", "width"), [("en", 1280), ("zh-hans", 390)])
def test_a_manager_reads_the_overview_and_the_cohorts(
    browser, committed_tenant, tenant_url, login, django_db_blocker, language, width
):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        manager = User.objects.get(email=f"manager@{tenant.slug}.test")
        User.objects.filter(pk=manager.pk).update(language=language)
        now = timezone.now()
        for i, name in enumerate(("王芳", "李雷", "Ada")):
            customer = CustomerFactory(name=name)
            OrderFactory(customer=customer, total=Decimal("120") + i, placed_at=now - timedelta(days=3 + i))
        returning = CustomerFactory(name="Old friend")
        OrderFactory(customer=returning, placed_at=now - timedelta(days=70))
        OrderFactory(customer=returning, placed_at=now - timedelta(days=5))
    connection.set_schema_to_public()

    context = browser.new_context(
        viewport={"width": width, "height": 900 if width > 400 else 844},
        locale="en-US",
        is_mobile=width < 400,
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        login(page, tenant, f"manager@{tenant.slug}.test")
        page.goto(tenant_url(tenant, "/dashboards/"))
        card = page.locator('[data-figure="new_customers"]')
        assert card.inner_text().strip() == "3"
        assert TEXT[language]["new"] in page.content()
        assert page.locator('[data-figure="returning_customers"]').inner_text().strip() == "1"
        assert _fits(page)
        _shot(page, f"overview_{language}_{width}")

        card.click()
        page.wait_for_url("**/dashboards/figures/new_customers/**")
        assert page.locator('[data-testid="list-total"]').inner_text().strip() == TEXT[language]["listed"]
        assert page.locator('[data-testid="drill-rows"] tbody tr').count() == 3
        assert _fits(page)
        _shot(page, f"new_customers_{language}_{width}")

        page.goto(tenant_url(tenant, "/dashboards/cohorts/"))
        assert TEXT[language]["cohorts"] in page.content()
        page.wait_for_function("document.getElementById('cohort-line').getContext('2d') !== null")
        assert page.locator('[data-testid="cohort-table"] tbody tr').count() == 12
        assert _fits(page)
        _shot(page, f"cohorts_{language}_{width}")

        page.goto(tenant_url(tenant, "/dashboards/migration/"))
        assert page.locator('[data-testid="migration-table"]').count() == 1
        assert _fits(page)
        _shot(page, f"migration_{language}_{width}")
    finally:
        context.close()
    assert not [p for p in problems if "Content Security Policy" in p or "Content-Security-Policy" in p], (
        problems
    )
