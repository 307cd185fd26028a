"""Browser: every page in the navigation, and the main pages under them, works on a 390 px phone in
Chinese, for each role (admin, manager, sales) and for the operator's platform console.

On each page the test fails on
- page-level horizontal overflow (`document.documentElement.scrollWidth > clientWidth`): a wide table
  must become cards or scroll inside its own box, never push the page sideways;
- a tap target under 44 px: the navigation toggler, the navigation links once opened, and the
  buttons, page links and tabs of the page itself;
- text squeezed into a narrow column (a Chinese tab or cell reading one or two characters per line);
- a key figure broken across lines ("¥172,370." / "90") or sticking out of its card;
- a table wider than its box (on a phone a table keeps its key columns or becomes cards);
- a phone number shown without a `tel:` link.

One browser, one context per role (each signs in once), a tenant filled by the demo seeder so the
tables, charts and lists have real rows. Screenshots of the main pages go to test-artifacts/."""

import contextlib
import re
from binascii import unhexlify
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from crm.accounts.models import User
from customers.models import Customer
from customers.phone import format_phone
from tests.browser.conftest import ARTIFACTS
from tests.conftest import PASSWORD, PLATFORM_ADMIN_EMAIL

pytestmark = [pytest.mark.browser, pytest.mark.celery_worker]

CHECKS = (Path(__file__).parent / "phone_checks.js").read_text().strip().rstrip(";")
PHONE = {"width": 390, "height": 844}
MIN_TAP = 44

# The main pages under the navigation (besides every navigation entry, read from the page itself).
# A page a role may not open is left out for that role (the access matrix tests cover the refusal).
MAIN_PAGES = [
    "/customers/",
    "/customers/{customer}/",
    "/segments/",
    "/segments/clv/",
    "/segments/lifecycle/",
    "/segments/alerts/",
    "/segments/saved/",
    "/segments/history/",
    "/dashboards/",
    "/dashboards/cohorts/",
    "/dashboards/funnel/",
    "/dashboards/team/",
    "/loyalty/",
    "/loyalty/members/",
    "/loyalty/reports/",
    "/loyalty/rewards/",
    "/service/",
    "/surveys/",
    "/surveys/responses/",
    "/interactions/",
    "/my-day/",
    "/accounts/settings/",
    "/accounts/settings/users/",
    "/accounts/settings/audit/",
    "/accounts/settings/company/",
    "/customers/tags/",
    "/customers/bin/",
    "/accounts/profile/",
    "/notifications/",
]
SCREENSHOTS = {
    "/": "dashboard",
    "/customers/": "customers",
    "/customers/{customer}/": "customer_360",
    "/segments/": "segments",
    "/segments/clv/": "clv",
    "/segments/history/": "history",
    "/segments/alerts/": "alerts",
    "/dashboards/team/": "team",
}

TAP_TARGETS_JS = f"(...args) => ({CHECKS}).smallTapTargets(...args)"

OVERFLOW_JS = f"(...args) => ({CHECKS}).pageOverflow(...args)"

SQUEEZED_TEXT_JS = f"(...args) => ({CHECKS}).squeezedText(...args)"

BROKEN_FIGURES_JS = f"(...args) => ({CHECKS}).brokenFigures(...args)"

SIDEWAYS_TABLES_JS = f"(...args) => ({CHECKS}).sidewaysTables(...args)"


UNLINKED_PHONES_JS = f"(...args) => ({CHECKS}).unlinkedPhones(...args)"


def _seed(tenant, django_db_blocker) -> tuple[int, list[str]]:
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        call_command("seed_demo", tenant=tenant.slug, customers=80, seed=15, stdout=StringIO())
        customer = Customer.objects.exclude(phone="").order_by("pk").first()
        for role in ("admin", "manager", "sales"):
            User.objects.filter(email=f"{role}@{tenant.slug}.test").update(language="zh-hans")
        # The sales user owns the customer whose 360 page is opened, so every role may open it.
        Customer.objects.filter(pk=customer.pk).update(
            owner=User.objects.get(email=f"sales@{tenant.slug}.test")
        )
        stored = Customer.objects.exclude(phone="").values_list("phone", flat=True)
        phones = sorted({format_phone(phone) for phone in stored})
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
    return customer.pk, phones


