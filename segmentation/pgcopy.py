"""PostgreSQL binary COPY of fixed-width columns to and from numpy, through a Django cursor.

Text COPY spends its time formatting and parsing numbers (a million timestamps and decimals take
seconds); the binary format of int2/int4/int8/float8/timestamptz is fixed-width big-endian, so a
whole result is one `numpy.frombuffer` and a whole upload one `ndarray.tobytes()`.

Restrictions that keep it that simple: every column is one of `TYPES` and never NULL. Encode NULLs
as sentinels in SQL (`COALESCE(x, 'NaN'::float8)`, `COALESCE(n, -1)`) and decode them on the way in
(`NULLIF(x, 'NaN')`). Always use a Django cursor (`connection.cursor()`), so the tenant's
search_path applies.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction
from psycopg import errors as pg_errors
from psycopg import generators
from psycopg.pq import ExecStatus
from psycopg.waiting import Wait

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # no OIDs, no header extension
TRAILER = b"\xff\xff"
# timestamptz is microseconds since 2000-01-01 00:00 UTC
PG_EPOCH_US = 946_684_800_000_000

TYPES: dict[str, str] = {
    "int2": ">i2",
    "int4": ">i4",
    "int8": ">i8",
    "float8": ">f8",
    "timestamptz": ">i8",
}


def _row_dtype(types: list[str]) -> np.dtype:
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for index, pg_type in enumerate(types):
        try:
            fields += [(f"len{index}", ">i4"), (f"val{index}", TYPES[pg_type])]
        except KeyError:
            raise ValueError(f"unsupported binary COPY type {pg_type!r}") from None
    return np.dtype(fields)


def copy_out_arrays(sql: str, params: tuple | list | None, types: list[str]) -> list[np.ndarray]:
    """Run `COPY (<sql>) TO STDOUT (FORMAT binary)` and return one native-endian array per column.

    timestamptz columns come back as int64 microseconds since the Unix epoch.
    """
    buffer = bytearray()
    with (
        connection.cursor() as cursor,
        # The raw psycopg cursor: Django's debug cursor wrapper (DEBUG=True) takes no COPY parameters.
        # The wrapper has already set the tenant's search_path on this connection.
        cursor.cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT binary)", params),
    ):
        pg = cursor.cursor.connection
        pg.wait(_read_copy_out(pg.pgconn, buffer))
    data = bytes(buffer)
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PostgreSQL binary COPY stream")
    extension = int.from_bytes(data[15:19], "big")
    body = data[19 + extension : -2]
    dtype = _row_dtype(types)
    if len(body) % dtype.itemsize:
        raise ValueError("binary COPY rows are not fixed-width: a column is NULL or of another type")
    rows = np.frombuffer(body, dtype=dtype)
    if rows.size and (rows["count"] != len(types)).any():
        raise ValueError("unexpected number of columns in the binary COPY stream")
    arrays = []
    for index, pg_type in enumerate(types):
        width = np.dtype(TYPES[pg_type]).itemsize
        if rows.size and (rows[f"len{index}"] != width).any():
            raise ValueError(f"column {index} is NULL or not {pg_type}: encode NULLs as sentinels")
        values = rows[f"val{index}"].astype(TYPES[pg_type].replace(">", "="))
        if pg_type == "timestamptz":
            values = values + PG_EPOCH_US
        arrays.append(values)
    return arrays


# A big table read in two halves at once (`copy_out_split`) from this size (32 MB): a smaller one is read
# in a fraction of a second, not worth a second connection.
SPLIT_MIN_BLOCKS = 4096
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+-[0-9]+")


def copy_out_split(
    table: str, columns: str, where: str, params: tuple | list | None, types: list[str],
    *, min_blocks: int = SPLIT_MIN_BLOCKS,
) -> list[np.ndarray]:  # fmt: skip
    """`copy_out_arrays(f"SELECT {columns} FROM {table} WHERE {where}", params, types)`, read by two
    PostgreSQL backends at once: the first half of the table's blocks on this connection, the second
    on a connection of a worker thread, in the same tenant and in one snapshot.

    A COPY out is the backend's work (reading the blocks, filtering, computing the columns, encoding
    them) far more than this process's: one backend keeps one core busy, and on two cores the other
    is idle meanwhile. Each half is a TID range scan (PostgreSQL 14+), reading only its own blocks.
    Both run in REPEATABLE READ on the snapshot this connection exports, so together they are what
    one COPY would have read: a row committed meanwhile is in neither half.

    The rows come in no particular order (as from any sequential scan). Inside a transaction (the
    snapshot must be the first thing a transaction takes) or for a table under `min_blocks` it is
    one COPY on this connection."""
    single = f"SELECT {columns} FROM {table} WHERE {where}"
    if connection.in_atomic_block:
        return copy_out_arrays(single, params, types)
    with transaction.atomic():
        snapshot, blocks = _share_snapshot(table)
        if blocks < max(min_blocks, 2):
            return copy_out_arrays(single, params, types)
        cut = f"'({blocks // 2},0)'::tid"
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="copy-split") as pool:
            theirs = pool.submit(
                _copy_out_in_snapshot, connection.schema_name, snapshot,
                f"{single} AND ctid >= {cut}", params, types,
            )  # fmt: skip
            try:
                mine = copy_out_arrays(f"{single} AND ctid < {cut}", params, types)
            finally:
                wait([theirs])  # the snapshot lives as long as this transaction
            other = theirs.result()
    return [np.concatenate([first, second]) for first, second in zip(mine, other, strict=True)]


def _share_snapshot(table: str) -> tuple[str, int]:
    """Make this (new) transaction a read-only REPEATABLE READ one and export its snapshot; with the
    table's size in blocks, taken in that snapshot (a row it can see is in a block that existed)."""
    with connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute(
            "SELECT pg_export_snapshot(), "
            "pg_relation_size(%s::regclass) / current_setting('block_size')::int8",
            [table],
        )
        snapshot, blocks = cursor.fetchone()
    return snapshot, int(blocks)


