"""Browser: a sales rep searches as they type, opens a customer, edits the profile in place, sees the
change in the history, and is warned about a duplicate email while creating a customer."""

import re
from decimal import Decimal

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from crm.accounts.models import User
from customers.models import Customer
from customers.services import customer_create, customer_refresh_order_stats
from tests.browser.conftest import SETTLED_FORM
from tests.factories import OrderFactory, OrderLineFactory

pytestmark = pytest.mark.browser


def test_search_open_edit_in_place_and_duplicate_warning(
    page, committed_tenant, login, tenant_url, django_db_blocker
):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        User.objects.update(language="en")
        sales = User.objects.get(email=f"sales@{tenant.slug}.test")
        other = User.objects.get(email=f"sales2@{tenant.slug}.test")
        wang = customer_create(actor=sales, name="王小明", email="xiaoming@example.cn", phone="138 0013 8000")
        customer_create(actor=sales, name="Li Lei", email="lilei@example.com")
        customer_create(actor=other, name="王秘密", email="secret@example.com")  # not visible to sales
        order = OrderFactory(customer=wang, number="WEB-1", total=Decimal("88.00"))
        OrderLineFactory(order=order, product_name="Jasmine tea", unit_price=Decimal("88.00"))
        customer_refresh_order_stats(customer_ids=[wang.pk])
    connection.set_schema_to_public()

    login(page, tenant, f"sales@{tenant.slug}.test")
    page.goto(tenant_url(tenant, "/"))
    page.click('[data-nav="customers"]')
    page.wait_for_url("**/customers/")
    assert page.locator("#customer-table tbody tr").count() == 2

    # Search as you type (pinyin finds the Chinese name); the table is swapped, the URL follows.
    page.fill("#id_q", "wangxiao")
    page.wait_for_url(re.compile(r".*q=wangxiao.*"))
    page.locator("#customer-table tbody tr").first.wait_for()
    # (waits through locators: wait_for_function evaluates strings, which the page's CSP forbids)
    expect(page.locator("#customer-table tbody tr")).to_have_count(1)
    assert "王小明" in page.locator("#customer-table").inner_text()
    assert "王秘密" not in page.content()

    page.click("text=王小明")
    page.wait_for_url(f"**/customers/{wang.pk}/")
    assert "¥88.00" in page.locator("#key-figures").inner_text()
    # The timeline, below the panels, arrives by htmx once it scrolls into view (the no-JavaScript
    # link is replaced).
    page.locator("#timeline").scroll_into_view_if_needed()
    expect(page.locator('.timeline-entry[data-kind="order"]')).to_have_count(1)
    expect(page.locator('[data-testid="timeline-pending"]')).to_have_count(0)
    # The Orders tab (its badge counts every order) loads with htmx when it is first shown.
    assert page.locator('[data-testid="orders-pending"]').count() == 1
    page.click("button[data-bs-target='#tab-orders']")
    expect(page.locator("#orders")).to_contain_text("WEB-1")
    expect(page.locator("#orders")).to_contain_text("Jasmine tea")

    # Edit in place: the card becomes a form, a bad email is refused at the field, then it saves.
    page.click("#edit-in-place")
    page.locator(SETTLED_FORM).wait_for()
    page.fill("#profile-card input[name=email]", "not-an-email")
    page.click("#profile-card button[type=submit]")
    page.locator("#profile-card .invalid-feedback").first.wait_for()
    assert "valid email" in page.locator("#profile-card").inner_text()
    page.locator(SETTLED_FORM).wait_for()
    page.fill("#profile-card input[name=email]", "xiaoming@example.cn")
    page.fill("#profile-card input[name=city]", "杭州")
    page.click("#profile-card button[type=submit]")
    page.locator("#edit-in-place").wait_for()
    assert "杭州" in page.locator("#profile-card").inner_text()
    expect(page.locator("#timeline")).to_contain_text("杭州")

    page.reload()
    page.click("button[data-bs-target='#tab-history']")
    assert "杭州" in page.locator("#history").inner_text()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        assert Customer.objects.get(pk=wang.pk).city == "杭州"

    # Creating: an email another customer already has (one this user cannot see) gets a warning
    # without any link to it.
    page.goto(tenant_url(tenant, "/customers/new/"))
    page.fill("input[name=email]", "secret@example.com")
    warning = page.locator("#duplicate-email .duplicate-warning")
    warning.wait_for()
    assert "already exists" in warning.inner_text() and warning.locator("a").count() == 0
    page.fill("input[name=phone]", "13800138000")
    page.locator("#duplicate-phone .duplicate-warning a").wait_for()
    assert "王小明" in page.locator("#duplicate-phone").inner_text()
    connection.set_schema_to_public()
