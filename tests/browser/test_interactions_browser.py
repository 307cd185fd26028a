"""Browser: a sales rep logs a call from a row of the customer list in two clicks (the row's "Log
interaction" button opens the dialog; "Save" logs it), at desktop width and at 390 px, in English
and in Chinese. The dialog closes, the 360 page shows the call, and the interactions page lists it.
Screenshots go to test-artifacts/."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from crm.accounts.models import User
from customers.services import customer_create
from interactions.models import Interaction
from tests.browser.conftest import ARTIFACTS
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

WIDER_THAN_VIEWPORT = """(width) => Array.from(document.querySelectorAll('body *'))
    .filter((el) => el.getBoundingClientRect().right > width + 0.5)
    .slice(0, 5)
    .map((el) => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right))"""


def _fits(page, width: int) -> None:
    wide = page.evaluate(WIDER_THAN_VIEWPORT, width)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, wide


CASES = [
    ("zh-hans", 390, "390px"),
    ("en", 1280, "desktop"),
    ("zh-hans", 1280, "desktop"),
    ("en", 390, "390px"),
]
SAVE = {"en": "Save", "zh-hans": "保存"}
LOGGED = {"en": "Interaction logged", "zh-hans": "互动已记录"}
WECHAT = {"en": "WeChat", "zh-hans": "微信"}


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"interactions_{name}.png"), full_page=True)


def test_log_a_call_from_a_customer_list_row(browser, committed_tenant, tenant_url, django_db_blocker):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        sales = User.objects.get(email=f"sales@{tenant.slug}.test")
        customer = customer_create(actor=sales, name="王小明 Wang", email="wang@example.cn")
        customer_create(actor=sales, name="Li Lei", email="lilei@example.com")
    connection.set_schema_to_public()

    violations: list[str] = []

    def on_console(message):
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    for number, (language, width, label) in enumerate(CASES, start=1):
        with django_db_blocker.unblock(), schema_context(tenant.schema_name):
            User.objects.filter(pk=sales.pk).update(language=language)
        context = browser.new_context(
            viewport={"width": width, "height": 900 if width > 400 else 844},
            locale="en-US",
            is_mobile=width < 400,
        )
        context.set_default_timeout(15_000)
        try:
            page = context.new_page()
            page.on("console", on_console)
            page.goto(tenant_url(tenant, "/accounts/login/"))
            page.fill("input[name=username]", sales.email)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            page.goto(tenant_url(tenant, "/customers/"))
            row = page.locator(f'tr[data-customer="{customer.pk}"]')

            # click 1: the row's action opens the dialog
            row.locator('[data-row-action="interactions.log"]').click()
            dialog = page.locator("#app-dialog")
            expect(dialog).to_be_visible()
            expect(dialog.locator("#interaction-log-form")).to_be_visible()
            dialog.locator("select[name=channel]").select_option("wechat")
            dialog.locator("input[name=subject]").fill(f"Call {number} 回访")
            dialog.locator("select[name=outcome]").select_option(index=2)
            _fits(page, width)
            _shot(page, f"dialog_{language}_{label}")

            # click 2: save
            dialog.get_by_role("button", name=SAVE[language]).click()
            expect(page.locator("#interaction-logged")).to_be_visible()
            expect(dialog.locator(".modal-title")).to_have_text(LOGGED[language])
            _shot(page, f"logged_{language}_{label}")
            expect(dialog).to_be_hidden(timeout=5_000)  # closes by itself

            with django_db_blocker.unblock(), schema_context(tenant.schema_name):
                logged = Interaction.objects.get(subject=f"Call {number} 回访")
                assert (logged.customer_id, logged.channel, logged.author_id) == (
                    customer.pk,
                    "wechat",
                    sales.pk,
                )
                assert logged.outcome_id is not None

            page.goto(tenant_url(tenant, f"/customers/{customer.pk}/"))
            panel = page.locator('[data-panel="interactions.latest"]')
            expect(panel).to_contain_text(f"Call {number} 回访")
            page.locator("#timeline").scroll_into_view_if_needed()  # loaded by htmx when revealed
            expect(page.locator('.timeline-entry[data-kind="interaction"]').first).to_contain_text(
                WECHAT[language]
            )
            _fits(page, width)
            _shot(page, f"customer_{language}_{label}")

            page.goto(tenant_url(tenant, "/interactions/?channel=wechat"))
            expect(page.locator("#interaction-table tbody tr[data-interaction]")).to_have_count(number)
            _fits(page, width)
            _shot(page, f"list_{language}_{label}")
        finally:
            context.close()
        assert not violations, violations
    connection.set_schema_to_public()
