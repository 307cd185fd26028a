"""Celery tasks of notifications: thin wrappers around `mailing`, run in the tenant's schema, plus
their beat dispatchers (every minute for e-mails, every 15 minutes for the digest)."""

import logging

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import connection

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def notification_emails_task() -> dict:
    """Send this tenant's pending notification e-mails. Idempotent (see crm.notifications.mailing);
    queued on commit when notify() creates mail, and every minute by the dispatcher."""
    from .mailing import email_deliveries_send
    from .services import EMAILS_QUEUED_KEY, queue_email_delivery

    if connection.schema_name == settings.PUBLIC_SCHEMA_NAME:
        logger.warning("notification_emails_task was sent from the public schema; nothing to do")
        return {}
    cache.delete(EMAILS_QUEUED_KEY)  # rows committed from now on queue a new task
    counts = email_deliveries_send()
    if counts["more"]:
        queue_email_delivery()
    return counts


@shared_task(acks_late=True)
def notification_emails_all_tenants() -> int:
    from crm.tenancy.dispatch import enqueue_for_active_tenants

    return enqueue_for_active_tenants(notification_emails_task)


@shared_task(acks_late=True)
def notification_digest_task() -> dict:
    """Send the daily digest to this tenant's users whose local 08:00 has passed (once per local day)."""
    from .mailing import digest_send_due

    if connection.schema_name == settings.PUBLIC_SCHEMA_NAME:
        logger.warning("notification_digest_task was sent from the public schema; nothing to do")
        return {}
    return digest_send_due()


@shared_task(acks_late=True)
def notification_digest_all_tenants() -> int:
    from crm.tenancy.dispatch import enqueue_for_active_tenants

    return enqueue_for_active_tenants(notification_digest_task)
