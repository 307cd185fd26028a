"""Write docs/explain-1m.md: `EXPLAIN (ANALYZE, BUFFERS)` of the heaviest queries of each page.

Usage (the database in DATABASE_URL, e.g. the test database `make bench SCALE=1m` kept with
BENCH_KEEP=1 and its tenant `scale1m`):

    DATABASE_URL=postgres://.../test_crm DJANGO_SETTINGS_MODULE=crm.settings.test \\
        python scripts/explain_1m.py --tenant scale1m [--output docs/explain-1m.md] [--top 3]

Each page is requested in-process as the tenant's manager (the dashboards with their cache emptied
first, so the report queries run); the queries it made are captured, the `--top` slowest are run
again under `EXPLAIN (ANALYZE, BUFFERS)` in the tenant's schema, and the document lists, per page,
each query with its plan, the indexes that serve it and any sequential scan of the tenant's
customers or orders (flagged; the duplicates scan reads every live customer by design).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIG_TABLES = ("customers_customer", "customers_order")
SKIPPED = re.compile(r"^\s*(SET |SAVEPOINT|RELEASE|ROLLBACK|COMMIT|BEGIN|CLOSE|FETCH|SHOW )", re.I)
INDEX_USE = re.compile(r"(?:Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\w+)")
SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")


def pages(sample_id: int, sales_sample_id: int, full_name: str) -> list[tuple[str, str, str]]:
    """(title, role, url) of the pages whose heaviest queries the document shows."""
    return [
        ("Customer list, unfiltered", "manager", "/customers/"),
        ("Customer list, sorted by total spent", "manager", "/customers/?sort=-total_spent"),
        ("Customer list, sorted by last order (oldest first)", "manager", "/customers/?sort=last_order"),
        ("Customer list, filtered (city, consent)", "manager", "/customers/?city=上海&email_consent=yes"),
        ("Customer list, sales scope", "sales", "/customers/"),
        ("Search: Chinese full name", "manager", f"/customers/?q={full_name}"),
        ("Search: surname", "manager", "/customers/?q=王"),
        ("Search: pinyin", "manager", "/customers/?q=wangxiao"),
        ("Search: phone", "manager", "/customers/?q=138 0013"),
        ("Search: e-mail domain", "manager", "/customers/?q=qq.com"),
        ("Search: surname + city, by spent (sales)", "sales", "/customers/?q=王&city=上海&sort=-total_spent"),
        # the bounded walk (customers.selectors.customer_page): the planner's walk read 600,000 names
        ("Search: surname, by name (bounded walk)", "manager", "/customers/?q=王&sort=name"),
        ("Customer 360 page", "manager", f"/customers/{sample_id}/"),
        ("Customer 360 timeline", "sales", f"/customers/{sales_sample_id}/timeline/"),
        ("Start page", "manager", "/"),
        ("Start page (sales)", "sales", "/"),
        ("Dashboard overview", "manager", "/dashboards/"),
        ("Dashboard cohorts (24 months)", "manager", "/dashboards/cohorts/?months=24"),
        ("Segments page", "manager", "/segments/"),
        ("CLV page", "manager", "/segments/clv/"),
        ("Loyalty overview", "manager", "/loyalty/"),
        ("Loyalty reports", "manager", "/loyalty/reports/"),
        ("Duplicates page", "manager", "/customers/duplicates/"),
        ("Interactions page", "manager", "/interactions/"),
    ]  # fmt: skip


def explain(cursor, sql: str, *, analyze: bool = True) -> str:
    sql = re.sub(r"^\s*DECLARE \S+ NO SCROLL CURSOR (?:WITH(?:OUT)? HOLD )?FOR ", "", sql, flags=re.I)
    cursor.execute(("EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN ") + sql)
    return "\n".join(row[0] for row in cursor.fetchall())


def big_table_index_scans(plan: str) -> list[tuple[str, int]]:
    """(index, estimated rows) of every index scan of customers or orders in a plan: an index that
    hands over most of the table (an index read whole, or a partial index's predicate only) stands
    in for a sequential scan rather than avoiding one; the row estimate tells which."""
    lines = plan.splitlines()
    found = []
    for i, line in enumerate(lines):
        match = re.search(r"(?:Index Scan|Index Only Scan)(?: Backward)? using (\w+) on (\w+)", line)
        heap = re.search(r"Bitmap Heap Scan on (\w+)", line)
        if match and match.group(2) in BIG_TABLES:
            index = match.group(1)
        elif heap and heap.group(1) in BIG_TABLES:
            inner = next((x for x in lines[i + 1 :] if "Bitmap Index Scan on" in x), "")
            index = re.search(r"Bitmap Index Scan on (\w+)", inner).group(1) if inner else "bitmap"
        else:
            continue
        rows = re.search(r"rows=(\d+)", line)
        found.append((index, int(rows.group(1)) if rows else 0))
    return sorted(set(found))


def heaviest(captured: list[dict], top: int) -> list[dict]:
    queries = [q for q in captured if not SKIPPED.match(q["sql"]) and "django_session" not in q["sql"]]
    return sorted(queries, key=lambda q: float(q.get("time") or 0), reverse=True)[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", default="scale1m")
    parser.add_argument("--output", default=str(ROOT / "docs" / "explain-1m.md"))
    parser.add_argument("--top", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings.test")

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings
    from django_tenants.utils import schema_context

    from crm.accounts.models import User
    from crm.tenancy.models import Domain, Tenant
    from customers.dedupe.scan import duplicate_scan
    from customers.models import Customer, Order
    from dashboards.caching import data_changed

    tenant = Tenant.objects.get(slug=args.tenant)
    with schema_context(tenant.schema_name):
        customers, orders = Customer.objects.count(), Order.objects.count()
        manager = User.objects.filter(role="manager", is_active=True).order_by("pk").first()
        sales = (
            User.objects.filter(email=f"sales@{tenant.slug}.test").first()  # the bench tenant's rep
            or User.objects.filter(role="sales", is_active=True).order_by("pk").first()
        )
        sample = Customer.objects.filter(orders_count__gt=2, deleted_at__isnull=True).order_by("pk").first()
        sales_sample = (
            Customer.objects.filter(owner=sales, orders_count__gt=2, deleted_at__isnull=True)
            .order_by("pk")
            .first()
        )
        named = (
            Customer.objects.filter(name__regex=r"^[\u4e00-\u9fff]{3}$", deleted_at__isnull=True)
            .order_by("pk")
            .values_list("name", flat=True)
            .first()
        )
        cursor = connection.cursor()
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    primary = Domain.objects.filter(tenant=tenant, is_primary=True).values_list("domain", flat=True).first()
    host = primary or f"{tenant.slug}.{settings.BASE_DOMAIN}"
    clients = {}
    for role, user in (("manager", manager), ("sales", sales)):
        clients[role] = Client(HTTP_HOST=host)
        with schema_context(tenant.schema_name):
            clients[role].force_login(user)

    sections, flagged = [], []
    for title, role, url in pages(sample.pk, sales_sample.pk, named or "王小明"):
        client = clients[role]
        extra = {"HTTP_HX_REQUEST": "true"} if url.endswith("/timeline/") else {}
        client.get(url, **extra)  # warm the session and the plan cache
        # The start page, the reports, the segment pages and the loyalty overview and reports are
        # kept like reports (crm.reportcache).
        if url == "/" or url.startswith(("/dashboards/", "/segments/", "/loyalty/")):
            with schema_context(tenant.schema_name):
                data_changed()  # as after an import: the report queries run again
        # A stale report is otherwise served as it was while a background task computes it again
        # (dashboards.caching): here the page computes it, so that its queries are the ones shown.
        with (
            override_settings(DASHBOARDS_REFRESH_IN_BACKGROUND_FROM=float("inf")),
            CaptureQueriesContext(connection) as captured,
        ):
            started = time.perf_counter()
            response = client.get(url, **extra)
            ms = (time.perf_counter() - started) * 1000
        sections.append(
            _section(title, url, role, response.status_code, ms, captured, args.top, tenant, flagged)
        )
    with schema_context(tenant.schema_name), CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        scan = duplicate_scan(Customer.objects.filter(deleted_at__isnull=True))
        ms = (time.perf_counter() - started) * 1000
    sections.append(
        _section(
            f"Duplicates scan ({scan.total} pairs)", "customers.dedupe.scan.duplicate_scan", "-", 200, ms,
            captured, args.top, tenant, flagged, by_design=True,
        )
    )  # fmt: skip

    load = os.getloadavg()
    lines = [
        "# EXPLAIN (ANALYZE, BUFFERS) at 1,000,000 customers",
        "",
        f"Generated by `scripts/explain_1m.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: tenant with "
        f"{customers:,} customers and {orders:,} orders (seed_demo, as `make bench SCALE=1m` seeds it), "
        f"PostgreSQL {version}, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on "
        f"{os.cpu_count()} cores. For each page: the request's server time, then its {args.top} slowest "
        "queries run again under EXPLAIN (ANALYZE, BUFFERS) (times in a plan are that second run's, "
        "with warm buffers), the indexes serving each and any sequential scan of the tenant's "
        "customers or orders.",
        "",
        "## Sequential scans of customers or orders",
        "",
    ]
    lines += [f"- {item}" for item in flagged] or ["- None on any page."]
    lines.append("")
    for section in sections:
        lines += section
    Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.output}: {len(sections)} pages, {len(flagged)} sequential scans flagged")
    return 0


def _section(title, url, role, status, ms, captured, top, tenant, flagged, *, by_design=False) -> list[str]:
    from django.db import connection
    from django_tenants.utils import schema_context

    lines = [
        f"## {title}",
        "",
        f"`{url}` as {role}: HTTP {status}, {ms:.0f} ms, {len(captured)} queries.",
        "",
    ]
    for n, query in enumerate(heaviest(captured.captured_queries, top), 1):
        with schema_context(tenant.schema_name), connection.cursor() as cursor:
            try:
                plan = explain(cursor, query["sql"])
            except Exception as exc:  # noqa: BLE001 - shown in the document, the rest goes on
                plan = f"(not explained: {exc})"
        indexes = sorted(set(INDEX_USE.findall(plan)))
        scans = sorted({t for t in SEQ_SCAN.findall(plan) if t in BIG_TABLES})
        sql = query["sql"] if len(query["sql"]) <= 2500 else query["sql"][:2500] + " ..."
        lines += [
            f"### {n}. {float(query.get('time') or 0) * 1000:.0f} ms in the request",
            "",
            "```sql",
            sql,
            "```",
            "",
            f"Indexes: {', '.join(f'`{i}`' for i in indexes) or 'none'}."
            + (f" **Sequential scan of {', '.join(scans)}**" if scans else ""),
            "",
            "```",
            plan,
            "```",
            "",
        ]
        if scans:
            note = " (by design: the scan reads every live customer)" if by_design else ""
            if not by_design:
                # Could an index serve it at all? The plan with sequential scans priced out says so.
                with schema_context(tenant.schema_name), connection.cursor() as cursor:
                    cursor.execute("SET enable_seqscan = off")
                    try:
                        forced = explain(cursor, query["sql"], analyze=False)
                    finally:
                        cursor.execute("RESET enable_seqscan")
                left = sorted({t for t in SEQ_SCAN.findall(forced) if t in BIG_TABLES})
                served = big_table_index_scans(forced)
                note = (
                    f" (no index can serve it: still a sequential scan of {', '.join(left)} with "
                    "sequential scans priced out)"
                    if left
                    else " (with sequential scans priced out: "
                    + "; ".join(f"{index}, about {rows:,} rows" for index, rows in served)
                    + ")"
                )
                lines.insert(-4, f"Without sequential scans:{note}.")
                lines.insert(-4, "")
            flagged.append(f"{title}, query {n}: sequential scan of {', '.join(scans)}{note}")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