def _settle(page) -> None:
    """Wait for the page's own requests (charts' data, htmx fragments loaded on arrival); a page that
    polls (a running job's progress) never goes quiet, so give it a few seconds at most."""
    page.wait_for_load_state("load")
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_load_state("networkidle", timeout=5_000)


def _check(page, url: str, problems: list[str], *, expect_ok: bool, phones: list[str] = ()) -> bool:
    response = page.goto(url)
    _settle(page)
    status = response.status if response else 0
    if status >= 400:
        if expect_ok:
            problems.append(f"{url}: HTTP {status}")
        return False
    overflow = page.evaluate(OVERFLOW_JS)
    if overflow:
        problems.append(f"{url}: page wider than the phone {overflow}")
    small = page.evaluate(TAP_TARGETS_JS, MIN_TAP)
    if small:
        problems.append(f"{url}: tap targets under {MIN_TAP} px {small[:4]}")
    for script, what in (
        (SQUEEZED_TEXT_JS, "text squeezed to a few characters per line"),
        (BROKEN_FIGURES_JS, "figures broken across lines"),
        (SIDEWAYS_TABLES_JS, "tables wider than the phone (neither fitting nor cards)"),
    ):
        found = page.evaluate(script)
        if found:
            problems.append(f"{url}: {what} {found}")
    unlinked = page.evaluate(UNLINKED_PHONES_JS, list(phones))
    if unlinked:
        problems.append(f"{url}: phone numbers without a tel: link {unlinked}")
    return True


def _check_open_navigation(page, url: str, problems: list[str]) -> list[str]:
    """Open the collapsed navigation; its entries must be big enough to tap. Returns their URLs."""
    toggler = page.locator("nav.navbar .navbar-toggler")
    if not toggler.is_visible():
        problems.append(f"{url}: the navigation does not collapse behind a toggler at 390 px")
        return []
    toggler.click()
    page.locator("#main-nav.show").wait_for()
    small = page.evaluate(TAP_TARGETS_JS, MIN_TAP)
    if small:
        problems.append(f"{url}: open navigation has tap targets under {MIN_TAP} px {small[:4]}")
    overflow = page.evaluate(OVERFLOW_JS)
    if overflow:
        problems.append(f"{url}: open navigation wider than the phone {overflow}")
    hrefs = page.locator("#main-nav a.nav-link[data-nav]").evaluate_all("links => links.map(a => a.pathname)")
    toggler.click()
    return hrefs


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"phone_{name}.png"), full_page=True)


# One test per role: three of about 30 s each, which the two test processes can share, instead of
# one of 90 s.
@pytest.mark.parametrize("role", ["admin", "manager", "sales"])
def test_every_page_fits_a_phone_for_every_role_in_chinese(
    browser, committed_tenant, tenant_url, login, django_db_blocker, role
):
    tenant = committed_tenant()
    customer_id, phones = _seed(tenant, django_db_blocker)
    problems: list[str] = []
    visited = 0
    context = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        login(page, tenant, f"{role}@{tenant.slug}.test")
        assert page.locator("html").get_attribute("lang") == "zh-hans"
        _check(page, tenant_url(tenant, "/"), problems, expect_ok=True, phones=phones)
        nav_paths = _check_open_navigation(page, f"{role} /", problems)
        assert nav_paths, f"{role}: no navigation entries"
        paths = list(dict.fromkeys([*nav_paths, *[p.format(customer=customer_id) for p in MAIN_PAGES]]))
        for path in paths:
            url = tenant_url(tenant, path)
            if _check(page, url, problems, expect_ok=path in nav_paths, phones=phones):
                visited += 1
                if path == "/segments/":
                    # Every tab of the segments pages, as a user would reach them.
                    tabs = page.locator("main .nav-tabs a.nav-link, main .nav-pills a.nav-link")
                    for tab in tabs.evaluate_all("links => links.map(a => a.pathname)"):
                        if tab not in paths:
                            paths.append(tab)
            if role == "manager":
                for template, name in SCREENSHOTS.items():
                    if template.format(customer=customer_id) == path:
                        _shot(page, f"{name}_zh-hans_390")
    finally:
        context.close()
    assert visited >= 15, f"{role}: only {visited} pages visited"
    assert not problems, "Pages that do not work on a 390 px phone:\n" + "\n".join(problems)


