"""Browser tests of the platform: the operator creates a company in the console and watches it come
up (a real Celery worker provisions it), its first admin chooses a password and signs in; a user
switches the interface to Simplified Chinese."""

import re
import uuid
from base64 import b32decode
from urllib.parse import urlparse

import pytest
from django.db import connection
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from crm.accounts.models import User
from crm.accounts.services import set_password_link
from crm.audit.models import AuditEvent
from crm.tenancy.models import Tenant
from tests.conftest import PASSWORD, PLATFORM_ADMIN_EMAIL

pytestmark = pytest.mark.browser

NEW_PASSWORD = "Harbour-lights-8826"


@pytest.fixture
def console_tenant_slug(django_db_blocker):
    """The slug for a company the test creates through the console; dropped afterwards (with the
    platform admin's two-factor devices, which the test sets up)."""
    slug = f"web-{uuid.uuid4().hex[:8]}"
    yield slug
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        TOTPDevice.objects.filter(user__email=PLATFORM_ADMIN_EMAIL).delete()
        StaticDevice.objects.filter(user__email=PLATFORM_ADMIN_EMAIL).delete()
        for tenant in Tenant.objects.filter(slug=slug):
            with connection.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema_name}" CASCADE')
            AuditEvent.objects.filter(target_type="tenancy.tenant", target_id=str(tenant.pk)).delete()
            tenant.delete()


def test_operator_creates_a_company_and_its_admin_signs_in(
    page, public_url, tenant_url, login, console_tenant_slug, django_db_blocker
):
    slug = console_tenant_slug
    page.goto(public_url("/accounts/login/"))
    page.fill("input[name=username]", PLATFORM_ADMIN_EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    # Platform admins always need two-factor sign-in: the first time, they set it up on the way in.
    page.wait_for_url(re.compile(r"/accounts/login/two-factor-setup/$"))
    secret = page.get_attribute("[data-testid=totp-secret]", "data-secret")
    page.fill("input[name=code]", f"{TOTP(b32decode(secret)).token():06d}")
    page.click("[data-testid=two-factor-enrol] button[type=submit]")
    page.wait_for_url(re.compile(r"/accounts/recovery-codes/$"))
    page.click("[data-testid=recovery-continue]")
    page.wait_for_url(re.compile(r"/console/$"))
    assert page.locator("[data-testid=tenant-table]").is_visible()

    page.click("[data-testid=new-tenant]")
    page.fill("input[name=name]", "Browser Bakery 面包")
    page.fill("input[name=slug]", slug)
    page.select_option("select[name=time_zone]", "Asia/Shanghai")
    page.select_option("select[name=currency]", "CNY")
    page.select_option("select[name=default_language]", "en")
    page.fill("input[name=admin_email]", f"owner@{slug}.test")
    page.click("[data-testid=tenant-form] button[type=submit]")
    page.wait_for_url(re.compile(r"/console/\d+/$"))

    # htmx polls the progress fragment until the worker has finished.
    status = page.locator("[data-testid=tenant-provisioning]")
    status.and_(page.locator("[data-status=active]")).wait_for(timeout=60_000)
    site_link = page.locator("[data-testid=tenant-site-link]")
    assert f"{slug}.testserver.local" in site_link.get_attribute("href")

    # The first admin was emailed a "choose your password" link; the same kind of link, made here
    # (the worker's mail does not reach the test), opened in the browser:
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        tenant = Tenant.objects.get(slug=slug)
        assert tenant.status == Tenant.Status.ACTIVE
        with schema_context(tenant.schema_name):
            owner = User.objects.get(email=f"owner@{slug}.test")
            link = set_password_link(user=owner, tenant=tenant)
        connection.set_schema_to_public()
    page.goto(tenant_url(tenant, urlparse(link).path))
    page.fill("input[name=new_password1]", NEW_PASSWORD)
    page.fill("input[name=new_password2]", NEW_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/accounts/password-reset/done/$"))

    login(page, tenant, f"owner@{slug}.test", NEW_PASSWORD)
    assert page.url == tenant_url(tenant, "/")
    assert page.locator("[data-nav=settings]").is_visible()
    # The brand names the company (shown from 1400 px and on the collapsed bar; between 1200 and
    # 1400 px, where this page is, only its icon shows and the name is the brand's title).
    brand = page.locator("nav .navbar-brand .brand-name")
    assert "Browser Bakery" in brand.text_content() and "Browser Bakery" in brand.get_attribute("title")


def test_switching_the_language_to_simplified_chinese(page, committed_tenant, login, tenant_url):
    tenant = committed_tenant()
    login(page, tenant, f"sales@{tenant.slug}.test")
    switch = page.locator("#language-switch select")

    switch.select_option("en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert page.locator("[data-nav=customers]").inner_text().strip() == "Customers"

    switch = page.locator("#language-switch select")
    switch.select_option("zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert page.locator("[data-nav=customers]").inner_text().strip() == "客户"
    # The choice is kept on the user's profile: a fresh visit stays in Chinese.
    page.goto(tenant_url(tenant, "/accounts/profile/"))
    assert page.locator("html").get_attribute("lang") == "zh-hans"
