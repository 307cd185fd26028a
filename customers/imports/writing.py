"""Write an import plan in bulk: COPY into temporary staging tables, then set-based SQL.

No save() per row. New rows get their ids from the table's sequence up front (one statement), so
orders can point at customers created in the same import; changed rows are written with one
UPDATE ... FROM whose CASE touches only the columns that differ. Run inside the caller's transaction:
the staging tables are dropped at commit, and a failure leaves nothing behind.
"""

import json
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Model
from psycopg.types.json import Jsonb

from crm.audit.models import AuditEvent
from crm.overlap import Overlap
from customers.models import Customer, Order, OrderLine, Tag
from customers.search import build_search_text
from customers.search_index import SEARCH_COLUMNS, array_literal, search_columns

from .planning import ImportPlan, NewCustomer

Progress = Callable[[int, str], None]


def _no_progress(percent: int, message: str = "") -> None:
    return None


@contextmanager
def _timed(timings: dict[str, float], key: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - started


def _columns(model: type[Model], *, with_id: bool = True) -> list[tuple[str, Any]]:
    """(column, field) for every concrete column of the model."""
    return [(f.column, f) for f in model._meta.concrete_fields if with_id or not f.primary_key]


def _default(field, now: datetime) -> Any:
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return now
    # The model default, or "" for a text column without one (what Django itself would insert).
    return field.get_default()


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_escape(text: str) -> str:
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_ESCAPES)
    return text


def _array_literal(values: list) -> str:
    items = ('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(items) + "}"


def copy_text(value: Any) -> str:
    """A value in PostgreSQL's COPY text format (what the column's input function reads)."""
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, str):
        return _copy_escape(value)
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):  # jsonb
        return _copy_escape(json.dumps(value, ensure_ascii=False))
    if isinstance(value, list | tuple):  # text[]
        return _copy_escape(_array_literal(list(value)))
    return _copy_escape(str(value))


def _staging_table(cursor, name: str, source_table: str, columns: Sequence[str], extra: str = "") -> None:
    cursor.execute(f'DROP TABLE IF EXISTS "{name}"')
    cursor.execute(
        f'CREATE TEMPORARY TABLE "{name}" ON COMMIT DROP AS SELECT {", ".join(columns)} '  # noqa: S608
        f"FROM {source_table} WITH NO DATA"
    )
    if extra:
        cursor.execute(f'ALTER TABLE "{name}" {extra}')


_NEEDS_ESCAPE = ("\\", "\t", "\n", "\r")


def encode_column(values: Sequence[Any]) -> Sequence[str]:
    """One column of COPY text values, encoded a column at a time: a column of plain strings is
    checked for characters to escape in one scan of the joined column (not one call per value), and
    a column of integers, of NULLs, of dates (or NULLs) or of JSON objects (mostly empty: custom
    fields) takes a short path; anything else goes through copy_text, which gives the same text."""
    kinds = set(map(type, values))
    if kinds <= {str}:
        joined = "\x00".join(values)
        if any(c in joined for c in _NEEDS_ESCAPE):
            return [_copy_escape(v) for v in values]
        return values
    if kinds <= {int}:
        return list(map(str, values))
    if kinds <= {type(None)}:
        return ["\\N"] * len(values)
    if kinds <= {date, type(None)}:
        return ["\\N" if v is None else v.isoformat() for v in values]
    if kinds <= {dict}:
        return ["{}" if not v else copy_text(v) for v in values]
    return [copy_text(v) for v in values]


def encode_rows(rows: Iterable[Sequence[Any]]) -> Iterable[str]:
    """Rows as COPY text lines (no line end), encoded column by column (see encode_column)."""
    columns = [encode_column(column) for column in zip(*rows, strict=True)]
    return map("\t".join, zip(*columns, strict=True))


def copy_rows(
    cursor, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, block: int = 5000
) -> int:
    """COPY rows into `table` (text format, encoded here a column at a time: several times faster
    than psycopg's write_row, and than encoding value by value)."""
    return copy_lines(cursor, table, columns, encode_rows(rows), block=block)


