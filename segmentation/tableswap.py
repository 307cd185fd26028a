"""Replace every row of a table by building a fresh copy and swapping it in, in one transaction.

Rewriting all rows of a table with an UPDATE costs a new row version plus an entry in every index
per row, and leaves as many dead versions for VACUUM. When a job recomputes the whole table anyway
(the nightly scores), it is several times cheaper to fill an empty copy without indexes, build the
indexes once over the finished data, and swap the copy in:

    with transaction.atomic():
        swap = TableSwap("segmentation_customerscore")
        swap.create()                       # empty copy: columns, defaults, NOT NULL and CHECKs
        cursor.execute(f"INSERT INTO {swap.next_table} ... ")
        swap.build()                        # keys and indexes (optional: commit_swap builds them too)
        swap.commit_swap()                  # lock, foreign keys, drop the old one and rename

Everything the catalogue holds for the table is rebuilt with the same names: indexes (from
`pg_get_indexdef`), primary/unique keys and foreign keys (from `pg_get_constraintdef`), so Django's
migrations find the names they expect. Tables that other tables reference with a foreign key are
refused (dropping the old table would drop those keys). Grants are not copied: the application's
database user owns its tables.

Locks. Building the copy locks nothing that users wait for. The swap needs ACCESS EXCLUSIVE on the
old table and (to add the copy's foreign keys and drop the old table's) on the tables it references,
held until the caller commits, so the swap should be the caller's last statement. It asks for them in
short attempts (at most `ATTEMPT_MS`, and under a quarter of the server's deadlock_timeout), retried
until `lock_timeout_ms`: readers queue behind an attempt for no longer than that, and an attempt
gives up before any deadlock with a reader could be detected, so no user's query is ever cancelled
for it. When no attempt succeeds in time it raises `SwapLockTimeout` (nothing changed) and the
caller falls back to updating the rows in place.

Rows whose referenced row was deleted while the copy was being built are removed (under the locks)
when adding a foreign key finds them, and the key added again, so the swap never fails on a race with
a delete.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from django.db import IntegrityError, OperationalError, connection, transaction

NEXT_SUFFIX = "__next"
ATTEMPT_MS = 200  # longest wait for the locks in one attempt (and never over deadlock_timeout / 4)
LOCK_RETRY_SECONDS = 0.02
INDEX_DEF = re.compile(
    r"^CREATE (?P<unique>UNIQUE )?INDEX (?P<name>\S+) ON (?:ONLY )?(?P<table>\S+) (?P<rest>USING .+)$"
)


class SwapLockTimeout(Exception):
    """The swap's locks could not be had within the lock timeout; nothing was changed."""


@dataclass(frozen=True)
class _Index:
    name: str
    definition: str  # "UNIQUE " or "", then "USING btree (...)"


@dataclass(frozen=True)
class _Constraint:
    name: str
    kind: str  # p, u, f, x
    definition: str
    referenced: str | None  # the referenced table of a foreign key


def _milliseconds(setting: str) -> int:
    """A PostgreSQL time setting as shown ("1s", "200ms", "1min", "0") in milliseconds."""
    match = re.fullmatch(r"\s*(\d+)\s*(ms|s|min|h|d)?\s*", setting)
    if match is None:
        return 1000
    factor = {"ms": 1, None: 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}[match[2]]
    return int(match[1]) * factor


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _temporary_name(name: str) -> str:
    return f"nx_{name}"[:63]


