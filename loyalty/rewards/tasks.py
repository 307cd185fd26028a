"""Celery tasks of the rewards sub-app: thin and idempotent, run in the tenant's schema.

- `vouchers_expire_task`: marks issued vouchers past their expiry day expired (one UPDATE; a rerun
  changes nothing); beat calls `vouchers_expire_all_tenants` nightly.
"""

from celery import shared_task
from django.conf import settings
from django.db import connection


@shared_task(acks_late=True)
def vouchers_expire_task() -> int:
    from .services import vouchers_expire

    if connection.schema_name == settings.PUBLIC_SCHEMA_NAME:
        return 0
    return vouchers_expire()


@shared_task(acks_late=True)
def vouchers_expire_all_tenants() -> int:
    from crm.tenancy.dispatch import enqueue_for_active_tenants

    return enqueue_for_active_tenants(vouchers_expire_task)
