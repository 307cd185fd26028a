"""The score table is rewritten by swapping in a fresh copy (segmentation.tableswap): the copy must be
the same table (columns, indexes, keys, names), a busy table must fall back to updating in place,
and rows of customers deleted meanwhile must not break the swap."""

from decimal import Decimal

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from customers.models import Customer
from segmentation import recompute as recompute_module
from segmentation.models import CustomerScore
from segmentation.recompute import SCORE_TABLE, recompute
from segmentation.tableswap import SwapLockTimeout, TableSwap
from tests.conftest import _test_database_url
from tests.factories import CustomerFactory

from .conftest import customer_with_orders


def catalogue(table: str) -> dict:
    """Everything about a table that the swap must keep: columns, indexes, constraints (by name)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            [table],
        )
        columns = cursor.fetchall()
        cursor.execute(
            "SELECT c.relname, regexp_replace(pg_get_indexdef(i.indexrelid), ' ON \\S+ ', ' ON t ') "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = %s::regclass ORDER BY 1",
            [table],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass ORDER BY 1",
            [table],
        )
        constraints = cursor.fetchall()
    return {"columns": columns, "indexes": indexes, "constraints": constraints}


def some_customers():
    """Two buyers and a prospect (no orders, so the ORM may delete it for good)."""
    return [customer_with_orders([5]), customer_with_orders([100, 70, 40, 10]), CustomerFactory()]


def test_the_swapped_in_table_is_the_same_table_with_the_new_scores(tenant):
    before = catalogue(SCORE_TABLE)
    assert len(before["indexes"]) == 5 and any(kind == "f" for _n, kind, _d in before["constraints"])
    customers = some_customers()
    first = recompute(with_holdout=False)
    second = recompute(with_holdout=False)
    assert "write_swap" in first.timings and "write_swap" in second.timings
    assert catalogue(SCORE_TABLE) == before
    assert set(CustomerScore.objects.values_list("customer_id", flat=True)) == {c.pk for c in customers}
    assert set(CustomerScore.objects.values_list("computed_at", flat=True)) == {second.as_of}
    # the foreign key still holds: deleting a customer through the ORM takes its score with it
    prospect_pk = customers[2].pk
    customers[2].delete()
    assert not CustomerScore.objects.filter(customer_id=prospect_pk).exists()


def test_a_customer_in_the_recycle_bin_keeps_the_last_score(tenant):
    kept, binned, _prospect = some_customers()
    first = recompute(with_holdout=False)
    Customer.objects.filter(pk=binned.pk).update(deleted_at=timezone.now())
    second = recompute(with_holdout=False)
    assert CustomerScore.objects.get(customer=binned).computed_at == first.as_of
    assert CustomerScore.objects.get(customer=kept).computed_at == second.as_of


def test_a_busy_score_table_is_updated_in_place_instead(tenant, monkeypatch):
    before = catalogue(SCORE_TABLE)
    customers = some_customers()
    monkeypatch.setattr(recompute_module, "SWAP_LOCK_TIMEOUT_MS", 200)
    # Another session reads the score table in a long transaction: the swap cannot have its lock.
    with psycopg.connect(_test_database_url(), autocommit=False) as reader:
        reader.execute(f'SET search_path TO "{tenant.schema_name}", public')
        reader.execute(f"SELECT count(*) FROM {SCORE_TABLE}").fetchone()
        run = recompute(with_holdout=False)
        again = recompute(with_holdout=False)
        reader.rollback()
    assert "write_update" in run.timings and "write_swap" not in run.timings
    assert "write_update" in again.timings  # the second run updates the rows the first inserted
    assert catalogue(SCORE_TABLE) == before
    assert set(CustomerScore.objects.values_list("computed_at", flat=True)) == {again.as_of}
    assert CustomerScore.objects.count() == len(customers)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [f"{SCORE_TABLE}__next"])
        assert cursor.fetchone()[0] is None  # the unused copy is gone


def test_a_customer_deleted_while_the_copy_is_built_does_not_break_the_swap(tenant):
    survivor, other, gone = some_customers()
    frame_before = recompute(with_holdout=False)
    assert frame_before.customers_count == 3
    # Build the copy by hand, delete a customer (and, as the ORM does, its score) before the swap.
    swap = TableSwap(SCORE_TABLE)
    swap.create()
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {swap.next_table} SELECT * FROM {SCORE_TABLE}")
    gone_pk = gone.pk
    gone.delete()
    swap.commit_swap()
    assert set(CustomerScore.objects.values_list("customer_id", flat=True)) == {survivor.pk, other.pk}
    assert gone_pk not in set(CustomerScore.objects.values_list("customer_id", flat=True))


def test_tables_that_cannot_be_swapped_are_refused(tenant):
    with pytest.raises(ValueError, match="referenced by foreign keys"):
        TableSwap("customers_customer").create()
    with pytest.raises(ValueError, match="sequence-backed columns"):
        TableSwap("segmentation_segmentsnapshot").create()


def test_the_lock_timeout_is_reported_as_such(tenant):
    before = catalogue(SCORE_TABLE)
    swap = TableSwap(SCORE_TABLE, lock_timeout_ms=100)
    with psycopg.connect(_test_database_url(), autocommit=False) as reader:
        reader.execute(f'SET search_path TO "{tenant.schema_name}", public')
        reader.execute(f"SELECT 1 FROM {SCORE_TABLE} LIMIT 1").fetchall()
        swap.create()
        with pytest.raises(SwapLockTimeout):
            swap.commit_swap()
        reader.rollback()
    swap.discard()
    assert catalogue(SCORE_TABLE) == before  # the old table is untouched
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [swap.next_table])
        assert cursor.fetchone()[0] is None


def test_a_reader_of_the_customers_gets_its_answer_while_the_swap_gives_up(tenant, monkeypatch):
    """A long read of the customer table (which the swap must lock too) is neither cancelled nor
    kept waiting long: the swap's short attempts give up and the scores are updated in place."""
    some_customers()
    monkeypatch.setattr(recompute_module, "SWAP_LOCK_TIMEOUT_MS", 300)
    with psycopg.connect(_test_database_url(), autocommit=False) as reader:
        reader.execute(f'SET search_path TO "{tenant.schema_name}", public')
        reader.execute("SELECT count(*) FROM customers_customer").fetchone()
        run = recompute(with_holdout=False)
        # the reader's transaction goes on, and can read the scores (the committed table) too
        assert reader.execute(f"SELECT count(*) FROM {SCORE_TABLE}").fetchone()[0] >= 0
        reader.rollback()
    assert "write_update" in run.timings
    assert CustomerScore.objects.count() == 3


def test_the_swap_and_the_update_in_place_store_the_same_scores(tenant, monkeypatch):
    """The swap COPYs the table's own columns (NULLs, numerics and texts encoded in numpy); the update
    decodes a temp table of sentinels in SQL: the two must store the very same values."""
    some_customers()
    customer_with_orders([400, 3], amount="33.33")  # lapsed long ago, then back; money with cents
    recompute(with_holdout=False)
    fields = [f.name for f in CustomerScore._meta.fields if f.name != "computed_at"]
    swapped = sorted(CustomerScore.objects.values_list(*fields))
    assert any(None in row for row in swapped)
    assert any(isinstance(value, Decimal) and value % 1 for row in swapped for value in row)

    def refused(self):
        raise SwapLockTimeout("pretended busy")

    monkeypatch.setattr(TableSwap, "commit_swap", refused)
    again = recompute(with_holdout=False)
    assert "write_update" in again.timings
    assert set(CustomerScore.objects.values_list("computed_at", flat=True)) == {again.as_of}
    assert sorted(CustomerScore.objects.values_list(*fields)) == swapped
