"""Browser: a redemption at the counter in three clicks from the customer's page (pick the reward in
the Rewards panel -> confirm -> the voucher is shown), then the voucher is found by its code at the
counter and marked used; desktop in English and 390 px in Chinese (screenshots in test-artifacts/)."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from crm.accounts.models import User
from loyalty.models import Member, PointsEntry
from loyalty.rewards.models import Reward, Voucher
from loyalty.services import member_enrol, points_adjust
from tests.browser.conftest import ARTIFACTS
from tests.factories import CustomerFactory

pytestmark = pytest.mark.browser

TEXT = {
    "en": {"issued": "Voucher issued", "used": "marked used", "status_used": "Used"},
    "zh-hans": {"issued": "兑换券已发放", "used": "已标记为已使用", "status_used": "已使用"},
}


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"rewards_{name}.png"), full_page=True)


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.parametrize(("language", "width"), [("en", 1280), ("zh-hans", 390)])
def test_redeem_a_reward_at_the_counter_in_three_clicks(
    browser, committed_tenant, tenant_url, login, django_db_blocker, language, width
):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        sales = User.objects.get(email=f"sales@{tenant.slug}.test")
        User.objects.filter(pk=sales.pk).update(language=language)
        customer = CustomerFactory(owner=sales, name="陈大文", phone="+8613912345678")
        member = member_enrol(actor=None, customer=customer)
        points_adjust(actor=sales, member=member, points=400, reason="welcome")
        mug = Reward.objects.create(name="保温杯 Thermos", points_cost=300, stock=2, voucher_days=30)
        Reward.objects.create(name="Too dear", points_cost=5000)
    connection.set_schema_to_public()

    context = browser.new_context(
        viewport={"width": width, "height": 900 if width > 400 else 844},
        locale="en-US",
        is_mobile=width < 400,
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        login(page, tenant, f"sales@{tenant.slug}.test")
        page.goto(tenant_url(tenant, f"/customers/{customer.pk}/"))
        panel = page.locator('[data-testid="rewards-panel"]')
        assert panel.locator('[data-testid="reward-unavailable"]').count() == 1  # not enough points
        assert _fits(page)
        _shot(page, f"panel_{language}_{width}")
        panel.locator('[data-testid="reward-choice"]').first.click()  # 1: pick
        page.wait_for_url(f"**/loyalty/rewards/redeem/{member.pk}/{mug.pk}/")
        assert page.locator('[data-testid="balance-after"]').inner_text() == "100"
        assert _fits(page)
        _shot(page, f"confirm_{language}_{width}")
        page.click('[data-testid="redeem-confirm"]')  # 2: confirm
        page.wait_for_url("**/loyalty/rewards/vouchers/*/")  # 3: the voucher
        code = page.locator('[data-testid="voucher-code"]').inner_text().strip()
        assert TEXT[language]["issued"] in page.content()
        assert "保温杯 Thermos" in page.content()
        assert _fits(page)
        _shot(page, f"voucher_{language}_{width}")

        page.goto(tenant_url(tenant, "/loyalty/rewards/counter/"))
        page.fill("#id_code", code.lower().replace("-", " "))
        page.locator('[data-testid="counter-form"] button').click()
        page.locator('[data-testid="counter-use"]').click()
        page.locator('[data-testid="voucher-status"]').wait_for()
        assert TEXT[language]["used"] in page.content()
        assert page.locator('[data-testid="voucher-status"]').inner_text() == TEXT[language]["status_used"]
        assert _fits(page)
        _shot(page, f"counter_{language}_{width}")
    finally:
        context.close()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        voucher = Voucher.objects.get(member=member)
        assert voucher.status == "used" and voucher.display_code == code
        assert Member.objects.get(pk=member.pk).balance == 100
        assert PointsEntry.objects.filter(member=member, kind="redeem", points=-300).count() == 1
        assert Reward.objects.get(pk=mug.pk).stock == 1
    connection.set_schema_to_public()