def _copy_out_in_snapshot(
    schema_name: str, snapshot: str, sql: str, params: tuple | list | None, types: list[str]
) -> list[np.ndarray]:
    """`copy_out_arrays` on this thread's own connection, in `schema_name`, in the exported `snapshot`."""
    from django_tenants.utils import schema_context

    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"not a snapshot identifier: {snapshot!r}")
    try:
        with schema_context(schema_name), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            return copy_out_arrays(sql, params, types)
    finally:
        connection.close()  # this thread's connection: the thread ends here


def _read_copy_out(pgconn, buffer: bytearray):
    """Read a whole COPY TO STDOUT into `buffer`, then its final result (a psycopg generator, run
    with `connection.wait`). psycopg's own `Copy` iteration goes through its wait loop once per row
    (every row is a message): at 1,000,000s of rows that loop, not the data, was most of the time
    (3,000,000 rows of three columns: 20 s against 5 s here). libpq's non-blocking PQgetCopyData
    hands over the rows it has already received; the wait loop runs only when it has none."""
    while True:
        nbytes, data = pgconn.get_copy_data(1)
        if nbytes > 0:
            buffer += data
        elif nbytes == 0:
            while not (yield Wait.R):
                continue
            pgconn.consume_input()
        else:
            break
    results = yield from generators.fetch_many(pgconn)
    if len(results) != 1 or results[0].status != ExecStatus.COMMAND_OK:
        raise pg_errors.error_from_result(results[-1], encoding=pgconn._encoding)


def copy_in_arrays(table: str, columns: list[tuple[str, str, np.ndarray]]) -> int:
    """COPY equally long arrays into `table` with the binary format.

    `columns` is [(column name, pg type, values)]; timestamptz values are int64 microseconds since
    the Unix epoch. Returns the number of rows written. (`copy_in_columns` without NULLs, money or
    texts: every row has the one shape.)
    """
    return copy_in_columns(table, [Column(name, pg_type, values) for name, pg_type, values in columns])


# --------------------------------------------------------------------------------------------------
# Rows of varying width: NULLs, money as numeric and short texts
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """One column for `copy_in_columns`.

    `pg_type` is one of `TYPES`, "cents" (int64 whole cents -> numeric with two decimals) or "text"
    (`values` are int codes into `choices`, a few short strings). `nulls` marks the rows written as
    NULL (their `values` are ignored)."""

    name: str
    pg_type: str
    values: np.ndarray
    nulls: np.ndarray | None = None
    choices: tuple[str, ...] = ()


# numeric's binary form (numeric_send): ndigits, weight, sign, dscale, then base-10000 digits, most
# significant first. Money is written with four digits and weight 2 (up to 10**12 - 1 units and the
# cents); numeric_recv strips the leading zero digits.
NUMERIC_DIGITS = 4
NUMERIC_NEG = 0x4000
MAX_CENTS = 10**14 - 1


def _field_dtype(column: Column, code: int) -> list[tuple[str, str]]:
    if column.pg_type == "cents":
        return [("ndigits", ">i2"), ("weight", ">i2"), ("sign", ">i2"), ("dscale", ">i2")] + [
            (f"d{i}", ">i2") for i in range(NUMERIC_DIGITS)
        ]
    if column.pg_type == "text":
        return [("text", f"S{len(column.choices[code].encode())}")] if column.choices[code] else []
    return [("value", TYPES[column.pg_type])]


