"""Celery tasks of the reports: the weekly e-mail to managers, per tenant (beat runs it hourly; it
sends once a week, after Monday 08:00 in the tenant's time zone)."""

import logging

from celery import shared_task
from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def weekly_summary_task() -> int:
    from .weekly import weekly_summary_send

    if connection.schema_name == settings.PUBLIC_SCHEMA_NAME:
        logger.warning("weekly_summary_task was sent from the public schema; nothing to do")
        return 0
    return weekly_summary_send()


@shared_task(acks_late=True)
def weekly_summary_all_tenants() -> int:
    from crm.tenancy.dispatch import enqueue_for_active_tenants

    return enqueue_for_active_tenants(weekly_summary_task)
