import pytest

pytestmark = pytest.mark.browser


def test_admin_signs_in_and_sees_the_navigation(page, committed_tenant, login, tenant_url):
    tenant = committed_tenant()
    login(page, tenant, f"admin@{tenant.slug}.test")
    assert page.url == tenant_url(tenant, "/")
    nav = page.locator("[data-nav]")
    # my day, dashboard, customers, interactions, service, surveys, segments, loyalty, reports, settings
    assert nav.count() == 10
    assert page.locator("[data-nav=settings]").is_visible()


def test_wrong_password_shows_a_clear_message(page, committed_tenant, login):
    tenant = committed_tenant()
    login(page, tenant, f"sales@{tenant.slug}.test", password="not-the-password")
    assert "/accounts/login/" in page.url
    assert page.get_by_text("That email and password do not match").is_visible()
