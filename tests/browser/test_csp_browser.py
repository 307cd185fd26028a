"""Browser: the main pages under the Content-Security-Policy. The `page` fixture fails a test on any
CSP violation in the console; here every main page is opened, and the behaviours that moved from
inline handlers and style="" attributes to static/js/app.js and app.css are exercised: charts draw,
progress bars get their width, confirmations ask, "select all" selects, a language change submits."""

import re

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from crm.accounts.models import User
from customers.services import customer_create
from segmentation.recompute import recompute
from segmentation.services import segment_create
from tests.segmentation.conftest import customer_with_orders

pytestmark = [pytest.mark.browser, pytest.mark.celery_worker]


def test_the_main_pages_run_under_the_policy(page, committed_tenant, login, tenant_url, django_db_blocker):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        for days in ([90, 60, 30, 5], [400, 200], [3], [700, 650], [20, 10]):
            customer_with_orders(days, city="上海")
        admin = User.objects.get(email=f"admin@{tenant.slug}.test")
        User.objects.filter(pk=admin.pk).update(language="en")
        recompute()
        segment_create(
            actor=admin,
            name="Shanghai",
            rules={"op": "and", "rules": [{"field": "city", "op": "eq", "value": "上海"}]},
        )
        target = customer_create(actor=admin, name="To be deleted")
    connection.set_schema_to_public()

    login(page, tenant, f"admin@{tenant.slug}.test")
    for path in (
        "/",
        "/customers/",
        "/customers/new/",
        "/customers/custom-fields/",
        "/customers/import/",
        "/segments/",
        "/segments/clv/",
        "/segments/lifecycle/",
        "/segments/history/",
        "/segments/saved/",
        "/segments/builder/",
        "/accounts/settings/users/",
        "/accounts/profile/",
        "/no-such-page/",
    ):
        page.goto(tenant_url(tenant, path))
        page.wait_for_load_state("networkidle")
    # (any CSP violation on those pages fails the test in the `page` fixture)

    # Charts are drawn by static/js/charts.js: the canvas gets its size from Chart.js.
    page.goto(tenant_url(tenant, "/segments/history/"))
    expect(page.locator("#segment-history")).to_have_attribute("style", re.compile("width"))
    # Progress bars get their width from data-width.
    page.goto(tenant_url(tenant, "/segments/lifecycle/"))
    widths = page.locator(".progress-bar[data-width]").evaluate_all(
        "bars => bars.map(b => [b.dataset.width, b.style.width])"
    )
    assert widths and all(style == f"{value}%" for value, style in widths), widths
    # The heatmap is coloured by classes.
    page.goto(tenant_url(tenant, "/segments/"))
    assert page.locator("td[class^='heat-']").count() == 25

    # The bulk-action bar stays hidden until a row is selected; "select all" checks every row and
    # shows it (both by app.js, under the policy).
    page.goto(tenant_url(tenant, "/customers/"))
    messages, answer = [], {"accept": False}

    def on_dialog(dialog):
        messages.append(dialog.message)
        dialog.accept() if answer["accept"] else dialog.dismiss()

    page.on("dialog", on_dialog)
    expect(page.locator("[data-require-checked]").first).to_be_hidden()
    page.locator("[data-check-all]").check()
    assert page.locator("input[name=ids]:checked").count() == page.locator("input[name=ids]").count() > 0
    expect(page.locator("[data-require-checked]").first).to_be_visible()

    # A confirmation dismissed keeps the customer; accepted, deletes it.
    page.goto(tenant_url(tenant, f"/customers/{target.pk}/"))
    page.locator("form[data-confirm] button[type=submit]").first.click()
    assert len(messages) == 1 and "recycle bin" in messages[0]
    assert page.url.endswith(f"/customers/{target.pk}/")
    answer["accept"] = True
    page.locator("form[data-confirm] button[type=submit]").first.click()
    page.wait_for_load_state("networkidle")
    assert not page.url.endswith(f"/customers/{target.pk}/")

    # The segment builder recounts its preview after a structural change (was hx-on, now app.js): a
    # click on "add group" re-renders the conditions, then the preview is asked again.
    page.goto(tenant_url(tenant, "/segments/builder/"))
    page.wait_for_load_state("networkidle")
    groups = page.locator("fieldset[data-group]").count()
    with page.expect_request(lambda request: request.url.endswith("/segments/builder/preview/")):
        page.click('[data-testid="add-group"]')
    assert page.locator("fieldset[data-group]").count() == groups + 1

    # The language switch submits on change.
    page.goto(tenant_url(tenant, "/customers/"))
    page.select_option("#language-switch select", "zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