def copy_lines(cursor, table: str, columns: Sequence[str], lines: Iterable[str], *, block: int = 5000) -> int:
    """COPY already encoded lines (tab-separated COPY text, no line end) into `table`."""
    count = 0
    with cursor.copy(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN') as copy:
        buffer: list[str] = []
        for line in lines:
            buffer.append(line)
            count += 1
            if len(buffer) >= block:
                copy.write("\n".join(buffer) + "\n")
                buffer = []
        if buffer:
            copy.write("\n".join(buffer) + "\n")
    return count


def _allocate_ids(cursor, table: str, count: int) -> list[int]:
    if not count:
        return []
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count]
    )
    return [row[0] for row in cursor.fetchall()]


def _insert_new(
    cursor,
    model: type[Model],
    stage: str,
    rows: list[dict[str, Any]],
    now: datetime,
) -> None:
    """COPY the columns the rows set into a staging table, then INSERT ... SELECT them with every other
    column at its model default (sent once as a parameter, not once per row)."""
    insert = _InsertFromStage(model, stage, {key for row in rows for key in row}, now)
    values = [[row.get(c, insert.defaults[c]) for c in insert.varying] for row in rows]
    _staging_table(cursor, stage, model._meta.db_table, insert.varying)
    copy_rows(cursor, stage, insert.varying, values)
    cursor.execute(insert.sql, insert.params)


class _InsertFromStage:
    """`INSERT INTO <model's table> SELECT ... FROM <stage>`: the columns the rows give (`varying`,
    staged) and every other column at its model default, sent once as a parameter. An id not given
    is left to the table's identity default."""

    def __init__(self, model: type[Model], stage: str, given: set[str], now: datetime):
        columns = [(c, f) for c, f in _columns(model) if not f.primary_key or c in given]
        self.varying = [c for c, _f in columns if c in given]
        constant = [(c, f) for c, f in columns if c not in given]
        self.defaults = {c: _default(f, now) for c, f in columns}
        select = self.varying + [f"CAST(%s AS {f.db_type(connection)})" for _c, f in constant]
        self.sql = (
            f"INSERT INTO {model._meta.db_table} ({', '.join(self.varying + [c for c, _f in constant])}) "  # noqa: S608
            f'SELECT {", ".join(select)} FROM "{stage}"'
        )
        self.params = [_param(self.defaults[c]) for c, _f in constant]


# New customers are written in chunks of this many rows: the next chunk's search text and COPY text
# are made here while PostgreSQL inserts the last one (crm.overlap).
NEW_CUSTOMERS_CHUNK = 20_000
_NEW_CUSTOMERS_CHUNK_STAGE = "_import_new_customers_chunk"


def _write_new_customers(
    plan: ImportPlan, *, actor, job_id: int | None, now: datetime, timings: dict[str, float]
) -> "NewCustomerWriter":
    """Insert the plan's new customers (all of them planned first: an order list, whose orders point
    at them). See NewCustomerWriter."""
    given = set()
    for new in plan.new_customers:
        given.update(new.fields)
    with NewCustomerWriter(given=given, actor=actor, job_id=job_id, now=now, timings=timings) as writer:
        writer.add(plan.new_customers)
    return writer


