"""Reads for the platform console (public schema).

The tenants list shows, for each tenant, its active users, live customers and last activity. Those
numbers live in each tenant's own schema; they are read for a whole page of tenants with ONE query (a
UNION ALL with one branch per tenant schema, built here) and cached per tenant for a minute, so the
page costs the same few queries for 1 tenant or 50.

Rows of big tables (customers, orders) are not counted one by one: see `row_count_sql`.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum
from django.http import Http404
from django.utils import timezone

from crm.audit.models import AuditEvent

from .models import Tenant, TenantUsage

STATS_CACHE_SECONDS = 60


@dataclass(frozen=True)
class TenantStats:
    users: int | None = None
    customers: int | None = None
    last_activity: datetime | None = None


EMPTY_STATS = TenantStats()


@dataclass(frozen=True)
class TenantCount:
    """Where a figure of the tenants list is counted in each tenant's schema: rows of `model`'s table
    matching `where` (a fixed SQL condition on that table, e.g. "deleted_at IS NULL")."""

    model: type
    where: str = "TRUE"


# The figures the console counts in each tenant's schema besides users and last activity; the app
# owning each table registers it in its AppConfig.ready() (customers: "customers" and "orders"), so
# the platform imports no app. The tenants list shows LIST_COUNT_KEYS; the daily usage all of them.
COUNT_KEYS = ("customers", "orders")
LIST_COUNT_KEYS = ("customers",)
_tenant_counts: dict[str, TenantCount] = {}

# Below this many rows (by the planner's statistics) a table is counted exactly; above, its row count
# is PostgreSQL's own estimate. Measured (tests/benchmarks/test_tenant_usage_bench.py, 2 cores, load
# 4.3-6.5): at 100,000 customers / 1,000,000 orders an exact count(*) of the orders takes 42 ms when
# the table is freshly vacuumed (an index-only scan of its 22 MB index) and 90-130 ms after a bulk
# load (the heap is read); the estimate takes 0.2 ms whatever the size and matched to the row there.
# Live customers at that size cost 3.6-86 ms exactly, 0.3 ms as estimate minus binned. At 10,000 an
# exact count costs about 1 ms, hence the threshold.
EXACT_COUNT_BELOW = 10_000


def register_tenant_count(key: str, *, model: type, where: str = "TRUE") -> None:
    """`where` selects the rows that count (e.g. "deleted_at IS NULL"); the rows it leaves out must
    be few and indexed (customers: the bin's partial index), because a big table's count is its
    estimated size minus an exact count of those rows."""
    if key not in COUNT_KEYS:
        raise ValueError(f"unknown tenant count {key!r}; the console counts {COUNT_KEYS}")
    _tenant_counts[key] = TenantCount(model=model, where=where)


def tenant_count_registered(key: str) -> bool:
    return key in _tenant_counts


def row_count_sql(schema: str, key: str) -> str:
    """An SQL expression (a scalar sub-select) for the number of `key` rows in `schema`: exact for a
    small or never-analysed table; for a big one the planner's estimate of the table's rows
    (reltuples per page times its current pages: what the planner itself does, so rows added since
    the last ANALYZE count) minus an exact count of the rows `where` leaves out. A CASE evaluates
    only the branch it takes, so a big table is never scanned."""
    quote = connection.ops.quote_name
    count = _tenant_counts[key]
    table = f"{quote(schema)}.{quote(count.model._meta.db_table)}"
    # Schema names are [a-z0-9_] (crm.tenancy.services.SLUG_RE) and table names come from models.
    regclass = "'" + table.replace("'", "''") + "'::regclass"
    return f"""(SELECT CASE
        WHEN e.estimate >= {EXACT_COUNT_BELOW}
        THEN GREATEST(0, e.estimate - (SELECT count(*) FROM {table} WHERE NOT ({count.where})))
        ELSE (SELECT count(*) FROM {table} WHERE {count.where}) END
      FROM (SELECT CASE WHEN c.reltuples < 0 OR c.relpages = 0 THEN -1
                        ELSE (c.reltuples / c.relpages
                              * (pg_relation_size(c.oid) / current_setting('block_size')::int))::bigint
                   END AS estimate
            FROM pg_class c WHERE c.oid = {regclass}) e)"""


def tenant_list(*, search: str = "", status: str = "") -> QuerySet[Tenant]:
    tenants = Tenant.objects.exclude(schema_name="public")
    search = (search or "").strip()
    if search:
        tenants = tenants.filter(
            Q(name__icontains=search)
            | Q(slug__icontains=search)
            | Q(admin_email__icontains=search)
            | Q(domains__domain__icontains=search)
        ).distinct()
    if status in Tenant.Status.values:
        tenants = tenants.filter(status=status)
    return tenants.order_by("name", "pk")


def tenant_get(*, tenant_id: int) -> Tenant:
    try:
        return Tenant.objects.exclude(schema_name="public").get(pk=tenant_id)
    except (Tenant.DoesNotExist, ValueError, TypeError):
        raise Http404


def tenant_audit_events(*, tenant: Tenant, limit: int = 50) -> list[AuditEvent]:
    """The platform's own record of what was done to this tenant (public-schema audit rows)."""
    return list(
        AuditEvent.objects.filter(target_type=tenant._meta.label_lower, target_id=str(tenant.pk))
        .select_related("actor")
        .order_by("-created_at", "-id")[:limit]
    )


def _stats_cache_key(schema_name: str) -> str:
    return f"tenancy:stats:{schema_name}"


def _stat_tables() -> dict[str, str]:
    from crm.accounts.models import User
    from crm.audit.models import AuditEvent

    tables = {"users": User._meta.db_table, "audit": AuditEvent._meta.db_table}
    for key in LIST_COUNT_KEYS:
        if key in _tenant_counts:
            tables[key] = _tenant_counts[key].model._meta.db_table
    return tables


def schemas_with_tables(schema_names: list[str], tables: list[str]) -> set[str]:
    """The schemas among `schema_names` that have every table in `tables` (a tenant whose set-up
    failed half-way must not break the page)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = ANY(%s) AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')
            GROUP BY n.nspname HAVING count(DISTINCT c.relname) = %s
            """,
            [schema_names, tables, len(set(tables))],
        )
        return {row[0] for row in cursor.fetchall()}


