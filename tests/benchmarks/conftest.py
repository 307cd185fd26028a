"""Shared helpers for the benchmarks in this folder (run with `make bench`, not the ordinary test run).

Every benchmark records its figures with `record_benchmark(name, **figures)`, which appends
`{"name": name, **figures, "at": <ISO time, UTC>}` to `bench-results.json` at the repository root.
Benchmarks may run in parallel processes (xdist) or one after another, so the list is read and
rewritten under an exclusive file lock and replaced atomically (write a temporary file, then rename).

`scale_tenant` (session): the committed tenant the page benchmarks share, seeded once per run by
`seed_demo` at `scale.size("BENCH_CUSTOMERS", 100_000)` customers (1,000,000 with BENCH_SCALE=1m);
BENCH_KEEP=1 keeps it for the next run (with --reuse-db), so measurements can be repeated without
seeding again.
"""

import fcntl
import hashlib
import io
import json
import os
import re
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from . import scale

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
BENCH_RESULTS = REPO_ROOT / "bench-results.json"


def _read_results(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return data if isinstance(data, list) else []


def append_benchmark_result(name: str, path: Path = BENCH_RESULTS, **figures: Any) -> dict[str, Any]:
    """Append one result to the JSON list at `path` atomically and return the stored entry."""
    entry = {"name": name, **figures, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    # The lock file lives in the temp folder so the repository root only ever holds the JSON itself.
    lock_path = (
        Path(tempfile.gettempdir())
        / f"bench-results-{hashlib.sha1(str(path).encode()).hexdigest()[:12]}.lock"
    )
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            results = _read_results(path)
            results.append(entry)
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as tmp:
                    json.dump(results, tmp, indent=2, ensure_ascii=False, default=str)
                    tmp.write("\n")
                os.replace(tmp_name, path)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return entry


def record_benchmark(name: str, **figures: Any) -> dict[str, Any]:
    """Record a benchmark's figures in bench-results.json (see the module docstring)."""
    return append_benchmark_result(name, **figures)


@pytest.fixture(scope="session", name="record_benchmark")
def record_benchmark_fixture() -> Callable[..., dict[str, Any]]:
    """The `record_benchmark(name, **figures)` helper as a fixture."""
    return record_benchmark


CHANNELS = ["phone", "email", "sms", "wechat", "chat", "social", "meeting", "store_visit", "other"]


def add_members() -> int:
    """Enrol every buyer who is not a member yet, as auto-enrolment would have (from their first
    purchase, with a points balance about their net spend less what was redeemed or expired)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO loyalty_member
                (customer_id, number, status, joined_at, balance, created_at, updated_at)
            SELECT c.id, 'B' || c.id, 'active', c.first_order_at,
                   greatest(0, floor(c.total_spent * (0.2 + (c.id % 7) / 10.0)))::int, now(), now()
            FROM customers_customer AS c
            WHERE c.first_order_at IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM loyalty_member AS m WHERE m.customer_id = c.id)
            """
        )
        added = cursor.rowcount
        cursor.execute("ANALYZE loyalty_member")
    return added


def top_up_interactions(total: int) -> int:
    """Add interactions until there are `total`: spread over the customers and two years, each by its
    customer's owner. In one INSERT ... SELECT; from a million rows on, with the table's indexes and
    foreign keys rebuilt once afterwards (customers.demo.bulk_load_mode) instead of row by row."""
    from django.db import transaction

    from customers.demo import bulk_load_mode
    from interactions.models import Interaction

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM interactions_interaction")
        missing = total - cursor.fetchone()[0]
    if missing <= 0:
        return 0
    with (
        transaction.atomic(),
        bulk_load_mode([Interaction], enabled=missing >= 1_000_000),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            """
            WITH c AS (
                     SELECT id, owner_id, row_number() OVER (ORDER BY id) - 1 AS i
                     FROM customers_customer
                 ),
                 n AS (SELECT count(*) AS n FROM customers_customer)
            INSERT INTO interactions_interaction
                (customer_id, channel, direction, occurred_at, subject, notes, author_id,
                 created_at, updated_at)
            SELECT c.id, (%s::text[])[1 + g %% 9], CASE WHEN g %% 3 = 0 THEN 'in' ELSE 'out' END,
                   now() - (g %% 730) * interval '1 day' - (g %% 86400) * interval '1 second', '', '',
                   c.owner_id, now(), now()
            FROM generate_series(1, %s) AS g CROSS JOIN n JOIN c ON c.i = (g::bigint * 7919) %% n.n
            """,
            [CHANNELS, missing],
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE interactions_interaction")
    return missing


# --- the shared tenant at scale ---------------------------------------------------------------------
# One committed tenant, filled once per session by `seed_demo` (every app's demo step, as `make run`
# does, so seeding it is itself measured) and topped up with what the page benchmarks need: the
# customer list and search, the 360 page, the dashboards and the duplicates scan all read it, so
# `make bench SCALE=1m` seeds 1,000,000 customers once, not once per file.
SCALE_TENANT_SLUGS = {"100k": "scale100k", "1m": "scale1m"}
KEEP_VARIABLES = ("BENCH_KEEP", "DASH_BENCH_KEEP")  # DASH_BENCH_KEEP: its former name (dashboards)
SALES_SHARE = 0.3  # the sales rep owns 30 % of the customers (the list's "sales scope")


@dataclass(frozen=True)
class ScaleTenant:
    tenant: Any
    customers: int  # live and binned
    orders: int
    interactions: int
    seed_seconds: float | None  # None: reused (kept from an earlier run)


def keep_scale_tenant() -> bool:
    """BENCH_KEEP=1: keep the seeded tenant after the run and reuse it next time (with --reuse-db)."""
    return any(os.environ.get(name, "") in ("1", "true", "yes") for name in KEEP_VARIABLES)


def _seed_demo(slug: str, customers: int) -> tuple[dict[str, float], float]:
    """Run `seed_demo` for the tenant; its per-step seconds (from its output) and the whole time."""
    from django.core.management import call_command

    out = io.StringIO()
    started = time.perf_counter()
    call_command("seed_demo", tenant=slug, customers=customers, seed=2026, stdout=out)
    seconds = time.perf_counter() - started
    steps = {
        path: float(seconds)
        for path, seconds in re.findall(r"^([\w.]+): ([\d.]+) s$", out.getvalue(), re.MULTILINE)
    }
    print(out.getvalue())
    return steps, seconds


def _top_up(tenant, customers: int) -> int:
    """What the page benchmarks read beyond the demo: interactions up to INTERACTIONS_BENCH_PER_CUSTOMER
    per customer (default 20: 2,000,000 at 100,000 customers as issue 11 asks), open follow-ups
    (INTERACTIONS_BENCH_FOLLOWUPS, default 100,000 times the scale, at most one per customer), the
    sales rep owning SALES_SHARE of the customers. Each step is skipped when done (a kept tenant)."""
    from crm.accounts.models import User
    from customers.models import Customer
    from interactions.followups.models import FollowUp
    from interactions.models import Interaction

    from .test_followups_benchmark import load_followups

    per_customer = int(os.environ.get("INTERACTIONS_BENCH_PER_CUSTOMER", "20"))
    followups = min(customers, scale.size("INTERACTIONS_BENCH_FOLLOWUPS", 100_000))
    sales = User.objects.get(email=f"sales@{tenant.slug}.test")
    if not Customer.objects.filter(owner=sales).exists():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE customers_customer SET owner_id = %s WHERE id %% 100 < %s",
                [sales.pk, int(SALES_SHARE * 100)],
            )
            cursor.execute("ANALYZE customers_customer")
    started = time.perf_counter()
    added = top_up_interactions(per_customer * customers)
    print(f"{added} interactions added in {time.perf_counter() - started:.1f} s")
    if not FollowUp.objects.filter(assignee=sales, source="manual").exists():
        started = time.perf_counter()
        load_followups(count=followups, sales_id=sales.pk)
        print(f"{followups} follow-ups added in {time.perf_counter() - started:.1f} s")
    print(f"{add_members()} loyalty members added (buyers the demo's sweep had not enrolled)")
    return Interaction.objects.count()


@pytest.fixture(scope="session")
def scale_tenant(django_db_setup, django_db_blocker) -> ScaleTenant:
    """The session's tenant at `scale.size("BENCH_CUSTOMERS", 100_000)` customers (see above)."""
    from crm.audit.models import AuditEvent
    from crm.management.commands.seed_demo import SEEDED_ACTION
    from crm.tenancy.models import Tenant
    from customers.models import Customer, Order
    from tests.conftest import _ensure_tenant

    customers = scale.size("BENCH_CUSTOMERS", 100_000)
    slug = SCALE_TENANT_SLUGS[scale.scale_name()]
    keep = keep_scale_tenant()
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        tenant = _ensure_tenant(slug, f"Scale bench {scale.scale_name()}")
        connection.set_schema_to_public()
        with schema_context(tenant.schema_name):
            seeded = AuditEvent.objects.filter(action=SEEDED_ACTION).exists()
            if seeded and Customer.objects.count() != customers:
                raise RuntimeError(
                    f"The kept tenant {slug} has {Customer.objects.count()} customers, not {customers}: "
                    "run with --create-db (or without BENCH_KEEP) to seed it again."
                )
        seed_seconds = None
        if not seeded:
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            steps, seed_seconds = _seed_demo(slug, customers)
            connection.set_schema_to_public()
            record_benchmark(
                f"seed_demo.{customers}",
                customers=customers,
                seconds=round(seed_seconds, 1),
                steps=steps,
                # ru_maxrss: the process's peak so far (kB on Linux), the seeding's at most
                peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                peak_rss_before_mb=round(rss_before / 1024),
                load=load_text(),
            )
        with schema_context(tenant.schema_name):
            interactions = _top_up(tenant, customers)
            vacuum_rewritten_tables(tenant.schema_name)
            info = ScaleTenant(
                tenant=tenant,
                customers=Customer.objects.count(),
                orders=Order.objects.count(),
                interactions=interactions,
                seed_seconds=seed_seconds,
            )
        connection.set_schema_to_public()
    print(f"scale tenant {slug}: {info}")
    yield info
    if keep:
        return
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema_name}" CASCADE')
        Tenant.objects.filter(pk=tenant.pk).delete()


def vacuum_rewritten_tables(schema: str) -> None:
    """VACUUM (ANALYZE) the tenant's tables that the seeding and the top-up left with many dead rows
    (the demo's figures update every customer once, the top-up hands 30 % of them to the sales rep).

    A running installation's autovacuum clears them within minutes; a benchmark started straight after
    seeding read them all: at 1,000,000 customers the customer table held 1.16 million dead rows next
    to its 1 million live ones, every index entry twice or three times over, and the list's capped
    count read twice the blocks, half of its bitmap lossy (562 ms against 241 ms vacuumed)."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = %s"
            " AND n_dead_tup > 10000 AND n_dead_tup > 0.1 * n_live_tup",
            [schema],
        )
        tables = [name for (name,) in cursor.fetchall()]
        for table in tables:
            cursor.execute(f'VACUUM (ANALYZE) "{schema}"."{table}"')
    print(f"vacuumed {len(tables)} tables ({', '.join(tables)}) in {time.perf_counter() - started:.1f} s")


def load_text() -> str:
    """The machine's 1-minute load average and core count, recorded beside every figure."""
    return f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
