"""Two-factor sign-in in a real browser: a manager sets it up from the profile (scanning is replaced
by reading the key the page shows), then signs in with a code generated here, at desktop width and at
390 px. Screenshots go to test-artifacts/."""

from base64 import b32decode

import pytest
from django.db import connection
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from tests.browser.conftest import ARTIFACTS
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def _code(secret: str) -> str:
    return f"{TOTP(b32decode(secret)).token():06d}"


def _allow_code_reuse(tenant, email: str, django_db_blocker) -> None:
    """A code is good once per 30-second step; signing in again at once needs the step freed."""
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        TOTPDevice.objects.filter(user__email=email).update(last_t=-1)
    with django_db_blocker.unblock():
        connection.set_schema_to_public()


WIDER_THAN_VIEWPORT = """(width) => Array.from(document.querySelectorAll('body *'))
    .filter((el) => el.getBoundingClientRect().right > width + 0.5)
    .slice(0, 5)
    .map((el) => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right))"""


def _fits(page, width: int) -> None:
    wide = page.evaluate(WIDER_THAN_VIEWPORT, width)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, wide


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"two_factor_{name}.png"), full_page=True)


def _sign_in_with_code(page, tenant_url, tenant, email: str, secret: str, width: int, label: str) -> None:
    page.goto(tenant_url(tenant, "/accounts/login/"))
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/accounts/login/code/")
    assert page.locator("[data-testid=two-factor-verify]").is_visible()
    _fits(page, width)
    _shot(page, f"code_step_{label}")
    page.fill("input[name=code]", _code(secret))
    page.click("[data-testid=two-factor-verify] button[type=submit]")
    page.wait_for_url(tenant_url(tenant, "/"))
    assert page.locator("[data-nav]").first.is_visible() or page.locator("nav").first.is_visible()


def test_manager_enrols_totp_and_signs_in_with_a_code_at_desktop_and_390px(
    browser, page, committed_tenant, login, tenant_url, django_db_blocker
):
    tenant = committed_tenant()
    email = f"manager@{tenant.slug}.test"
    login(page, tenant, email)
    page.goto(tenant_url(tenant, "/accounts/profile/"))
    page.click("[data-testid=profile-two-factor]")
    page.click("[data-testid=two-factor-enable]")
    qr = page.locator("[data-testid=totp-qr] svg")
    qr.wait_for(state="visible")  # the click only waits for the new page to start loading
    assert qr.is_visible()
    secret = page.get_attribute("[data-testid=totp-secret]", "data-secret")
    _shot(page, "enrol_desktop")
    page.fill("input[name=code]", _code(secret))
    page.click("[data-testid=two-factor-enrol] button[type=submit]")
    page.wait_for_url("**/accounts/recovery-codes/")
    assert page.locator("[data-testid=recovery-codes] code").count() == 10
    _shot(page, "recovery_codes_desktop")
    page.click("[data-testid=recovery-continue]")
    assert page.locator("[data-testid=two-factor-status]").inner_text().strip() == "On"

    # Sign out, then in again: the password alone is not enough.
    page.context.clear_cookies()
    _allow_code_reuse(tenant, email, django_db_blocker)
    _sign_in_with_code(page, tenant_url, tenant, email, secret, 1280, "desktop")

    # The same at 390 px, in a fresh browser context (a phone).
    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US", is_mobile=True)
    phone.set_default_timeout(15_000)
    try:
        small = phone.new_page()
        _allow_code_reuse(tenant, email, django_db_blocker)
        _sign_in_with_code(small, tenant_url, tenant, email, secret, 390, "390px")
        small.goto(tenant_url(tenant, "/accounts/profile/sessions/"))
        assert small.locator("[data-testid=current-session]").count() == 1
        assert small.locator("[data-session]").count() >= 2  # the desktop session is listed too
        _fits(small, 390)
        _shot(small, "sessions_390px")
        small.goto(tenant_url(tenant, "/accounts/profile/two-factor/"))
        _fits(small, 390)
        _shot(small, "profile_390px")
    finally:
        phone.close()


def test_enrol_page_fits_390px(browser, committed_tenant, tenant_url, login):
    tenant = committed_tenant()
    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US", is_mobile=True)
    phone.set_default_timeout(15_000)
    try:
        small = phone.new_page()
        login(small, tenant, f"sales@{tenant.slug}.test")
        small.goto(tenant_url(tenant, "/accounts/profile/two-factor/enable/"))
        assert small.locator("[data-testid=totp-qr] svg").is_visible()
        _fits(small, 390)
        _shot(small, "enrol_390px")
    finally:
        phone.close()
