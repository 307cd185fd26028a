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

import numpy as np
from django.db import connection
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
    the Unix epoch. Returns the number of rows written.
    """
    if not columns:
        return 0
    length = len(columns[0][2])
    if any(len(values) != length for _name, _type, values in columns):
        raise ValueError("all columns must have the same length")
    if length == 0:
        return 0
    dtype = _row_dtype([pg_type for _name, pg_type, _values in columns])
    rows = np.empty(length, dtype=dtype)
    rows["count"] = len(columns)
    for index, (_name, pg_type, values) in enumerate(columns):
        rows[f"len{index}"] = np.dtype(TYPES[pg_type]).itemsize
        array = np.asarray(values)
        if pg_type == "timestamptz":
            array = array.astype(np.int64) - PG_EPOCH_US
        rows[f"val{index}"] = array
    names = ", ".join(name for name, _type, _values in columns)
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT binary)") as copy,
    ):
        copy.write(HEADER)
        copy.write(rows.tobytes())
        copy.write(TRAILER)
    return length