def _cents_digits(cents: np.ndarray) -> dict[str, np.ndarray]:
    magnitude = np.abs(cents)
    units, fraction = np.divmod(magnitude, 100)
    return {
        "ndigits": NUMERIC_DIGITS,
        "weight": NUMERIC_DIGITS - 2,
        "sign": np.where(cents < 0, NUMERIC_NEG, 0),
        "dscale": 2,
        "d0": units // 10**8,
        "d1": units // 10**4 % 10**4,
        "d2": units % 10**4,
        "d3": fraction * 100,
    }


def _shape_span(column: Column) -> int:
    """How many shapes a column's field takes: its texts, and NULL when it may be NULL."""
    return (len(column.choices) if column.pg_type == "text" else 1) + (column.nulls is not None)


def _shape_digits(column: Column) -> np.ndarray:
    """Each row's shape of the column's field: 0 for NULL (when it may be NULL), then the text's code."""
    length = len(column.values)
    digits = (
        np.asarray(column.values, dtype=np.int64) if column.pg_type == "text" else np.zeros(length, np.int64)
    )
    if column.nulls is not None:
        digits = np.where(column.nulls, 0, digits + 1)
    return digits


def _check(column: Column, length: int) -> None:
    if len(column.values) != length or (column.nulls is not None and len(column.nulls) != length):
        raise ValueError("all columns must have the same length")
    if column.pg_type not in TYPES and column.pg_type not in ("cents", "text"):
        raise ValueError(f"unsupported binary COPY type {column.pg_type!r}")
    live = np.ones(length, dtype=bool) if column.nulls is None else ~np.asarray(column.nulls, dtype=bool)
    values = np.asarray(column.values)[live]
    if column.pg_type == "text" and len(values) and (values.min() < 0 or values.max() >= len(column.choices)):
        raise ValueError(f"{column.name}: a code outside its choices")
    if column.pg_type == "cents" and (np.abs(values.astype(np.int64)) > MAX_CENTS).any():
        raise ValueError(f"{column.name}: an amount beyond {MAX_CENTS} cents")


def copy_in_columns(table: str, columns: list[Column]) -> int:
    """COPY equally long columns into `table` with the binary format, NULLs, money and texts
    included: the rows are grouped by their shape (which fields are NULL, which text each holds),
    each group being fixed-width, so a group is one structured numpy array (the row order within the
    table does not matter to a heap). Returns the rows written."""
    if not columns:
        return 0
    length = len(columns[0].values)
    if length == 0:
        return 0
    # The shape of each row, as one integer: a digit per column (NULL or not, which text).
    shape = np.zeros(length, dtype=np.int64)
    base = 1
    for column in columns:
        _check(column, length)
        shape += _shape_digits(column) * base
        base *= _shape_span(column)
        if base >= 2**62:
            raise ValueError("too many nullable or text columns to group the rows")
    names = ", ".join(c.name for c in columns)
    kinds, of_row = np.unique(shape, return_inverse=True)
    by_kind = np.argsort(of_row, kind="stable")  # the rows of each shape, together
    counts = np.bincount(of_row, minlength=len(kinds))
    ends = np.cumsum(counts)
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT binary)") as copy,
    ):
        copy.write(HEADER)
        for kind_index, kind in enumerate(kinds):
            rows_of_kind = by_kind[ends[kind_index] - counts[kind_index] : ends[kind_index]]
            fields: list[tuple[str, object]] = [("count", ">i2")]
            plan = []
            rest = int(kind)
            for index, column in enumerate(columns):
                digit, rest = rest % _shape_span(column), rest // _shape_span(column)
                code = digit - (column.nulls is not None) if column.pg_type == "text" else 0
                fields.append((f"len{index}", ">i4"))
                if column.nulls is not None and digit == 0:
                    plan.append((index, column, None, -1))
                    continue
                sub = _field_dtype(column, code)
                if sub:
                    fields.append((f"val{index}", sub))
                plan.append((index, column, code, np.dtype(sub).itemsize if sub else 0))
            rows = np.empty(len(rows_of_kind), dtype=np.dtype(fields))
            rows["count"] = len(columns)
            for index, column, code, width in plan:
                rows[f"len{index}"] = width
                if code is None or width == 0:
                    continue
                target = rows[f"val{index}"]
                if column.pg_type == "cents":
                    for part, value in _cents_digits(
                        np.asarray(column.values, dtype=np.int64)[rows_of_kind]
                    ).items():
                        target[part] = value
                elif column.pg_type == "text":
                    target["text"] = column.choices[code].encode()
                else:
                    values = np.asarray(column.values)[rows_of_kind]
                    if column.pg_type == "timestamptz":
                        values = values.astype(np.int64) - PG_EPOCH_US
                    target["value"] = values
            copy.write(rows.tobytes())
        copy.write(TRAILER)
    return length
