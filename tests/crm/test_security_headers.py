"""Security headers on every kind of response: Content-Security-Policy, Referrer-Policy,
Permissions-Policy, and Django's own (nosniff, frame denial)."""

import pytest
from django.conf import settings
from django.test import Client

from crm.tenancy.models import Tenant
from tests.crm.platform_fixtures import english_ui  # noqa: F401

pytestmark = pytest.mark.usefixtures("english_ui")


def policy(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_security_headers(response, where: str) -> None:
    csp = policy(response)
    assert csp.get("default-src") == ["'self'"], where
    # Scripts from our own files only (a nonce may be added for an inline script); never inline or eval.
    assert csp["script-src"][0] == "'self'", where
    assert all(v == "'self'" or v.startswith("'nonce-") for v in csp["script-src"]), (where, csp)
    assert csp.get("style-src") == ["'self'"], (where, csp)
    assert csp.get("object-src") == ["'none'"], where
    assert csp.get("base-uri") == ["'self'"], where
    assert csp.get("frame-ancestors") == ["'none'"], where
    assert csp.get("form-action") == ["'self'"], where
    header = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in header and "unsafe-eval" not in header, where
    assert response.headers.get("Referrer-Policy") == "same-origin", where
    permissions = response.headers.get("Permissions-Policy", "")
    for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()"):
        assert feature in permissions, (where, permissions)
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where


def test_a_tenant_page_its_redirects_and_its_404_carry_the_headers(admin_client, anon_client):
    page = admin_client.get("/customers/")
    assert page.status_code == 200
    assert_security_headers(page, "tenant page")
    assert page.headers.get("X-Frame-Options") == "DENY"
    missing = admin_client.get("/no-such-page/")
    assert missing.status_code == 404 and "We could not find that page" in missing.content.decode()
    assert_security_headers(missing, "tenant 404")
    redirect = anon_client.get("/customers/")
    assert redirect.status_code == 302
    assert_security_headers(redirect, "redirect to the sign-in page")
    assert_security_headers(anon_client.get("/accounts/login/"), "sign-in page")


def test_console_pages_and_the_public_404_carry_the_headers(platform_client, public_client):
    console = platform_client.get("/console/")
    assert console.status_code == 200
    assert_security_headers(console, "console")
    assert_security_headers(public_client.get("/no-such-page/"), "public 404")


def test_pages_answered_by_the_tenant_middleware_carry_the_headers(db):
    unknown = Client(HTTP_HOST=f"nobody.{settings.BASE_DOMAIN}").get("/")
    assert unknown.status_code == 404
    assert_security_headers(unknown, "unknown company")
    Tenant.objects.filter(slug="beta").update(status=Tenant.Status.SUSPENDED)  # rolled back
    suspended = Client(HTTP_HOST=f"beta.{settings.BASE_DOMAIN}").get("/")
    assert suspended.status_code == 403
    assert_security_headers(suspended, "suspended company")


def test_static_files_carry_the_headers(anon_client):
    response = anon_client.get("/static/js/app.js")
    assert response.status_code == 200
    assert_security_headers(response, "static file")


def test_a_nonce_is_added_when_a_template_asks_for_one(rf, tenant):
    """An inline script can be allowed with nonce="{{ request.csp_nonce }}": the header then names the
    same nonce; without the nonce the browser refuses the script."""
    from csp.middleware import CSPMiddleware
    from django.http import HttpResponse
    from django.template import engines

    template = engines["django"].from_string('<script nonce="{{ request.csp_nonce }}">x()</script>')

    def view(request):
        return HttpResponse(template.render({}, request))

    request = rf.get("/")
    response = CSPMiddleware(view)(request)
    nonce = response.content.decode().split('nonce="')[1].split('"')[0]
    assert len(nonce) >= 16
    assert f"'nonce-{nonce}'" in policy(response)["script-src"]


def test_the_language_cookie_is_same_site_lax(anon_client):
    response = anon_client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "zh-hans"
    assert cookie["samesite"] == "Lax" and cookie["httponly"]
