"""Celery tasks of the surveys: thin wrappers that take ids and call a service.

`invitations_send_task` sends this tenant's unsent invitations (queued on commit by every trigger and
bulk send); `invitations_send_all_tenants` runs from beat every minute and queues it per active tenant,
so a batch left claimed by a dead worker is sent again once its claim is stale.
"""

import logging

from celery import shared_task
from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def invitations_send_task() -> dict:
    from .services import invitations_send

    if connection.schema_name == settings.PUBLIC_SCHEMA_NAME:
        logger.warning("invitations_send_task was sent from the public schema; nothing to do")
        return {}
    counts = invitations_send()
    if counts.get("more"):
        invitations_send_task.delay()
    return counts


@shared_task(acks_late=True)
def invitations_send_all_tenants() -> int:
    from crm.tenancy.dispatch import enqueue_for_active_tenants

    return enqueue_for_active_tenants(invitations_send_task)


@shared_task(acks_late=True, max_retries=0)
def survey_bulk_send_task(job_id: int) -> None:
    from crm.jobs.runner import run_job

    from .services import FAILURE_MESSAGE, bulk_send_run

    run_job(job_id, bulk_send_run, failure_message=FAILURE_MESSAGE)
