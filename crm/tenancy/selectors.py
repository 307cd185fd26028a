"""Reads for the platform console (public schema).

The tenants list shows, for each tenant, its active users, live customers and last activity. Those
numbers live in each tenant's own schema; they are read for a whole page of tenants with ONE query (a
UNION ALL with one branch per tenant schema, built here) and cached per tenant for a minute, so the
page costs the same few queries for 1 tenant or 50.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.core.cache import cache
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import Http404

from crm.audit.models import AuditEvent

from .models import Tenant

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


# The figures the tenants list shows besides users and last activity; the app owning each table
# registers it in its AppConfig.ready() (customers: "customers"), so the platform imports no app.
COUNT_KEYS = ("customers",)
_tenant_counts: dict[str, TenantCount] = {}


def register_tenant_count(key: str, *, model: type, where: str = "TRUE") -> None:
    if key not in COUNT_KEYS:
        raise ValueError(f"unknown tenant count {key!r}; the tenants list shows {COUNT_KEYS}")
    _tenant_counts[key] = TenantCount(model=model, where=where)


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
    for key, count in _tenant_counts.items():
        tables[key] = count.model._meta.db_table
    return tables


def _schemas_with_tables(schema_names: list[str], tables: list[str]) -> set[str]:
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
    ready = sorted(_schemas_with_tables(schema_names, list(tables.values())))
    if not ready:
        return {}
    quote = connection.ops.quote_name
    branches, params = [], []
    for schema in ready:
        s = quote(schema)
        counts = ", ".join(
            f"(SELECT count(*) FROM {s}.{quote(tables[key])} WHERE {_tenant_counts[key].where})"
            if key in _tenant_counts
            else "NULL::bigint"
            for key in COUNT_KEYS
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
