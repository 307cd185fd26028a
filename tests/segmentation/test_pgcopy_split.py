"""segmentation.pgcopy.copy_out_split: a big table read by two backends at once, in one snapshot.

The split read runs outside a transaction (its snapshot must be a transaction's first), so these tests
work on committed tenants and clean up after themselves."""

from datetime import timedelta
from decimal import Decimal

import numpy as np
import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from customers.models import Customer, Order
from segmentation import pgcopy
from segmentation.pgcopy import copy_out_arrays, copy_out_split
from tests.conftest import _test_database_url

COLUMNS = "customer_id, placed_at, (total - refunded_total)::float8"
WHERE = "status = ANY(%s) AND placed_at <= %s"
TYPES = ["int8", "timestamptz", "float8"]


def _orders(count: int, prefix: str) -> list[int]:
    """`count` committed orders over three customers, every third one cancelled (not a purchase)."""
    customers = [Customer.objects.create(name=f"{prefix} {i}") for i in range(3)]
    now = timezone.now()
    statuses = [Order.Status.PAID, Order.Status.PARTIALLY_REFUNDED, Order.Status.CANCELLED]
    Order.objects.bulk_create(
        Order(
            number=f"{prefix}-{i:06d}",
            customer=customers[(i // 7) % 3],
            placed_at=now - timedelta(days=i % 400, minutes=i + 1),
            status=statuses[i % 3],
            total=Decimal(i % 500) + Decimal("0.25"),
            refunded_total=Decimal("0.25") if i % 3 == 1 else Decimal("0"),
        )
        for i in range(count)
    )
    return [c.pk for c in customers]


def _rows(arrays: list[np.ndarray]) -> list[tuple]:
    return sorted(zip(*(a.tolist() for a in arrays), strict=True))


def _params() -> tuple:
    return ([Order.Status.PAID, Order.Status.PARTIALLY_REFUNDED], timezone.now())


def _blocks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_size('customers_order') / current_setting('block_size')::int8")
        return cursor.fetchone()[0]


def test_the_two_halves_are_the_whole_table_of_this_tenant_only(committed_tenant, django_db_blocker):
    """Every purchase of the tenant once, none of the other tenant's: the thread's connection reads the
    caller's tenant, and the halves meet at the cut without a gap or an overlap."""
    tenant_a = committed_tenant(name="Split A")
    tenant_b = committed_tenant(name="Split B")
    with django_db_blocker.unblock():
        with schema_context(tenant_b.schema_name):
            _orders(900, "B")
        with schema_context(tenant_a.schema_name):
            mine = _orders(3000, "A")
            assert _blocks() >= 10  # the halves are real halves
            params = _params()
            split = copy_out_split("customers_order", COLUMNS, WHERE, params, TYPES, min_blocks=0)
            single = copy_out_arrays(f"SELECT {COLUMNS} FROM customers_order WHERE {WHERE}", params, TYPES)
            assert len(split[0]) == 2000  # the paid and partly refunded two thirds
            assert _rows(split) == _rows(single)
            assert set(split[0].tolist()) == set(mine)
            assert split[2].sum() == pytest.approx(single[2].sum())
        connection.set_schema_to_public()


def test_a_row_committed_while_the_halves_are_read_is_in_neither(
    committed_tenant, django_db_blocker, monkeypatch
):
    """Both halves read the snapshot taken before they start: an order another connection commits just
    after it (into the table's last block, the thread's half) is not read."""
    tenant = committed_tenant(name="Split snapshot")
    exported = pgcopy._share_snapshot

    def export_then_commit_another_order(table):
        snapshot = exported(table)
        with psycopg.connect(_test_database_url(), autocommit=True) as other:
            other.execute(f'SET search_path = "{tenant.schema_name}", public')
            other.execute(
                "INSERT INTO customers_order (number, customer_id, placed_at, status, channel, currency, "
                "total, refunded_total, external_id, created_at, updated_at) "
                "SELECT 'LATE-1', customer_id, now() - interval '1 day', 'paid', channel, currency, "
                "777.77, 0, '', now(), now() FROM customers_order LIMIT 1"
            )
        return snapshot

    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        _orders(3000, "S")
        params = _params()
        monkeypatch.setattr(pgcopy, "_share_snapshot", export_then_commit_another_order)
        split = copy_out_split("customers_order", COLUMNS, WHERE, params, TYPES, min_blocks=0)
        assert Order.objects.filter(number="LATE-1").exists()
        assert len(split[0]) == 2000
        assert 777.77 not in split[2].tolist()
        connection.set_schema_to_public()


def test_inside_a_transaction_or_for_a_small_table_it_is_one_copy(committed_tenant, django_db_blocker):
    """Within a transaction the snapshot is no longer the transaction's first: one COPY on this
    connection, in the caller's transaction (its uncommitted rows included)."""
    tenant = committed_tenant(name="Split inside")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        _orders(300, "T")
        params = _params()
        small = copy_out_split("customers_order", COLUMNS, WHERE, params, TYPES)  # under SPLIT_MIN_BLOCKS
        assert len(small[0]) == 200
        from django.db import transaction

        with transaction.atomic():
            _orders(30, "U")
            inside = copy_out_split("customers_order", COLUMNS, WHERE, params, TYPES, min_blocks=0)
            assert len(inside[0]) == 220
            transaction.set_rollback(True)
        connection.set_schema_to_public()