class NewCustomerWriter:
    """Inserts new customers chunk by chunk, with their search text
    (`customers.search.build_search_text`, pinyin included: the costly part of a row, some 80 us for
    a name not seen before).

    The caller's thread builds a chunk's rows and COPY text while a thread on the same connection and
    transaction (crm.overlap) gives the chunk before its ids (from the table's sequence, in file
    order), COPYs it into a staging table and inserts it with one INSERT ... SELECT, where PostgreSQL
    keeps the customer table's indexes (most of an import's time). At most two chunks wait for the
    thread. The connection belongs to the thread until the block ends (crm.overlap.ConnectionLent).
    A customer's `id` is set when its chunk has been written, at the latest when the block ends.

    With a chunk's customers the thread writes their audit rows ("customer.imported", the job and
    the file row: the values are on the record itself) from the same staging table, and their tag
    links (creating the tags the tenant does not have yet). It then runs the chunk's deferred
    foreign-key checks, while its rows are still in PostgreSQL's buffers.

        with NewCustomerWriter(given=columns, actor=..., job_id=..., now=..., timings=...) as writer:
            for chunk in ...:
                writer.add(new_customers_of_the_chunk)

    `given`: every column a new customer's `fields` may set (a column no customer sets is written
    with its default, as a column not given is).
    """

    def __init__(
        self, *, given: set[str], actor, job_id: int | None, now: datetime, timings: dict[str, float]
    ):
        insert = _InsertFromStage(
            Customer,
            _NEW_CUSTOMERS_CHUNK_STAGE,
            {*given, "id", "custom_fields", "created_by_id", "search_text", *SEARCH_COLUMNS},
            now,
        )
        self.insert = insert
        self.given = frozenset(given)
        self.built = [c for c in insert.varying if c != "id"]  # the id is the thread's to give
        self.defaults = insert.defaults
        self.actor_id = _actor_id(actor)
        self.audit = _audit_of_new_customers(_NEW_CUSTOMERS_CHUNK_STAGE, actor=actor, job_id=job_id, now=now)
        self.timings = timings
        self.count = 0
        self.audited = 0  # audit rows written
        self._tag_ids: dict[str, int] = {}  # lower-cased name -> id (the thread's)
        self._waiting: list = []
        with connection.cursor() as cursor:
            stage = _NEW_CUSTOMERS_CHUNK_STAGE
            _staging_table(cursor, stage, Customer._meta.db_table, insert.varying, "ADD COLUMN _row integer")

    def __enter__(self) -> "NewCustomerWriter":
        self.side = Overlap()
        self.side.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            with _timed(self.timings, "customers_new_wait"):
                self.side.__exit__(exc_type, exc, tb)
        finally:
            self.timings["customers_new_insert"] = self.timings.get(
                "customers_new_insert", 0.0
            ) + self.side.seconds.get("_write_chunk", 0.0)

    def add(self, customers: Sequence[NewCustomer]) -> None:
        """Queue these customers (in file order, after the ones added before)."""
        for start in range(0, len(customers), NEW_CUSTOMERS_CHUNK):
            chunk = customers[start : start + NEW_CUSTOMERS_CHUNK]
            with _timed(self.timings, "customers_new_copy"):
                lines = list(encode_rows(self._rows(chunk)))
            with _timed(self.timings, "customers_new_wait"):
                if len(self._waiting) == 2:
                    self._waiting.pop(0).result()
            self._waiting.append(self.side.run(self._write_chunk, chunk, lines))
            self.count += len(chunk)

    def _rows(self, chunk: Sequence[NewCustomer]) -> Iterable[list[Any]]:
        built, defaults, actor_id, given = self.built, self.defaults, self.actor_id, self.given
        for new in chunk:
            fields = new.fields
            if not fields.keys() <= given:  # a value no column was staged for would be lost
                raise ValueError(f"new customer of row {new.row} sets {sorted(fields.keys() - given)}")
            name = fields.get("name", "")
            text = build_search_text(
                name=name,
                email=fields.get("email", ""),
                phone=fields.get("phone", ""),
                external_id=fields.get("external_id", ""),
            )
            row = {
                **fields,
                "custom_fields": new.custom,
                "created_by_id": actor_id,
                "search_text": text,
                **{column: array_literal(items) for column, items in search_columns(text, name).items()},
            }
            yield [*(row.get(c, defaults[c]) for c in built), new.row]

    def _write_chunk(self, chunk: Sequence[NewCustomer], lines: list[str]) -> None:  # in the thread
        stage = _NEW_CUSTOMERS_CHUNK_STAGE
        with connection.cursor() as cursor:
            ids = _allocate_ids(cursor, Customer._meta.db_table, len(chunk))
            copy_lines(
                cursor,
                stage,
                ["id", *self.built, "_row"],
                (f"{pk}\t{line}" for pk, line in zip(ids, lines, strict=True)),
            )
            cursor.execute(self.insert.sql, self.insert.params)
            cursor.execute(*self.audit)
            self.audited += cursor.rowcount
            cursor.execute(f'TRUNCATE "{stage}"')
            for new, pk in zip(chunk, ids, strict=True):
                new.id = pk
            names = {t for new in chunk for t in new.tags if t.lower() not in self._tag_ids}
            if names:
                self._tag_ids.update(_ensure_tags(cursor, names))
            _insert_tag_links(cursor, [(new.id, self._tag_ids[t.lower()]) for new in chunk for t in new.tags])
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def _param(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict | list) else value


