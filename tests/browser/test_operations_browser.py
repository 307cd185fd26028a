"""The pages issue 16 adds, in a real browser at desktop width and 390 px, in English and Chinese:
an admin's personal-data page (export and erasure of one customer) and the console's delete page
(typed slug). Screenshots go to test-artifacts/."""

import re
from base64 import b32decode

import pytest
from django.conf import settings
from django.db import connection
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from crm.accounts.models import User
from crm.tenancy.models import Tenant
from customers.models import Customer
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_two_factor_browser import _fits
from tests.conftest import PASSWORD, PLATFORM_ADMIN_EMAIL

pytestmark = pytest.mark.browser


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"operations_{name}.png"), full_page=True)


def test_an_admin_erases_a_customer_from_the_personal_data_page(
    browser, page, committed_tenant, login, tenant_url, django_db_blocker
):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        customer = Customer.objects.create(name="Browser Erasee 抹去", email="erasee@browser.test")
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
    login(page, tenant, f"admin@{tenant.slug}.test")
    page.goto(tenant_url(tenant, f"/customers/{customer.pk}/"))
    page.click("[data-testid=privacy-link]")
    page.wait_for_url(re.compile(rf"/customers/{customer.pk}/privacy/$"))
    assert page.locator("[data-testid=privacy-sections] li").count() >= 2
    _shot(page, "privacy_desktop_en")
    with page.expect_download() as download:
        page.click("[data-testid=privacy-export]")
    assert download.value.suggested_filename.startswith(f"customer-{customer.pk}-personal-data-")
    page.fill("input[name=confirmation]", "erase")
    page.click("[data-testid=privacy-erase]")
    assert "Type ERASE to confirm the erasure." in page.inner_text("[data-testid=privacy-erase-form]")
    _shot(page, "privacy_error_desktop_en")
    page.fill("input[name=confirmation]", "ERASE")
    page.click("[data-testid=privacy-erase]")
    page.wait_for_url(re.compile(rf"/customers/{customer.pk}/$"))
    assert f"Erased customer {customer.pk}" in page.inner_text("#customer-name")
    assert "Browser Erasee" not in page.content()

    # The same page at 390 px, in Chinese.
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        User.objects.filter(email=f"admin@{tenant.slug}.test").update(language="zh-hans")
        other = Customer.objects.create(name="手机 客户", email="phone@browser.test")
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
    phone.set_default_timeout(15_000)
    try:
        small = phone.new_page()
        login(small, tenant, f"admin@{tenant.slug}.test")
        small.goto(tenant_url(tenant, f"/customers/{other.pk}/privacy/"))
        assert "个人数据请求" in small.inner_text("h1")
        _fits(small, 390)
        _shot(small, "privacy_390px_zh")
    finally:
        phone.close()


@pytest.fixture
def operator_devices(django_db_blocker):
    yield
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        TOTPDevice.objects.filter(user__email=PLATFORM_ADMIN_EMAIL).delete()
        StaticDevice.objects.filter(user__email=PLATFORM_ADMIN_EMAIL).delete()
        User.objects.filter(email=PLATFORM_ADMIN_EMAIL).update(language="")


def _operator_signs_in(page, public_url) -> None:
    # The public site defaults to Chinese; this part reads the English page.
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": "en", "url": public_url("/")}])
    page.goto(public_url("/accounts/login/"))
    page.fill("input[name=username]", PLATFORM_ADMIN_EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/accounts/login/(two-factor-setup|code)/$"))
    if page.url.endswith("/two-factor-setup/"):
        secret = page.get_attribute("[data-testid=totp-secret]", "data-secret")
        page.fill("input[name=code]", f"{TOTP(b32decode(secret)).token():06d}")
        page.click("[data-testid=two-factor-enrol] button[type=submit]")
        page.wait_for_url(re.compile(r"/accounts/recovery-codes/$"))
        page.click("[data-testid=recovery-continue]")
    page.wait_for_url(re.compile(r"/console/$"))


def test_the_operator_deletes_a_company_by_typing_its_slug(
    browser, page, committed_tenant, public_url, tenant_url, operator_devices, django_db_blocker
):
    tenant = committed_tenant()
    _operator_signs_in(page, public_url)
    page.goto(public_url(f"/console/{tenant.pk}/"))
    page.click("[data-testid=delete]")
    page.wait_for_url(re.compile(rf"/console/{tenant.pk}/delete/$"))
    assert page.inner_text("[data-testid=slug-to-type]") == tenant.slug
    _shot(page, "tenant_delete_desktop_en")
    page.fill("input[name=confirm_slug]", "not-the-slug")
    page.click("[data-testid=confirm-delete]")
    assert "Type the company's address name exactly as shown" in page.inner_text(
        "[data-testid=tenant-delete-form]"
    )
    page.fill("input[name=confirm_slug]", tenant.slug)
    page.click("[data-testid=confirm-delete]")
    page.wait_for_url(re.compile(rf"/console/{tenant.pk}/$"))
    assert page.locator("[data-testid=cancel-deletion]").is_visible()
    _shot(page, "tenant_deleted_detail_desktop_en")
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        assert Tenant.objects.get(pk=tenant.pk).status == Tenant.Status.DELETED
    # Cancel it again (the button asks first), then look at the delete page at 390 px in Chinese.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-testid=cancel-deletion]")
    page.wait_for_url(re.compile(rf"/console/{tenant.pk}/$"))
    with django_db_blocker.unblock():
        assert Tenant.objects.get(pk=tenant.pk).status == Tenant.Status.ACTIVE
        User.objects.filter(email=PLATFORM_ADMIN_EMAIL).update(language="zh-hans")
    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
    phone.set_default_timeout(15_000)
    try:
        small = phone.new_page()
        small.context.add_cookies(page.context.cookies())
        small.goto(public_url(f"/console/{tenant.pk}/delete/"))
        assert "删除此公司" in small.inner_text("[data-testid=confirm-delete]")
        _fits(small, 390)
        _shot(small, "tenant_delete_390px_zh")
    finally:
        phone.close()
