"""Browser: figures that mean what they say and the customer list's flows (issue 15), on a tenant
filled by the demo seeder.

- The segment history chart draws every segment in its own colour from the one shared palette, on
  a real time axis (a linear axis of timestamps: runs a month apart sit a month apart).
- The customer list: the bulk-action bar appears only once rows are selected and shows the owner
  selector only for "Assign owner"; filtering puts only the filters in use in the address; paging
  offers first / previous / "page N of M" / next / last.
- Screenshots of the dashboard, customer list, 360 page, segments and alerts at 1280 and 390 px in
  English and Chinese go to test-artifacts/screens_*.png.
"""

from io import StringIO
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from crm.accounts.models import User
from customers.models import Customer
from segmentation.models import RecomputeRun
from segmentation.recompute import recompute
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_phone_width import _settle

pytestmark = [pytest.mark.browser, pytest.mark.celery_worker]

FITS = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
SCREENS = {
    "dashboard": "/",
    "customers": "/customers/",
    "customer_360": "/customers/{customer}/",
    "segments": "/segments/",
    "alerts": "/segments/alerts/",
}


@pytest.fixture
def seeded(committed_tenant, django_db_blocker):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        call_command("seed_demo", tenant=tenant.slug, customers=120, seed=21, stdout=StringIO())
        recompute()  # a third run, seconds after the seeder's last one (which is a month after its first)
        customer = Customer.objects.exclude(phone="").order_by("pk").first()
        runs = list(RecomputeRun.objects.filter(status=RecomputeRun.Status.SUCCEEDED).order_by("started_at"))
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
    return tenant, customer.pk, runs


def _context(browser, width: int, language: str):
    context = browser.new_context(
        viewport={"width": width, "height": 900 if width > 400 else 844},
        locale="zh-CN" if language == "zh-hans" else "en-US",
        is_mobile=width < 400,
        has_touch=width < 400,
    )
    context.set_default_timeout(20_000)
    return context


def _set_language(tenant, django_db_blocker, language: str) -> None:
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        User.objects.filter(email=f"manager@{tenant.slug}.test").update(language=language)
    with django_db_blocker.unblock():
        connection.set_schema_to_public()


def test_screens_charts_and_the_customer_list(browser, seeded, tenant_url, login, django_db_blocker):
    tenant, customer_id, runs = seeded
    assert len(runs) >= 3, "the demo seeder builds a history of recomputes"

    for language in ("en", "zh-hans"):
        _set_language(tenant, django_db_blocker, language)
        for width in (1280, 390):
            context = _context(browser, width, language)
            page = context.new_page()
            try:
                login(page, tenant, f"manager@{tenant.slug}.test")
                for name, path in SCREENS.items():
                    page.goto(tenant_url(tenant, path.format(customer=customer_id)))
                    _settle(page)
                    assert page.evaluate(
                        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
                    )
                    ARTIFACTS.mkdir(exist_ok=True)
                    page.screenshot(
                        path=str(ARTIFACTS / f"screens_{name}_{language}_{width}.png"), full_page=True
                    )
                if language == "en" and width == 1280:
                    _history_chart(page, tenant_url(tenant, "/segments/history/"), runs)
                    _customer_list(page, tenant_url(tenant, "/customers/"))
            finally:
                context.close()


def _history_chart(page, url: str, runs) -> None:
    page.goto(url)
    page.wait_for_function("() => window.Chart && Chart.getChart('segment-history')")
    chart = page.evaluate(
        """() => {
          const chart = Chart.getChart('segment-history');
          const x = chart.scales.x;
          const points = chart.data.datasets[0].data.map((p) => x.getPixelForValue(p.x));
          return {colours: chart.data.datasets.map((d) => d.borderColor), type: x.type,
                  xs: chart.data.datasets[0].data.map((p) => p.x), points,
                  ticks: x.ticks.map((t) => x.getLabelForValue(t.value))};
        }"""
    )
    # Every segment in its own colour: no colour drawn twice.
    assert len(chart["colours"]) >= 5
    assert len(set(chart["colours"])) == len(chart["colours"]), chart["colours"]
    # A time axis: the gaps between points on screen are in proportion to the gaps in time.
    assert chart["type"] == "linear"
    xs, points = chart["xs"], chart["points"]
    assert xs == sorted(xs) and len(xs) >= 3
    time_gaps = [b - a for a, b in zip(xs, xs[1:], strict=False)]
    pixel_gaps = [b - a for a, b in zip(points, points[1:], strict=False)]
    scale = (points[-1] - points[0]) / (xs[-1] - xs[0])
    for time_gap, pixel_gap in zip(time_gaps, pixel_gaps, strict=True):
        assert abs(pixel_gap - time_gap * scale) < 2, (time_gaps, pixel_gaps)
    assert all("1970" not in tick for tick in chart["ticks"])


def _customer_list(page, url: str) -> None:
    page.goto(url)
    bar = page.locator("[data-testid=bulk-bar]")
    assert not bar.is_visible(), "no bulk actions before a row is selected"
    page.locator("tr[data-customer] input[name=ids]").first.check()
    bar.wait_for(state="visible")
    assert "1" in page.locator("[data-testid=selected-count]").inner_text()
    owner = bar.locator("select[name=owner]")
    tag = bar.locator("input[name=tag]")
    assert tag.is_visible() and not owner.is_visible()  # "Add tag" needs a tag, not an owner
    bar.locator("select[name=action]").select_option("assign")
    assert owner.is_visible() and not tag.is_visible()
    page.locator("tr[data-customer] input[name=ids]").first.uncheck()
    bar.wait_for(state="hidden")

    # Filtering: the address carries only the filters in use (htmx and a plain submit alike).
    page.fill("#id_q", "a")
    page.wait_for_function("() => new URL(location.href).searchParams.get('q') === 'a'")
    page.wait_for_load_state("networkidle")
    params = parse_qsl(urlsplit(page.url).query, keep_blank_values=True)
    assert params and all(value for _key, value in params), page.url

    # Paging: first / previous / page N of M / next / last.
    page.goto(url)
    pages = page.locator("[data-testid=customer-pages]")
    assert "1" in pages.locator("[data-testid=page-position]").inner_text()
    page.locator("[data-page=last]").click()
    page.wait_for_url("**direction=last**")
    position = page.locator("[data-testid=page-position]").inner_text()
    assert "Page" in position and position.split()[-1] == position.split()[1], position  # Page M of M
    page.locator("[data-page=previous]").click()
    page.wait_for_url("**direction=prev**")
    page.wait_for_load_state("networkidle")
    assert page.locator("tr[data-customer]").count() > 0