@pytest.fixture
def operator_with_totp(django_db_blocker):
    """The platform admin with a confirmed authenticator (the console always asks for it)."""
    key = "3132333435363738393031323334353637383930"
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        operator = User.objects.get(email=PLATFORM_ADMIN_EMAIL)
        User.objects.filter(pk=operator.pk).update(language="zh-hans")
        TOTPDevice.objects.filter(user=operator).delete()
        TOTPDevice.objects.create(user=operator, name="phone test", key=key, confirmed=True)
    yield key
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        TOTPDevice.objects.filter(user__email=PLATFORM_ADMIN_EMAIL).delete()


def test_the_platform_console_fits_a_phone_in_chinese(
    browser, public_url, committed_tenant, operator_with_totp, django_db_blocker
):
    tenant = committed_tenant(name="手机测试公司 Phone Test Co")
    context = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    problems: list[str] = []
    try:
        page.goto(public_url("/accounts/login/"))
        page.fill("input[name=username]", PLATFORM_ADMIN_EMAIL)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/accounts/login/code/$"))
        page.fill("input[name=code]", f"{TOTP(unhexlify(operator_with_totp)).token():06d}")
        page.click("main button[type=submit]")
        page.wait_for_url(re.compile(r"/console/$"))
        assert page.locator("html").get_attribute("lang") == "zh-hans"
        for path in (
            "/console/",
            "/console/new/",
            f"/console/{tenant.pk}/",
            f"/console/{tenant.pk}/edit/",
            "/accounts/profile/",
        ):
            _check(page, public_url(path), problems, expect_ok=path != "/accounts/profile/")
        _check_open_navigation(page, "console", problems)
    finally:
        context.close()
    assert not problems, "Console pages that do not work on a 390 px phone:\n" + "\n".join(problems)


@pytest.mark.parametrize("width", [1200, 1280, 1440])
def test_the_expanded_navbar_fits_on_one_line_in_english_at_desktop_widths(
    browser, committed_tenant, tenant_url, login, width
):
    """Issue 15: at 1280 px in English the bar was 1,321 px wide: the language select was squeezed to
    nothing and the bell pushed off the page. Every entry, the language, the user menu and the bell
    fit on one line from the width the bar expands at."""
    tenant = committed_tenant()
    context = browser.new_context(viewport={"width": width, "height": 700}, locale="en-US")
    page = context.new_page()
    try:
        login(page, tenant, f"admin@{tenant.slug}.test")
        page.goto(tenant_url(tenant, "/customers/"))
        assert page.locator("html").get_attribute("lang") == "en"
        sizes = page.evaluate(
            """() => {
                const nav = document.querySelector("nav.navbar");
                const links = [...nav.querySelectorAll(".navbar-nav .nav-link")];
                const select = nav.querySelector("#language-switch select");
                const bell = nav.querySelector("[data-testid=notification-bell], .bi-bell");
                return {
                    page: document.documentElement.scrollWidth,
                    nav: nav.scrollWidth,
                    tops: [...new Set(links.map(a => Math.round(a.getBoundingClientRect().top)))],
                    select: select.getBoundingClientRect().width,
                    selectNeeds: select.scrollWidth,
                    bellRight: bell ? bell.getBoundingClientRect().right : 0,
                };
            }"""
        )
        assert sizes["page"] <= width and sizes["nav"] <= width, sizes
        assert len(sizes["tops"]) == 1, sizes  # one line of entries
        assert sizes["select"] >= 80, sizes  # "English" readable, not squeezed
        assert 0 < sizes["bellRight"] <= width, sizes
        page.screenshot(path=str(ARTIFACTS / f"navbar_en_{width}.png"))
    finally:
        context.close()
