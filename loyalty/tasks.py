"""Celery tasks of the loyalty app: thin, idempotent wrappers around services, run in the tenant's
schema (tenant-schemas-celery). Beat calls the `*_all_tenants` dispatchers in the public schema.

- `points_earn_task`: the earning sweep after orders, refunds, imports and merges (customers_changed);
  safe to retry or duplicate: an order earns once.
- `points_earn_all_tenants`: the daily catch-up, a sweep of every customer per tenant (usually
  nothing to do: it earns orders whose own sweep was lost, or an import too big to name customers).
- `points_nightly_task`: expiry of due lots, then the tier evaluation; a run killed half-way and
  started again expires each lot once (each batch is one transaction; an expired lot is empty).
- `loyalty_check_balances_task`: recompute balances from the ledger and log any difference.
"""

import logging

from celery import shared_task
from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


def _in_public_schema(name: str) -> bool:
    if connection.schema_name == settings.PUBLIC_SCHEMA_NAME:
        logger.warning("%s was sent from the public schema; nothing to do", name)
        return True
    return False


@shared_task(acks_late=True)
def points_earn_task(customer_ids: list[int] | None = None) -> dict:
    from .services import points_earn_for_orders

    if _in_public_schema("points_earn_task"):
        return {}
    result = points_earn_for_orders(customer_ids=customer_ids)
    return result.__dict__


@shared_task(acks_late=True)
def points_earn_all_tenants() -> int:
    from crm.tenancy.dispatch import enqueue_for_active_tenants

    return enqueue_for_active_tenants(points_earn_task)


@shared_task(acks_late=True)
def points_nightly_task() -> dict:
    from .services import points_expire, points_expiry_reminders, tiers_evaluate

    if _in_public_schema("points_nightly_task"):
        return {}
    expired = points_expire()
    tiers = tiers_evaluate()
    reminders = points_expiry_reminders()
    logger.info("loyalty nightly in %s: expired %s, tiers %s", connection.schema_name, expired, tiers)
    return {"expired": expired, "tiers": tiers, "reminders": reminders}


@shared_task(acks_late=True)
def points_nightly_all_tenants() -> int:
    from crm.tenancy.dispatch import enqueue_for_active_tenants

    return enqueue_for_active_tenants(points_nightly_task)


@shared_task(acks_late=True)
def loyalty_check_balances_task() -> int:
    from .services import member_balances_check

    if _in_public_schema("loyalty_check_balances_task"):
        return 0
    differences = member_balances_check()
    for difference in differences[:100]:
        logger.error("loyalty balance differs in %s: %s", connection.schema_name, difference)
    return len(differences)


@shared_task(acks_late=True)
def loyalty_check_balances_all_tenants() -> int:
    from crm.tenancy.dispatch import enqueue_for_active_tenants

    return enqueue_for_active_tenants(loyalty_check_balances_task)


@shared_task(acks_late=True, max_retries=0)
def opening_import_task(job_id: int) -> None:
    """Check (then preview) or write an opening-balances import: all rows or none (loyalty.imports)."""
    from .imports import import_run

    import_run(job_id=job_id)