def _update_changed(
    cursor,
    model: type[Model],
    stage: str,
    changes: list[tuple[int, dict[str, Any]]],
    now: datetime,
    *,
    json_merge: Sequence[str] = (),
    keep_when_null: Sequence[str] = (),
) -> None:
    """UPDATE only the columns each row changes: CASE WHEN '<column>' = ANY(changed) THEN new ELSE old.

    `json_merge` columns are merged (old || new) instead of replaced; `keep_when_null` columns keep
    their value when the staged value is NULL.
    """
    table = model._meta.db_table
    used = sorted({column for _pk, values in changes for column in values})
    names = ["id", *used]
    _staging_table(cursor, stage, table, names, "ADD COLUMN _changed text[]")
    copy_rows(
        cursor,
        stage,
        [*names, "_changed"],
        ([pk, *[values.get(c) for c in used], list(values)] for pk, values in changes),
    )
    assignments = []
    for column in used:
        if column in json_merge:
            new = f"COALESCE(t.{column}, '{{}}'::jsonb) || s.{column}"
        elif column in keep_when_null:
            new = f"COALESCE(s.{column}, t.{column})"
        else:
            new = f"s.{column}"
        assignments.append(
            f"{column} = CASE WHEN '{column}' = ANY(s._changed) THEN {new} ELSE t.{column} END"
        )
    assignments.append("updated_at = %s")
    cursor.execute(
        f'UPDATE {table} AS t SET {", ".join(assignments)} FROM "{stage}" AS s WHERE t.id = s.id',  # noqa: S608
        [now],
    )


def _ensure_tags(cursor, names: set[str]) -> dict[str, int]:
    """Lower-cased tag name -> id, creating the tags that do not exist (case-insensitively)."""
    if not names:
        return {}
    table = Tag._meta.db_table
    lowered = sorted({n.lower() for n in names})
    cursor.execute(
        f"SELECT id, name FROM {table} WHERE lower(name) = ANY(%s) AND deleted_at IS NULL ORDER BY id",  # noqa: S608
        [lowered],
    )
    ids: dict[str, int] = {}
    for pk, name in cursor.fetchall():
        ids.setdefault(name.lower(), pk)
    missing: dict[str, str] = {}
    for name in sorted(names):
        if name.lower() not in ids:
            missing.setdefault(name.lower(), name)
    if missing:
        color = Tag._meta.get_field("color").get_default()
        cursor.execute(
            f"INSERT INTO {table} (name, color, created_at) SELECT n, %s, now() FROM unnest(%s::text[]) AS n "  # noqa: S608
            "ON CONFLICT (lower(name)) WHERE deleted_at IS NULL DO NOTHING",
            [color, list(missing.values())],
        )
        cursor.execute(
            f"SELECT id, name FROM {table} WHERE lower(name) = ANY(%s) AND deleted_at IS NULL ORDER BY id",  # noqa: S608
            [list(missing)],
        )
        for pk, name in cursor.fetchall():
            ids.setdefault(name.lower(), pk)
    return ids


