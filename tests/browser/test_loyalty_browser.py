"""Browser: a sales rep looks a member up by phone, opens the member page and adjusts points; an
adjustment above the limit is refused with a message and changes nothing. Desktop and 390 px, in
English and Chinese (screenshots in test-artifacts/)."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from crm.accounts.models import User
from loyalty.models import Member, PointsEntry, Programme, Tier
from loyalty.services import member_enrol, points_adjust, programme_get
from tests.browser.conftest import ARTIFACTS
from tests.factories import CustomerFactory

pytestmark = pytest.mark.browser

TEXT = {
    "en": {"added": "Points adjusted by +50", "limit": "need a manager", "balance": "Points balance"},
    "zh-hans": {"added": "积分已调整 +50", "limit": "需要经理操作", "balance": "积分余额"},
}


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"loyalty_{name}.png"), full_page=True)


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.parametrize("language", ["en", "zh-hans"])
@pytest.mark.parametrize("width", [1280, 390])
def test_look_up_a_member_and_adjust_points(
    browser, committed_tenant, tenant_url, login, django_db_blocker, language, width
):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        Programme.objects.filter(pk=programme_get().pk).update(adjust_limit=500)
        for name, rank, threshold in (
            ("普通", 0, 0),
            ("银卡", 1, 1000),
            ("金卡", 2, 5000),
            ("钻石", 3, 20000),
        ):
            Tier.objects.create(name=name, rank=rank, threshold=threshold)
        sales = User.objects.get(email=f"sales@{tenant.slug}.test")
        User.objects.filter(pk=sales.pk).update(language=language)
        customer = CustomerFactory(owner=sales, name="陈大文", phone="+8613912345678")
        member = member_enrol(actor=None, customer=customer)
        points_adjust(actor=sales, member=member, points=300, reason="welcome")
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
        page.goto(tenant_url(tenant, "/loyalty/members/"))
        page.fill("#id_q", "139 1234 5678")
        page.locator('[data-testid="lookup-result"]').first.wait_for()  # htmx, as you type
        assert page.locator('[data-testid="lookup-result"]').count() == 1
        assert _fits(page)
        _shot(page, f"lookup_{language}_{width}")
        page.click('[data-testid="lookup-result"]')
        page.wait_for_url(f"**/loyalty/members/{member.pk}/")
        assert page.locator('[data-figure="balance"]').first.inner_text() == "300"
        assert TEXT[language]["balance"] in page.content()

        page.fill("#id_points", "50")
        page.fill("#id_reason", "生日礼 birthday")
        page.click('[data-testid="adjust-submit"]')
        page.wait_for_url(f"**/loyalty/members/{member.pk}/")
        assert TEXT[language]["added"] in page.content()
        assert page.locator('[data-figure="balance"]').first.inner_text() == "350"
        assert page.locator('[data-testid="statement"] tbody tr').count() == 2
        assert _fits(page)
        _shot(page, f"member_{language}_{width}")

        page.fill("#id_points", "600")
        page.fill("#id_reason", "too much")
        page.click('[data-testid="adjust-submit"]')
        page.locator(".invalid-feedback, .alert-danger").first.wait_for()
        assert TEXT[language]["limit"] in page.content()
        assert _fits(page)
        _shot(page, f"refused_{language}_{width}")
    finally:
        context.close()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        assert Member.objects.get(pk=member.pk).balance == 350
        assert not PointsEntry.objects.filter(reason="too much").exists()
    connection.set_schema_to_public()