def _compute_stats(schema_names: list[str]) -> dict[str, TenantStats]:
    tables = _stat_tables()
    ready = sorted(schemas_with_tables(schema_names, list(tables.values())))
    if not ready:
        return {}
    quote = connection.ops.quote_name
    branches, params = [], []
    for schema in ready:
        s = quote(schema)
        counts = ", ".join(
            row_count_sql(schema, key) if key in _tenant_counts else "NULL::bigint" for key in LIST_COUNT_KEYS
        )
        branches.append(
            f"""SELECT %s::text,
                (SELECT count(*) FROM {s}.{quote(tables["users"])} WHERE is_active),
                {counts},
                GREATEST((SELECT max(last_login) FROM {s}.{quote(tables["users"])}),
                         (SELECT max(created_at) FROM {s}.{quote(tables["audit"])}))"""
        )
        params.append(schema)
    with connection.cursor() as cursor:
        cursor.execute("\nUNION ALL\n".join(branches), params)
        return {
            schema: TenantStats(users=users, customers=customers, last_activity=last)
            for schema, users, customers, last in cursor.fetchall()
        }


def tenant_stats(*, tenants: Iterable[Tenant], fresh: bool = False) -> dict[int, TenantStats]:
    """Users, customers and last activity per tenant id: from the cache, else one UNION ALL query."""
    tenants = [t for t in tenants if t.schema_name != "public"]
    keys = {t.pk: _stats_cache_key(t.schema_name) for t in tenants}
    cached = {} if fresh else cache.get_many(list(keys.values()))
    missing = [t for t in tenants if keys[t.pk] not in cached]
    computed = _compute_stats([t.schema_name for t in missing]) if missing else {}
    if computed:
        cache.set_many(
            {_stats_cache_key(schema): stats for schema, stats in computed.items()},
            timeout=STATS_CACHE_SECONDS,
        )
    result = {}
    for tenant in tenants:
        stats = cached.get(keys[tenant.pk]) or computed.get(tenant.schema_name) or EMPTY_STATS
        # The login signal keeps Tenant.last_activity_at; take whichever is newer.
        last = max((d for d in (stats.last_activity, tenant.last_activity_at) if d is not None), default=None)
        result[tenant.pk] = TenantStats(users=stats.users, customers=stats.customers, last_activity=last)
    return result


def tenant_stats_forget(*, tenant: Tenant) -> None:
    cache.delete(_stats_cache_key(tenant.schema_name))


# --- Usage over time (TenantUsage, written daily by crm.tenancy.usage) ----------------------------

USAGE_CHART_DAYS = 90


def tenant_usage_history(*, tenant: Tenant, days: int = USAGE_CHART_DAYS) -> list[TenantUsage]:
    """The tenant's daily usage rows of the last `days` days, oldest first (one query)."""
    since = timezone.now().date() - timedelta(days=days - 1)
    return list(TenantUsage.objects.filter(tenant=tenant, day__gte=since).order_by("day"))


def tenant_usage_chart(rows: list[TenantUsage]) -> dict:
    """The usage charts' data for json_script: days as UTC midnight timestamps (ms, a real time axis:
    a missed day leaves a gap in time), storage in MB."""
    return {
        "times": [int(datetime.combine(row.day, time.min, tzinfo=UTC).timestamp() * 1000) for row in rows],
        "users": [row.users for row in rows],
        "active_users": [row.active_users for row in rows],
        "customers": [row.customers for row in rows],
        "orders": [row.orders for row in rows],
        # MB as the page's figures count them (Django's filesizeformat: 1 MB = 1024 x 1024 bytes).
        "storage_mb": [round(row.storage_bytes / 1_048_576, 1) for row in rows],
    }


def _latest_usage(field: str) -> Subquery:
    return Subquery(TenantUsage.objects.filter(tenant=OuterRef("pk")).order_by("-day").values(field)[:1])


def with_latest_usage(tenants: QuerySet[Tenant]) -> QuerySet[Tenant]:
    """`tenants` annotated with their latest usage row's storage (bytes) and day, in the same query."""
    return tenants.annotate(
        usage_storage_bytes=_latest_usage("database_bytes") + _latest_usage("files_bytes"),
        usage_day=_latest_usage("day"),
    )


@dataclass(frozen=True)
class TenantSummary:
    tenants: int
    active: int
    storage_bytes: int | None
    customers: int | None


def tenant_summary(*, tenants: QuerySet[Tenant]) -> TenantSummary:
    """Over every tenant `tenants` selects (not one page): how many, how many active, and their latest
    recorded storage and customers, in one query."""
    totals = (
        tenants.order_by()
        .annotate(
            latest_storage=_latest_usage("database_bytes") + _latest_usage("files_bytes"),
            latest_customers=_latest_usage("customers"),
        )
        .aggregate(
            tenants=Count("pk"),
            active=Count("pk", filter=Q(status=Tenant.Status.ACTIVE)),
            storage=Sum("latest_storage"),
            customers=Sum("latest_customers"),
        )
    )
    return TenantSummary(
        tenants=totals["tenants"],
        active=totals["active"],
        storage_bytes=totals["storage"],
        customers=totals["customers"],
    )