def _insert_tag_links(cursor, pairs: list[tuple[int, int]]) -> None:
    if not pairs:
        return
    through = Customer.tags.through._meta.db_table
    cursor.execute(
        f"INSERT INTO {through} (customer_id, tag_id) "  # noqa: S608
        "SELECT * FROM unnest(%s::bigint[], %s::bigint[]) ON CONFLICT DO NOTHING",
        [[c for c, _t in pairs], [t for _c, t in pairs]],
    )


def write_plan(
    plan: ImportPlan,
    *,
    actor,
    job_id: int | None,
    now: datetime,
    progress: Progress = _no_progress,
    timings: dict[str, float] | None = None,
    writer: "NewCustomerWriter | None" = None,
) -> dict[str, int]:
    """Write everything the plan says, in the caller's transaction. Returns what was written;
    `timings` (if given) receives the seconds each step took. `writer`: the NewCustomerWriter that
    has inserted the plan's new customers already (a customer list, written in chunks), with their
    audit rows and tag links."""
    timings = timings if timings is not None else {}
    written = {
        "customers_created": 0,
        "customers_updated": 0,
        "orders_created": 0,
        "orders_updated": 0,
        "lines_created": 0,
    }
    if writer is None and plan.new_customers:
        progress(5, "customers")
        with _timed(timings, "write_customers_new"):
            writer = _write_new_customers(plan, actor=actor, job_id=job_id, now=now, timings=timings)
    if writer is not None:
        written["customers_created"] = writer.count
        written["audit_events"] = writer.audited
    progress(35, "customers")
    with connection.cursor() as cursor:
        tag_ids = _ensure_tags(cursor, {t for c in plan.customer_changes for t in c.tags_add})

        if plan.customer_changes:
            changes = []
            for change in plan.customer_changes:
                values = dict(change.fields)
                if change.custom_patch:
                    values["custom_fields"] = change.custom_patch
                if change.search_text is not None:
                    values["search_text"] = change.search_text
                    values.update(change.search_columns)
                changes.append((change.id, values))
            with _timed(timings, "write_customers_changed"):
                _update_changed(
                    cursor, Customer, "_import_changed_customers", changes, now, json_merge=("custom_fields",)
                )
            written["customers_updated"] = len(changes)
        progress(50, "customers")

        links = [(c.id, tag_ids[t.lower()]) for c in plan.customer_changes for t in c.tags_add]
        with _timed(timings, "write_tags"):
            _insert_tag_links(cursor, links)

        line_rows: list[dict[str, Any]] = []
        if plan.new_orders:
            progress(55, "orders")
            ids = _allocate_ids(cursor, Order._meta.db_table, len(plan.new_orders))
            rows = []
            for order, pk in zip(plan.new_orders, ids, strict=True):
                order.existing_id = pk
                rows.append(
                    {**order.fields, "id": pk, "number": order.number, "customer_id": order.customer_id}
                )
                for line in order.lines or []:
                    line_rows.append({**line, "order_id": pk})
            _insert_new(cursor, Order, "_import_new_orders", rows, now)
            written["orders_created"] = len(rows)
        if plan.order_changes:
            changes = []
            for order in plan.order_changes:
                values = dict(order.fields)
                if "customer_id" in values:
                    values["customer_id"] = order.customer_id
                if values:
                    changes.append((order.existing_id, values))
            if changes:
                _update_changed(cursor, Order, "_import_changed_orders", changes, now)
            replaced = [o.existing_id for o in plan.order_changes if o.replace_lines]
            if replaced:
                cursor.execute(
                    f"DELETE FROM {OrderLine._meta.db_table} USING unnest(%s::bigint[]) AS ids(id) "
                    "WHERE order_id = ids.id",
                    [replaced],  # noqa: S608
                )
                # orders whose only change is their lines count as updated too
                cursor.execute(
                    f"UPDATE {Order._meta.db_table} AS o SET updated_at = %s "  # noqa: S608
                    "FROM unnest(%s::bigint[]) AS ids(id) WHERE o.id = ids.id",
                    [now, replaced],
                )
                for order in plan.order_changes:
                    for line in order.lines or []:
                        line_rows.append({**line, "order_id": order.existing_id})
            written["orders_updated"] = len(plan.order_changes)
        if line_rows:
            for line in line_rows:
                line.setdefault("product_name", line.get("sku", ""))
            _insert_new_lines(cursor, line_rows, now)
            written["lines_created"] = len(line_rows)
        progress(75, "orders")
    return written


