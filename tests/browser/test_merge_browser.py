"""Browser: a manager finds a duplicate pair, merges it choosing a field, and undoes the merge."""

from decimal import Decimal

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from customers.models import Customer, Order
from customers.services import customer_refresh_order_stats
from tests.factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.browser


def test_manager_merges_a_duplicate_pair_and_undoes_it(
    page, committed_tenant, login, tenant_url, django_db_blocker
):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        first = CustomerFactory(name="张伟", email="wei@example.com", phone="+8613800138000", city="北京")
        second = CustomerFactory(
            name="張偉 Zhang", email="WEI@example.com", phone="+8613900139000", city="北京"
        )
        OrderFactory(customer=first, number="BR-1", total=Decimal("100"))
        OrderFactory(customer=second, number="BR-2", total=Decimal("50"))
        customer_refresh_order_stats(customer_ids=[first.pk, second.pk])
    connection.set_schema_to_public()

    login(page, tenant, f"manager@{tenant.slug}.test")
    page.goto(tenant_url(tenant, "/customers/duplicates/"))
    row = page.locator(f'[data-pair="{first.pk}-{second.pk}"]')
    assert row.locator("[data-score]").inner_text() == "100"
    row.locator(f'a[href$="/merge/{first.pk}/{second.pk}/"]').click()

    page.locator("#merge-table").wait_for()
    page.check('input[name="choice__phone"][value="merged"]')
    page.click("#merge-submit")
    page.wait_for_url(f"**/duplicates/merged/{second.pk}/")
    assert page.locator('#merge-moved [data-hook="customers.orders"]').is_visible()

    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        survivor = Customer.objects.get(pk=first.pk)
        assert survivor.phone == "+8613900139000"
        assert survivor.orders_count == 2 and survivor.total_spent == Decimal("150")
        assert Customer.objects.get(pk=second.pk).merged_into_id == first.pk

    page.click("#merge-undo")
    page.wait_for_url(f"**/customers/{second.pk}/")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        assert Order.objects.get(number="BR-2").customer_id == second.pk
        assert Customer.objects.get(pk=first.pk).phone == "+8613800138000"
        assert Customer.objects.get(pk=second.pk).deleted_at is None
    connection.set_schema_to_public()
