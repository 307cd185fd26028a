import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from segmentation.pgcopy import copy_out_arrays
from tests.factories import CustomerFactory


def test_binary_copy_out_works_under_the_debug_cursor(tenant):
    """`make run` uses DEBUG=True, where Django wraps cursors in a debug wrapper whose copy() takes no
    parameters; capturing queries forces that same wrapper here."""
    customers = [CustomerFactory(name=f"Copy {i}") for i in range(3)]
    with CaptureQueriesContext(connection):
        (ids,) = copy_out_arrays(
            "SELECT id FROM customers_customer WHERE name LIKE %s ORDER BY id", ["Copy %"], ["int8"]
        )
    assert ids.tolist() == [c.pk for c in customers]


def test_binary_copy_out_reads_a_result_of_many_network_reads_whole(tenant):
    """500,000 rows (19 MB) arrive in many socket reads: every row comes back, in order."""
    first, second = copy_out_arrays(
        "SELECT g::int8, (g * 0.5)::float8 FROM generate_series(1, 500000) g", None, ["int8", "float8"]
    )
    assert first.tolist() == list(range(1, 500001))
    assert (second == first * 0.5).all()


def test_an_error_part_way_through_a_binary_copy_out_is_raised_and_the_connection_stays_usable(tenant):
    with pytest.raises(psycopg.errors.DivisionByZero), transaction.atomic():
        copy_out_arrays("SELECT (1 / (200000 - g))::int8 FROM generate_series(1, 300000) g", None, ["int8"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT 41 + 1")
        assert cursor.fetchone() == (42,)
