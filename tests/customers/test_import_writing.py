"""The COPY text encoding of the import's bulk writes (customers.imports.writing)."""

from datetime import date
from decimal import Decimal

from customers.imports.writing import copy_text, encode_rows


def _value_by_value(rows):
    return ["\t".join(copy_text(v) for v in row) for row in rows]


def test_column_encoding_matches_value_by_value_encoding():
    rows = [
        [
            1,
            "tab\there",
            None,
            date(2020, 1, 2),
            {"note": "line\nbreak"},
            True,
            ["a", 'q"uote'],
            Decimal("1.50"),
        ],
        [2, "back\\slash", None, None, {}, False, [], Decimal("0")],
        [3, "plain 王", None, date(1990, 5, 1), {"k": 1}, True, ["VIP"], Decimal("2")],
    ]
    assert list(encode_rows(rows)) == _value_by_value(rows)


def test_a_column_of_plain_strings_needing_escapes_is_escaped():
    # one cell in a column of clean strings needs escaping: the whole column must not pass unescaped
    rows = [[str(n), "clean"] for n in range(50)] + [["50", "carriage\rreturn"]]
    lines = list(encode_rows(rows))
    assert lines[-1] == "50\tcarriage\\rreturn"
    assert lines[0] == "0\tclean"


def test_columns_of_integers_and_of_nulls():
    assert list(encode_rows([[1, None], [22, None]])) == ["1\t\\N", "22\t\\N"]


def test_no_rows_no_lines():
    assert list(encode_rows([])) == []


def test_tag_links_are_written_to_one_index_by_customer_and_still_found_through_it(tenant):
    """Migration 0009: the plain index on customers_customer_tags(customer_id) is gone (one btree write
    fewer per tag link an import writes); lookups by customer use the unique (customer_id, tag_id)."""
    from django.db import connection

    from customers.models import Customer

    table = Customer.tags.through._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s", [table]
        )
        definitions = [row[0] for row in cursor.fetchall()]
        assert not [d for d in definitions if d.endswith("(customer_id)")], definitions
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN SELECT tag_id FROM {table} WHERE customer_id = 1")  # noqa: S608
        plan = " ".join(row[0] for row in cursor.fetchall())
    assert "customer_id_tag_id" in plan, plan
