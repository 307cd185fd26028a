"""Workers keep each tenant row for CELERY_TASK_TENANT_CACHE_SECONDS (tenant-schemas-celery), to save a
public-schema query per task. A company that changes its time zone, currency or language in its
profile must not be served the old row for that long: the profile service replaces a per-tenant stamp
in the shared cache when it commits, and a worker that sees another stamp than the one it fetched the
row under fetches the row again. One cache read per task; a query only after a change.
"""

import secrets

from django.core.cache import cache
from django_tenants.utils import schema_context
from tenant_schemas_celery.task import TenantTask

STAMP_KEY = "tenancy:settings-stamp:{schema}"
STAMP_SECONDS = 24 * 60 * 60  # far longer than any worker keeps a tenant row
_stamp_seen: dict[str, str | None] = {}  # per process: schema -> stamp when its row was cached


def settings_stamp(schema_name: str) -> str | None:
    with schema_context("public"):  # one key per tenant whichever schema the caller is in
        return cache.get(STAMP_KEY.format(schema=schema_name))


def tenant_settings_changed(schema_name: str) -> None:
    with schema_context("public"):
        cache.set(STAMP_KEY.format(schema=schema_name), secrets.token_hex(8), STAMP_SECONDS)


class FreshSettingsTenantTask(TenantTask):
    abstract = True

    @classmethod
    def get_tenant_for_schema(cls, schema_name):
        stamp = settings_stamp(schema_name)
        if schema_name in _stamp_seen and _stamp_seen[schema_name] != stamp:
            cls.tenant_cache().set(schema_name, None, expire_seconds=-1)  # expired: fetched again below
        _stamp_seen[schema_name] = stamp
        return super().get_tenant_for_schema(schema_name)
