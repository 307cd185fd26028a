"""crm.overlap: database work on the caller's connection, in a thread, while it computes."""

import threading

import numpy as np
import psycopg
import pytest
from django.db import connection, transaction

from crm.overlap import ConnectionLent, Overlap
from customers.models import Customer
from segmentation.pgcopy import copy_out_arrays
from tests.factories import CustomerFactory


def _insert_customer(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO customers_customer (kind, name, email, phone, country, province, city, street, "
            "postcode, gender, income_band, occupation, language, source, email_consent, sms_consent, "
            "external_id, custom_fields, search_text, search_han_grams, search_inner_han, total_spent, "
            "orders_count, created_at, updated_at) "
            "VALUES ('person', %s, '', '', '', '', '', '', '', 'unknown', '', '', '', 'store', false, false, "
            "'', '{}', '', '{}', '{}', 0, 0, now(), now()) RETURNING id",
            [name],
        )
        return cursor.fetchone()[0]


def test_the_thread_works_in_the_callers_transaction_and_tenant(tenant_a, tenant_b):
    """Rows the thread writes are the caller's uncommitted rows (visible to it, gone with its rollback),
    and the thread reads the caller's tenant only."""
    connection.set_tenant(tenant_b)
    CustomerFactory(name="Beta customer")
    connection.set_tenant(tenant_a)
    mine = CustomerFactory(name="Alpha customer")

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        with Overlap() as side:
            inserted = side.run(_insert_customer, "Written by the thread")
            ids = side.run(copy_out_arrays, "SELECT id FROM customers_customer ORDER BY id", None, ["int8"])
            worker = side.run(threading.get_ident)
        assert worker.result() != threading.get_ident()  # it did run elsewhere
        assert ids.result()[0].tolist() == sorted([mine.pk, inserted.result()])
        assert Customer.objects.filter(pk=inserted.result(), name="Written by the thread").exists()
        raise Rollback
    assert not Customer.objects.filter(name="Written by the thread").exists()
    connection.set_tenant(tenant_b)
    assert list(Customer.objects.values_list("name", flat=True)) == ["Beta customer"]
    connection.set_schema_to_public()


def test_the_caller_cannot_query_while_the_connection_is_lent(tenant):
    """A query of the caller meanwhile is refused (it would interleave with the thread's COPY); the
    thread's result is whole and the connection usable afterwards."""
    started = threading.Event()

    def read():
        started.set()
        return copy_out_arrays("SELECT g::int8 FROM generate_series(1, 400000) g", None, ["int8"])

    with Overlap() as side:
        values = side.run(read)
        started.wait(10)
        with pytest.raises(ConnectionLent):
            Customer.objects.count()
    (column,) = values.result()
    assert np.array_equal(column, np.arange(1, 400001))
    assert Customer.objects.count() == 0


def test_an_error_in_the_thread_is_raised_at_the_end_of_the_block(tenant):
    ran_after = []
    with pytest.raises(psycopg.errors.DivisionByZero), transaction.atomic(), Overlap() as side:
        side.run(copy_out_arrays, "SELECT (1 / (g - 5))::int8 FROM generate_series(1, 10) g", None, ["int8"])
        later = side.run(lambda: ran_after.append(True))
        computed = sum(range(1000))
    assert computed == 499500
    # the calls after it still ran (and found the transaction failed)
    assert later.done() and ran_after == [True]
    with connection.cursor() as cursor:  # the connection is the caller's again, and usable
        cursor.execute("SELECT 41 + 1")
        assert cursor.fetchone() == (42,)


def test_the_callers_own_error_wins_and_the_thread_is_waited_for(tenant):
    finished = []

    def slow():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.3)")
        finished.append(True)

    with pytest.raises(KeyError), transaction.atomic(), Overlap() as side:
        side.run(slow)
        raise KeyError("the caller's")
    assert finished == [True]
