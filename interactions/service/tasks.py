"""Celery tasks of the service desk: thin wrappers that take ids and call a service.

`sla_scan_all_tenants` runs from beat every minute in the public schema and queues `sla_scan_task`
once per active tenant (crm.tenancy.dispatch); the scan is one transaction whose unique claim rows make
a re-run (or a run after a killed worker) raise nothing twice.
"""

import logging

from celery import shared_task
from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


def _in_public() -> bool:
    return connection.schema_name == settings.PUBLIC_SCHEMA_NAME


@shared_task(acks_late=True)
def sla_scan_task() -> int:
    from .services import sla_deliver_pending, sla_scan

    if _in_public():
        logger.warning("sla_scan_task was sent from the public schema; nothing to do")
        return 0
    raised = sla_scan()
    sla_deliver_pending()
    if raised:
        logger.info("raised %d SLA warnings/escalations in %s", len(raised), connection.schema_name)
    return len(raised)


@shared_task(acks_late=True)
def sla_scan_all_tenants() -> int:
    from crm.tenancy.dispatch import enqueue_for_active_tenants

    return enqueue_for_active_tenants(sla_scan_task)


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def ticket_reply_send_task(message_id: int) -> bool:
    from .services import ticket_reply_send

    return ticket_reply_send(message_id=message_id)


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def contact_acknowledge_task(ticket_id: int, language: str = "en") -> bool:
    from .services import contact_acknowledge_send

    return contact_acknowledge_send(ticket_id=ticket_id, language=language)
