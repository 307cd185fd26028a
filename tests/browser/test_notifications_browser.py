"""The bell and the notifications page in a real browser, at desktop width and 390 px, in English and
Chinese: the unread count, marking one read in place (htmx), opening one (marks it read and follows
its link), mark all read. Screenshots go to test-artifacts/."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from crm.accounts.models import User
from crm.notifications.services import notify
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_two_factor_browser import _fits

pytestmark = [pytest.mark.browser, pytest.mark.celery_worker]


@pytest.mark.parametrize(
    ("width", "language", "user_key"),
    [(1280, "en", "sales"), (390, "zh-hans", "sales2"), (1280, "zh-hans", "manager"), (390, "en", "admin")],
)
def test_bell_and_notifications_page(
    browser, committed_tenant, tenant_url, login, django_db_blocker, width, language, user_key
):
    tenant = committed_tenant()
    email = f"{user_key}@{tenant.slug}.test"
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        user = User.objects.get(email=email)
        User.objects.filter(pk=user.pk).update(language=language)
        notify(
            recipient=user,
            kind="followups.due",
            key="1",
            title="Call back 王芳 about the spring order",
            body="She asked for a quote on 12 items.\n她想要报价。",
            url="/customers/",
        )
        notify(
            recipient=user,
            kind="followups.due",
            key="2",
            title="回访客户李雷（上次购买已超过 90 天）",
            url="/customers/",
        )
        notify(
            recipient=user,
            kind="loyalty.expiring",
            key="3",
            title="A rather long notification title that has to wrap nicely on a phone without overflowing",
            url="/notifications/",
        )
    with django_db_blocker.unblock():
        connection.set_schema_to_public()

    context = browser.new_context(
        viewport={"width": width, "height": 900}, locale="en-US", is_mobile=width < 500
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    label = f"{width}px_{language}"
    try:
        login(page, tenant, email)
        bell = page.locator("[data-testid=notification-bell]")
        expect(bell).to_be_visible()  # outside the collapsed menu on a phone too
        expect(bell.locator("[data-testid=notification-count]")).to_have_text("3")
        _fits(page, width)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"notifications_home_{label}.png"))

        bell.click()
        page.wait_for_url("**/notifications/")
        expect(page.locator("html")).to_have_attribute("lang", language)
        rows = page.locator("[data-testid=notification]")
        expect(rows).to_have_count(3)
        expect(page.locator('[data-testid=notification][data-read="no"]')).to_have_count(3)
        _fits(page, width)
        page.screenshot(path=str(ARTIFACTS / f"notifications_list_{label}.png"), full_page=True)

        rows.first.locator("[data-testid=notification-mark-read]").click()  # htmx, in place
        expect(page.locator('[data-testid=notification][data-read="yes"]')).to_have_count(1)
        expect(bell.locator("[data-testid=notification-count]")).to_have_text("2")
        assert page.url.endswith("/notifications/")

        page.locator(
            '[data-testid=notification][data-read="no"] [data-testid=notification-open]'
        ).first.click()
        page.wait_for_url("**/customers/")
        expect(page.locator("[data-testid=notification-bell] [data-testid=notification-count]")).to_have_text(
            "1"
        )

        page.goto(tenant_url(tenant, "/notifications/"))
        page.locator("[data-testid=notifications-read-all]").click()
        page.wait_for_load_state("networkidle")
        expect(page.locator('[data-testid=notification][data-read="no"]')).to_have_count(0)
        expect(
            page.locator("[data-testid=notification-bell] [data-testid=notification-count]")
        ).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / f"notifications_read_{label}.png"), full_page=True)

        page.goto(tenant_url(tenant, "/notifications/preferences/"))
        _fits(page, width)
        page.screenshot(path=str(ARTIFACTS / f"notifications_preferences_{label}.png"), full_page=True)
    finally:
        context.close()