class TableSwap:
    """Build `<table>__next` and swap it in place of `<table>` (see the module docstring)."""

    def __init__(self, table: str, *, lock_timeout_ms: int = 3000):
        self.table = table
        self.next_table = f"{table}{NEXT_SUFFIX}"
        self.lock_timeout_ms = int(lock_timeout_ms)
        self._built: tuple[list[_Constraint], list[_Constraint], list[_Index]] | None = None

    # ---- catalogue -------------------------------------------------------------------------------
    def _indexes(self, cursor) -> list[_Index]:
        """Indexes that do not back a constraint (those come back with their constraint)."""
        cursor.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid "
            "AND k.conrelid = i.indrelid) ORDER BY c.relname",
            [self.table],
        )
        indexes = []
        for name, definition in cursor.fetchall():
            match = INDEX_DEF.match(definition)
            if match is None:
                raise ValueError(f"cannot rebuild index {name}: {definition}")
            indexes.append(_Index(name, f"{match['unique'] or ''}INDEX %s ON %s {match['rest']}"))
        return indexes

    def _constraints(self, cursor) -> list[_Constraint]:
        """Keys to rebuild: primary, unique, exclusion and foreign keys (LIKE copies the CHECKs)."""
        cursor.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid), "
            "CASE WHEN contype = 'f' THEN confrelid::regclass::text END "
            "FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'x', 'f') "
            "ORDER BY contype = 'f', conname",
            [self.table],
        )
        return [_Constraint(*row) for row in cursor.fetchall()]

    def _check_unreferenced(self, cursor) -> None:
        cursor.execute(
            "SELECT conname, conrelid::regclass::text FROM pg_constraint "
            "WHERE confrelid = %s::regclass AND contype = 'f'",
            [self.table],
        )
        referencing = cursor.fetchall()
        if referencing:
            names = ", ".join(f"{table}.{name}" for name, table in referencing)
            raise ValueError(f"{self.table} is referenced by foreign keys ({names}): cannot swap it")

    def _check_no_sequences(self, cursor) -> None:
        """A serial or identity column's sequence belongs to the old table and would go with it."""
        cursor.execute(
            "SELECT a.attname FROM pg_attribute a LEFT JOIN pg_attrdef d "
            "ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE a.attrelid = %s::regclass "
            "AND a.attnum > 0 AND NOT a.attisdropped "
            "AND (a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%%')",
            [self.table],
        )
        columns = [name for (name,) in cursor.fetchall()]
        if columns:
            names = ", ".join(columns)
            raise ValueError(f"{self.table} has sequence-backed columns ({names}): cannot swap it")

    # ---- steps -----------------------------------------------------------------------------------
    def create(self) -> None:
        """Create the empty copy (columns, defaults, NOT NULL, CHECK constraints, storage)."""
        self._built = None
        with connection.cursor() as cursor:
            self._check_unreferenced(cursor)
            self._check_no_sequences(cursor)
            cursor.execute(f"DROP TABLE IF EXISTS {_quote(self.next_table)}")
            cursor.execute(
                f"CREATE TABLE {_quote(self.next_table)} (LIKE {_quote(self.table)} "
                "INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)"
            )

    def build(self) -> None:
        """The copy's primary and unique keys and its indexes, built once over the filled copy. They
        lock nothing other users wait for; `commit_swap` builds them if this was not called."""
        if not connection.in_atomic_block:
            raise RuntimeError("TableSwap.build must run inside transaction.atomic()")
        with connection.cursor() as cursor:
            indexes = self._indexes(cursor)
            constraints = self._constraints(cursor)
            keys = [c for c in constraints if c.kind != "f"]
            foreign = [c for c in constraints if c.kind == "f"]
            for constraint in keys:
                self._add_constraint(cursor, constraint)
            for index in indexes:
                cursor.execute(
                    "CREATE "
                    + index.definition % (_quote(_temporary_name(index.name)), _quote(self.next_table))
                )
        self._built = (keys, foreign, indexes)

    def commit_swap(self) -> None:
        """Replace the old table by the copy (building its keys and indexes first unless `build()`
        did): the locks, the foreign keys, the drop and the renames.

        Raises `SwapLockTimeout` when no attempt to take the locks succeeded within the timeout: the
        old table is then untouched and the filled copy is still there, for the caller to `discard()`
        before writing another way."""
        if not connection.in_atomic_block:
            raise RuntimeError("TableSwap.commit_swap must run inside transaction.atomic()")
        if self._built is None:
            self.build()
        keys, foreign, indexes = self._built
        with connection.cursor() as cursor:
            # Both locks in one request, each attempt waiting only briefly, retried until the timeout.
            # Readers take the two tables in either order (a list page joins scores to customers, a
            # score page customers to scores), so a swap that waited long while holding one lock could
            # deadlock with them and get a user's query cancelled; an attempt shorter than a quarter
            # of deadlock_timeout gives up long before anyone checks for a deadlock, and readers
            # queue behind it for no longer than that.
            referenced = sorted({c.referenced for c in foreign if c.referenced != self.table})
            tables = ", ".join([_quote(self.table), *referenced])
            cursor.execute("SELECT current_setting('lock_timeout'), current_setting('deadlock_timeout')")
            previous_timeout, deadlock_timeout = cursor.fetchone()
            attempt_ms = max(1, min(ATTEMPT_MS, _milliseconds(deadlock_timeout) // 4))
            deadline = time.monotonic() + self.lock_timeout_ms / 1000
            while True:
                try:
                    with transaction.atomic():  # a savepoint: a refused lock undoes this attempt only
                        cursor.execute(f"SET LOCAL lock_timeout = {attempt_ms}")
                        cursor.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
                        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous_timeout])
                        self._swap_locked(cursor, keys, foreign, indexes)
                    return
                except OperationalError as exc:
                    # lock_not_available, deadlock_detected
                    if getattr(exc.__cause__, "sqlstate", None) not in ("55P03", "40P01"):
                        raise
                    if time.monotonic() >= deadline:
                        raise SwapLockTimeout(str(exc)) from exc
                    time.sleep(LOCK_RETRY_SECONDS)

    def _swap_locked(self, cursor, keys, foreign, indexes) -> None:
        """With both tables locked: drop orphans, add the foreign keys, replace the table, rename."""
        for constraint in foreign:
            # Checking the key reads every row once (0.7 s at 1,000,000 rows), and so does looking
            # for orphans: look only when the check finds one (a row deleted meanwhile: rare).
            try:
                with transaction.atomic():
                    self._add_constraint(cursor, constraint)
            except IntegrityError:
                self._drop_orphans(cursor, constraint)
                self._add_constraint(cursor, constraint)
        cursor.execute(f"DROP TABLE {_quote(self.table)}")
        cursor.execute(f"ALTER TABLE {_quote(self.next_table)} RENAME TO {_quote(self.table)}")
        for constraint in keys + foreign:
            cursor.execute(
                f"ALTER TABLE {_quote(self.table)} RENAME CONSTRAINT "
                f"{_quote(_temporary_name(constraint.name))} TO {_quote(constraint.name)}"
            )
        for index in indexes:
            temporary = _quote(_temporary_name(index.name))
            cursor.execute(f"ALTER INDEX {temporary} RENAME TO {_quote(index.name)}")

    def _add_constraint(self, cursor, constraint: _Constraint) -> None:
        """The old table's constraint on the copy, under a temporary name (renamed after the swap)."""
        cursor.execute(
            f"ALTER TABLE {_quote(self.next_table)} ADD CONSTRAINT "
            f"{_quote(_temporary_name(constraint.name))} {constraint.definition}"
        )

    def _drop_orphans(self, cursor, constraint: _Constraint) -> None:
        """Delete the copy's rows whose referenced row is gone (deleted while the copy was built)."""
        match = re.match(
            r"^FOREIGN KEY \((?P<columns>[^)]+)\) REFERENCES (?P<table>[^(]+)\((?P<referenced>[^)]+)\)",
            constraint.definition,
        )
        if match is None:
            raise ValueError(f"cannot read foreign key {constraint.name}: {constraint.definition}")
        columns = [c.strip() for c in match["columns"].split(",")]
        referenced = [c.strip() for c in match["referenced"].split(",")]
        joined = " AND ".join(f"r.{ref} = n.{col}" for col, ref in zip(columns, referenced, strict=True))
        not_null = " AND ".join(f"n.{col} IS NOT NULL" for col in columns)
        cursor.execute(
            f"DELETE FROM {_quote(self.next_table)} n WHERE {not_null} "
            f"AND NOT EXISTS (SELECT 1 FROM {match['table'].strip()} r WHERE {joined})"
        )

    def discard(self) -> None:
        """Drop the copy (after `SwapLockTimeout`, before falling back to another way of writing)."""
        self._built = None
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {_quote(self.next_table)}")
