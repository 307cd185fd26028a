"""Usage over time: each active tenant's users, customers, orders, storage and last activity, once a day.

The beat entry `tenancy-usage-daily` runs `tenant_usage_all_tenants` in the public schema, which sends
one `tenant_usage_task(tenant_id, day)` per active tenant (crm.tenancy.dispatch.active_tenants). The
task measures the tenant with ONE query on its schema (schema-qualified, from the public schema where
TenantUsage lives) plus a walk of its folder of files, and writes the day's row with an upsert on
(tenant, day): a re-run, or a message redelivered after a worker died (acks_late), rewrites the same
row with fresher figures and never adds a second one.

Customers and orders of a big tenant are PostgreSQL's estimate, not a count: see
crm.tenancy.selectors.row_count_sql.
"""

import logging
import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .models import Tenant, TenantUsage
from .selectors import row_count_sql, schemas_with_tables, tenant_count_registered

logger = logging.getLogger(__name__)

# A user counts as active when they signed in within this many days.
ACTIVE_USER_DAYS = 30
# Rows older than this are deleted by the daily dispatcher (the console charts the last 90 days).
USAGE_KEEP_DAYS = 730


@dataclass(frozen=True)
class UsageFigures:
    users: int
    active_users: int
    customers: int
    orders: int
    database_bytes: int
    files_bytes: int
    last_activity_at: datetime | None


def files_bytes(schema_name: str) -> int:
    """Bytes of the tenant's files under MEDIA_ROOT/<schema>/ (crm.storage); links are not followed."""
    root = Path(settings.MEDIA_ROOT) / schema_name
    total = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:  # removed while we walked
                continue
    return total


def _tables() -> dict[str, str]:
    from crm.accounts.models import User
    from crm.audit.models import AuditEvent

    return {"users": User._meta.db_table, "audit": AuditEvent._meta.db_table}


def tenant_usage_measure(*, tenant: Tenant, now: datetime | None = None) -> UsageFigures | None:
    """The tenant's figures now; None when its schema is missing its tables (set-up failed half-way)."""
    now = now or timezone.now()
    tables = _tables()
    if tenant.schema_name not in schemas_with_tables([tenant.schema_name], list(tables.values())):
        return None
    quote = connection.ops.quote_name
    schema = quote(tenant.schema_name)
    users, audit = f"{schema}.{quote(tables['users'])}", f"{schema}.{quote(tables['audit'])}"
    counts = {
        key: row_count_sql(tenant.schema_name, key) if tenant_count_registered(key) else "0::bigint"
        for key in ("customers", "orders")
    }
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT
              (SELECT count(*) FROM {users} WHERE is_active),
              (SELECT count(*) FROM {users} WHERE is_active AND last_login >= %s),
              {counts["customers"]},
              {counts["orders"]},
              (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'm')),
              GREATEST((SELECT max(last_login) FROM {users}), (SELECT max(created_at) FROM {audit}))
            """,
            [now - timedelta(days=ACTIVE_USER_DAYS), tenant.schema_name],
        )
        users_n, active_n, customers_n, orders_n, database_n, last = cursor.fetchone()
    # The sign-in signal keeps Tenant.last_activity_at; take whichever is newer.
    last = max((d for d in (last, tenant.last_activity_at) if d is not None), default=None)
    return UsageFigures(
        users=users_n,
        active_users=active_n,
        customers=customers_n,
        orders=orders_n,
        database_bytes=database_n,
        files_bytes=files_bytes(tenant.schema_name),
        last_activity_at=last,
    )


@transaction.atomic
def tenant_usage_record(*, tenant_id: int, day: date | None = None) -> TenantUsage | None:
    """Measure one active tenant and write its row for `day` (default: today, UTC); idempotent.
    A tenant no longer active, or without its tables, is skipped (None)."""
    connection.set_schema_to_public()
    tenant = (
        Tenant.objects.filter(pk=tenant_id, status=Tenant.Status.ACTIVE).exclude(schema_name="public").first()
    )
    if tenant is None:
        return None
    figures = tenant_usage_measure(tenant=tenant)
    if figures is None:
        logger.warning("Usage of tenant %s skipped: its schema is incomplete.", tenant.schema_name)
        return None
    row = TenantUsage(tenant=tenant, day=day or timezone.now().date(), **figures.__dict__)
    row.full_clean(validate_unique=False, validate_constraints=False)
    fields = list(figures.__dict__) + ["updated_at"]
    TenantUsage.objects.bulk_create(
        [row], update_conflicts=True, unique_fields=["tenant", "day"], update_fields=fields
    )
    return TenantUsage.objects.get(tenant=tenant, day=row.day)


def tenant_usage_forget_old(*, today: date | None = None) -> int:
    """Delete rows older than USAGE_KEEP_DAYS; returns how many."""
    today = today or timezone.now().date()
    deleted, _details = TenantUsage.objects.filter(day__lt=today - timedelta(days=USAGE_KEEP_DAYS)).delete()
    return deleted
