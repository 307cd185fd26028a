"""Celery tasks of the reports: the weekly e-mail to managers, per tenant (beat runs it hourly; it
sends once a week, after Monday 08:00 in the tenant's time zone), and the background refresh of a
report's stale figures (sent by dashboards.caching.cached in the tenant of the page, whose schema
tenant-schemas-celery carries in the message)."""

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


@shared_task(acks_late=True)
def report_refresh_task(*, name: str, user_id: int, scope: str, params: dict) -> str:
    """Compute a report's stale figures again and cache them (dashboards.caching.report_refresh):
    idempotent, a second delivery finds them fresh; a worker lost mid-way wrote nothing."""
    from .caching import report_refresh

    if connection.schema_name == settings.PUBLIC_SCHEMA_NAME:
        logger.warning("report_refresh_task was sent from the public schema; nothing to do")
        return "public"
    return report_refresh(name=name, user_id=user_id, scope=scope, params=params)
