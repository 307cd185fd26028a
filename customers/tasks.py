"""Celery tasks of the customers app: thin wrappers that call services.

The recycle bin purge runs from beat as a dispatcher in the public schema that queues one purge per
active tenant inside that tenant's context (tenant-schemas-celery routes it to the tenant's schema).
"""

import logging

from celery import shared_task
from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def purge_bin_task() -> int:
    """Delete for good the customers that have been in this tenant's bin for more than 30 days.
    Idempotent: a re-run finds nothing left to purge."""
    from .services import customers_purge_expired

    if connection.schema_name == settings.PUBLIC_SCHEMA_NAME:
        logger.warning("purge_bin_task was sent from the public schema; nothing to do")
        return 0
    purged = customers_purge_expired()
    if purged:
        logger.info("purged %d customers from the bin of %s", purged, connection.schema_name)
    return purged


@shared_task(acks_late=True)
def purge_bin_all_tenants() -> int:
    """From beat, in the public schema: queue purge_bin_task for every active tenant."""
    from crm.tenancy.dispatch import enqueue_for_active_tenants

    return enqueue_for_active_tenants(purge_bin_task)
