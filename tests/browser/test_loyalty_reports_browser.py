"""Browser: a manager opens the loyalty reports, sees the earn-and-burn chart drawn (Chart.js, from our
static files under the Content-Security-Policy) above its table, switches to 24 months, and follows
this month's "redeemed" figure to the members behind it. Desktop and 390 px, in English and Chinese
(screenshots in test-artifacts/)."""

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.accounts.models import User
from loyalty.models import Member, Tier
from loyalty.services import member_enrol, points_earn_for_orders, points_redeem, programme_get
from tests.browser.conftest import ARTIFACTS
from tests.factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.browser

TEXT = {
    "en": {"title": "Loyalty reports", "drill": "Members who redeemed points in"},
    "zh-hans": {"title": "会员报表", "drill": "兑换积分的会员"},
}


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"loyalty_reports_{name}.png"), full_page=True)


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.parametrize("language", ["en", "zh-hans"])
@pytest.mark.parametrize("width", [1280, 390])
def test_reports_chart_table_and_drill_down(
    browser, committed_tenant, tenant_url, login, django_db_blocker, language, width
):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        programme_get()
        Tier.objects.create(name="普通", rank=0, threshold=0)
        manager = User.objects.get(email=f"manager@{tenant.slug}.test")
        User.objects.filter(pk=manager.pk).update(language=language)
        redeemer = CustomerFactory(name="王小红")
        keeper = CustomerFactory(name="Keeper Person")
        for customer in (redeemer, keeper):
            member_enrol(actor=None, customer=customer)
            OrderFactory(customer=customer, total="800.00", placed_at=timezone.now())
        points_earn_for_orders()
        member = Member.objects.get(customer=redeemer)
        points_redeem(actor=manager, member=member, points=300, reason="tea")
    connection.set_schema_to_public()

    context = browser.new_context(
        viewport={"width": width, "height": 900 if width > 400 else 844},
        locale="en-US",
        is_mobile=width < 400,
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        login(page, tenant, f"manager@{tenant.slug}.test")
        page.goto(tenant_url(tenant, "/loyalty/reports/"))
        assert TEXT[language]["title"] in page.content()
        page.wait_for_function(
            "() => window.Chart && Chart.getChart(document.getElementById('loyalty-flows'))"
        )
        assert page.locator('[data-figure="redemption-rate"]').inner_text() == "18.8%"  # 300 / 1,600
        assert page.locator('[data-testid="flow-table"] tbody tr').count() == 12
        assert _fits(page)
        _shot(page, f"overview_{language}_{width}")

        page.click('[data-testid="report-periods"] a >> nth=1')
        page.wait_for_url("**/loyalty/reports/?period=24")
        assert page.locator('[data-testid="flow-table"] tbody tr').count() == 24

        page.locator('[data-testid="flow-table"] tbody tr').last.locator('[data-figure="redeemed"] a').click()
        page.wait_for_url("**/loyalty/reports/members/?figure=redeemed*")
        assert TEXT[language]["drill"] in page.inner_text('[data-testid="drill-title"]')
        rows = page.locator('[data-testid="drill-member"]')
        assert rows.count() == 1 and "王小红" in rows.first.inner_text()
        assert "Keeper Person" not in page.content()
        assert _fits(page)
        _shot(page, f"drill_{language}_{width}")
        assert errors == []
    finally:
        context.close()
