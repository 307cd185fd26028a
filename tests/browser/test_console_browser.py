"""Browser: the platform console's company page with its usage charts, the invitation sent again, the
edit form and the tenants list with its storage column, at 1280 and 390 px in English and Chinese.
Screenshots go to test-artifacts/console_<page>_<language>_<width>.png."""

import re
from binascii import unhexlify
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from crm.accounts.models import Role, User
from crm.audit.models import AuditEvent
from crm.tenancy.models import Tenant, TenantUsage
from tests.browser.conftest import ARTIFACTS
from tests.conftest import PASSWORD, PLATFORM_ADMIN_EMAIL

pytestmark = [pytest.mark.browser, pytest.mark.celery_worker]

TOTP_KEY = "3132333435363738393031323334353637383930"
WIDTHS = {1280: {"width": 1280, "height": 900}, 390: {"width": 390, "height": 844}}
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
CHARTS_DRAWN = """() => ['usage-users', 'usage-records', 'usage-storage'].map(id => {
    const c = document.getElementById(id);
    return !!(c && Chart.getChart(c) && c.clientWidth > 100);
})"""


@pytest.fixture
def console_company(committed_tenant, django_db_blocker):
    """A committed company whose first admin has not accepted yet, with 90 days of usage (a missed
    day on the way), and the operator with a confirmed authenticator."""
    tenant = committed_tenant(name="控制台测试 Console Test Co")
    with django_db_blocker.unblock():
        with schema_context(tenant.schema_name):
            User.objects.create_user(email="boss@console.test", password=None, role=Role.ADMIN)
        connection.set_schema_to_public()
        Tenant.objects.filter(pk=tenant.pk).update(admin_email="boss@console.test")
        today = timezone.now().date()
        TenantUsage.objects.bulk_create(
            TenantUsage(
                tenant=tenant,
                day=today - timedelta(days=back),
                users=3 + (89 - back) // 20,
                active_users=2 + (89 - back) // 30,
                customers=12_000 + (89 - back) * 310,
                orders=80_000 + (89 - back) * 2_900,
                database_bytes=180_000_000 + (89 - back) * 1_500_000,
                files_bytes=40_000_000 + (89 - back) * 250_000,
                last_activity_at=timezone.now() - timedelta(days=back, hours=3),
            )
            for back in range(90)
            if back != 40
        )
        operator = User.objects.get(email=PLATFORM_ADMIN_EMAIL)
        TOTPDevice.objects.filter(user=operator).delete()
        TOTPDevice.objects.create(user=operator, name="console test", key=TOTP_KEY, confirmed=True)
        tenant = Tenant.objects.get(pk=tenant.pk)
    yield tenant
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        TOTPDevice.objects.filter(user__email=PLATFORM_ADMIN_EMAIL).delete()
        User.objects.filter(email=PLATFORM_ADMIN_EMAIL).update(language="")
        AuditEvent.objects.filter(target_type="tenancy.tenant", target_id=str(tenant.pk)).delete()


def _sign_in(browser, public_url, django_db_blocker, *, language: str, width: int):
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        User.objects.filter(email=PLATFORM_ADMIN_EMAIL).update(language=language)
    context = browser.new_context(
        viewport=WIDTHS[width],
        locale="zh-CN" if language == "zh-hans" else "en-US",
        is_mobile=width < 500,
        has_touch=width < 500,
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(public_url("/accounts/login/"))
    page.fill("input[name=username]", PLATFORM_ADMIN_EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/accounts/login/code/$"))
    page.fill("input[name=code]", f"{TOTP(unhexlify(TOTP_KEY)).token():06d}")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/console/$"))
    assert page.locator("html").get_attribute("lang") == language
    return context, page


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"console_{name}.png"), full_page=True)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
@pytest.mark.parametrize("width", [1280, 390])
def test_console_pages_read_well(browser, public_url, console_company, django_db_blocker, language, width):
    tenant = console_company
    context, page = _sign_in(browser, public_url, django_db_blocker, language=language, width=width)
    try:
        suffix = f"{language}_{width}"
        page.goto(public_url(f"/console/?q={tenant.slug}"))
        row = page.locator(f"tr[data-tenant={tenant.slug}]")
        assert re.match(r"^\d+(\.\d)?\s?MB$", row.locator("[data-col=storage]").inner_text().strip())
        assert page.locator("[data-testid=tenant-summary]").is_visible()
        assert page.evaluate(OVERFLOW) <= 0, "the tenants list overflows the page"
        _shot(page, f"list_{suffix}")

        page.goto(public_url(f"/console/{tenant.pk}/"))
        page.wait_for_function("() => typeof Chart !== 'undefined'")
        assert page.evaluate(CHARTS_DRAWN) == [True, True, True]
        customers = page.locator("[data-testid=usage-latest] [data-figure=customers]").inner_text()
        assert customers == "39,590"  # the latest day, grouped
        assert page.locator("[data-testid=first-admin] [data-state=pending]").is_visible()
        assert page.evaluate(OVERFLOW) <= 0, "the company page overflows the page"
        _shot(page, f"detail_{suffix}")

        page.goto(public_url(f"/console/{tenant.pk}/edit/"))
        assert page.locator("input[name=name]").input_value() == tenant.name
        assert page.evaluate(OVERFLOW) <= 0, "the edit form overflows the page"
        _shot(page, f"edit_{suffix}")
    finally:
        context.close()


def test_operator_resends_the_invitation_and_edits_the_company(
    browser, public_url, console_company, django_db_blocker, sent_emails
):
    tenant = console_company
    context, page = _sign_in(browser, public_url, django_db_blocker, language="en", width=1280)
    try:
        before = len(sent_emails())
        page.goto(public_url(f"/console/{tenant.pk}/"))
        page.click("[data-testid=resend-invitation]")
        page.wait_for_url(re.compile(rf"/console/{tenant.pk}/$"))
        assert "A new invitation is on its way to boss@console.test" in page.inner_text("main")
        assert page.locator("[data-testid=resend-invitation]").is_disabled()  # once a minute
        mails = sent_emails()[before:]
        assert [m["To"] for m in mails] == ["boss@console.test"]
        assert re.search(
            rf"{tenant.slug}\.testserver\.local(:\d+)?/accounts/password-reset/", mails[0].get_content()
        )

        page.click("[data-testid=edit]")
        page.fill("input[name=name]", "Console Test Renamed")
        page.select_option("select[name=currency]", "USD")
        page.click("[data-testid=save]")
        page.wait_for_url(re.compile(rf"/console/{tenant.pk}/$"))
        assert "Console Test Renamed is saved." in page.inner_text("main")
        events = page.locator("[data-testid=tenant-audit]").inner_text()
        assert "Company settings changed" in events and "First admin's invitation sent again" in events
        _shot(page, "detail_after_actions_en_1280")
    finally:
        context.close()
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        tenant.refresh_from_db()
    assert (tenant.name, tenant.currency) == ("Console Test Renamed", "USD")
