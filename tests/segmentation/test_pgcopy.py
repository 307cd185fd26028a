from decimal import Decimal

import numpy as np
import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from segmentation.pgcopy import Column, copy_in_columns, copy_out_arrays
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


def test_copy_in_columns_writes_nulls_money_and_texts_as_postgresql_reads_them(tenant):
    """Rows of varying width (NULLs, numerics, texts of several lengths) in one binary COPY, read back
    by PostgreSQL itself: every value as written, the money exact to the cent at both ends of its range."""
    cents = np.array([0, 1, -1, 99, 100, 12345, -12345, 10**12 - 1, -(10**12) + 1, 10**14 - 1, 5, 7])
    n = len(cents)
    nulls = np.arange(n) % 3 == 2
    codes = np.arange(n) % 3
    choices = ("", "champions", "at_risk")
    instants = np.array([0, 1, -(10**12), 1_700_000_000_123_456] * 3)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE copy_columns (id int8, amount numeric(16, 2), maybe_amount numeric(16, 2), "
            "label varchar(20), maybe_label varchar(20), score int2, at timestamptz)"
        )
    written = copy_in_columns(
        "copy_columns",
        [
            Column("id", "int8", np.arange(n)),
            Column("amount", "cents", cents),
            Column("maybe_amount", "cents", cents, nulls=nulls),
            Column("label", "text", codes, choices=choices),
            Column("maybe_label", "text", codes, nulls=~nulls, choices=choices),
            Column("score", "int2", codes + 1, nulls=codes == 0),
            Column("at", "timestamptz", instants),
        ],
    )
    assert written == n
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, amount, maybe_amount, label, maybe_label, score, "
            "(extract(epoch FROM at) * 1000000)::int8 FROM copy_columns ORDER BY id"
        )
        rows = cursor.fetchall()
    assert [row[0] for row in rows] == list(range(n))
    for i, (_id, amount, maybe_amount, label, maybe_label, score, at) in enumerate(rows):
        assert amount == Decimal(int(cents[i])) / 100
        assert maybe_amount == (None if nulls[i] else amount)
        assert label == choices[codes[i]]
        assert maybe_label == (choices[codes[i]] if nulls[i] else None)
        assert score == (None if codes[i] == 0 else codes[i] + 1)
        assert at == instants[i]
    assert str(rows[7][1]) == "9999999999.99" and str(rows[0][1]) == "0.00"


@pytest.mark.parametrize(
    "column, message",
    [
        (Column("label", "text", np.array([0, 3]), choices=("a", "b")), "a code outside its choices"),
        (Column("amount", "cents", np.array([0, 10**15])), "beyond"),
        (Column("amount", "money", np.array([0, 1])), "unsupported"),
    ],
)
def test_copy_in_columns_refuses_what_it_cannot_write_before_writing(tenant, column, message):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE refused (id int8, label text, amount numeric(20, 2))")
    with pytest.raises(ValueError, match=message):
        copy_in_columns("refused", [Column("id", "int8", np.array([1, 2])), column])
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM refused")
        assert cursor.fetchone() == (0,)
