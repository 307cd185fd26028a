"""The order table keeps the indexes its queries use and no more (customers migration 0015): at
8,000,000 orders the foreign key's own index and the order number's LIKE index were 385 MB, kept on
every order written, and read by nothing."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from customers.models import Order
from tests.factories import CustomerFactory


def _indexes() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'customers_order'"
        )
        return dict(cursor.fetchall())


def test_the_order_table_has_one_index_per_use(tenant):
    indexes = _indexes()
    assert set(indexes) == {
        "customers_order_pkey",
        "customers_order_number_key",
        "order_customer_placed_idx",
        "order_placed_idx",
        "order_status_placed_idx",
    }, indexes
    assert "UNIQUE" in indexes["customers_order_number_key"]
    # a customer's orders are found through (customer, placed_at)
    customer = CustomerFactory()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN SELECT id FROM customers_order WHERE customer_id = %s", [customer.pk])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "order_customer_placed_idx" in plan, plan


def test_an_order_number_is_still_unique(tenant):
    customer = CustomerFactory()
    Order.objects.create(number="N-1", customer=customer, placed_at=timezone.now(), total=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(number="N-1", customer=customer, placed_at=timezone.now(), total=2)