def _insert_new_lines(cursor, rows: list[dict[str, Any]], now: datetime) -> None:
    _insert_new(cursor, OrderLine, "_import_new_lines", rows, now)


def _actor_id(actor) -> int | None:
    return actor.pk if actor is not None and getattr(actor, "pk", None) else None


def _audit_constants(actor, now: datetime) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """The audit table's columns and the values that are the same on every row of an import."""
    columns = _columns(AuditEvent, with_id=False)
    constant = {c: _default(f, now) for c, f in columns}
    constant.update(
        actor_id=_actor_id(actor),
        actor_label=actor.get_full_name() if _actor_id(actor) else "",
        target_type=Customer._meta.label_lower,
        created_at=now,
    )
    return columns, constant


def _audit_of_new_customers(stage: str, *, actor, job_id: int | None, now: datetime) -> tuple[str, list]:
    """(sql, params): one "customer.imported" audit row per customer of the staging table (id, name
    and file row are there already: nothing is encoded or sent per row), in id order. The values are
    on the record itself; the history says where they came from."""
    columns, constant = _audit_constants(actor, now)
    varying = {
        "action": "'customer.imported'",
        "target_id": "s.id::text",
        "target_label": "left(s.name, 300)",
        "changes": (
            "jsonb_build_object("
            "'import_job', jsonb_build_object('old', NULL::int, 'new', %s::bigint), "
            "'import_row', jsonb_build_object('old', NULL::int, 'new', s._row))"
        ),
    }
    select, params = [], []
    for column, field in columns:
        if column in varying:
            select.append(varying[column])
            if column == "changes":
                params.append(job_id)
        else:
            select.append(f"CAST(%s AS {field.db_type(connection)})")
            params.append(_param(constant[column]))
    sql = (
        f"INSERT INTO {AuditEvent._meta.db_table} ({', '.join(c for c, _f in columns)}) "  # noqa: S608
        f'SELECT {", ".join(select)} FROM "{stage}" AS s ORDER BY s.id'
    )
    return sql, params


def audit_plan(plan: ImportPlan, *, actor, job_id: int | None, now: datetime) -> int:
    """One audit row per changed customer, with its own diff (the same rows audit_record writes), in
    one COPY; the columns that are the same on every row are sent once. (A created customer's row is
    written with it, by NewCustomerWriter.) Django's bulk_create took about 40 s for 100,000 rows
    here: psycopg escapes every JSON value for the UNNEST insert."""
    columns, constant = _audit_constants(actor, now)
    names = [c for c, _f in columns]
    written = 0
    with connection.cursor() as cursor:
        if plan.customer_changes:
            template = [copy_text(constant[c]) for c in names]
            at_action, at_id, at_label, at_changes = (
                names.index(c) for c in ("action", "target_id", "target_label", "changes")
            )

            def lines():
                row = list(template)
                row[at_action] = "customer.updated_by_import"
                for change in plan.customer_changes:
                    row[at_id] = str(change.id)
                    row[at_label] = _copy_escape(change.label[:300])
                    row[at_changes] = copy_text({**change.diff, "import_job": {"old": None, "new": job_id}})
                    yield "\t".join(row)

            written += copy_lines(cursor, AuditEvent._meta.db_table, names, lines())
    return written


def _json_value(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
