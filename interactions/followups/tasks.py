"""Celery tasks of follow-ups: thin wrappers that take ids and call the rules or services.

- `apply_followup_rules_task`: queued by the receivers in `integration.py` when customers are created,
  buy, raise churn alerts or a recompute finishes; idempotent (each occurrence has one source_key).
- `followup_reminders_task` / `followup_reminders_all_tenants`: every minute, due follow-ups are handed
  to the notifications service once (see `services.followup_reminders_send`).
"""

import logging

from celery import shared_task
from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)

EVENT_CREATED = "created"
EVENT_ORDERS = "orders"
EVENT_ALERTS = "alerts"
EVENT_RECOMPUTE = "recompute"


def _in_public_schema(name: str) -> bool:
    if connection.schema_name == settings.PUBLIC_SCHEMA_NAME:
        logger.warning("%s was sent from the public schema; nothing to do", name)
        return True
    return False


@shared_task(acks_late=True)
def apply_followup_rules_task(
    event: str,
    customer_ids: list[int] | None = None,
    alert_ids: list[int] | None = None,
    run_id: int | None = None,
) -> int:
    """Create the follow-ups the tenant's rules ask for after `event`; returns how many were new."""
    from . import rules

    if _in_public_schema("apply_followup_rules_task"):
        return 0
    if event == EVENT_CREATED:
        return rules.on_customers_created(customer_ids=customer_ids)
    if event == EVENT_ORDERS:
        return rules.on_orders(customer_ids=customer_ids)
    if event == EVENT_ALERTS:
        return rules.on_churn_alerts(alert_ids=alert_ids or [])
    if event == EVENT_RECOMPUTE and run_id is not None:
        return rules.on_recompute(run_id=int(run_id))
    logger.warning("apply_followup_rules_task: unknown event %r", event)
    return 0
