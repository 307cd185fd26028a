"""Follow-up rules at work: turn what happened to customers into follow-ups.

Called by `tasks.apply_followup_rules_task` (queued by the receivers in `integration.py`), never in
the request. Each function is idempotent: an occurrence is named by a key ("alert:812",
"stage:4411", "created:77"...), the follow-up's source_key is "rule:<id>:<key>", and
`services.followups_create_from_rule` creates it at most once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from customers.models import Customer

from .models import FollowUpRule, RuleSegmentMember
from .selectors import active_rules
from .services import RuleOccurrence, followups_create_from_rule

logger = logging.getLogger(__name__)

# An import does not say whom it created: customers created this recently (and after the rule) count.
IMPORT_CREATED_WINDOW = timedelta(days=1)

Trigger = FollowUpRule.Trigger


def _apply(trigger: str, occurrences_for) -> int:
    created = 0
    for rule in active_rules(triggers=(trigger,)).select_related("fallback_assignee"):
        occurrences = occurrences_for(rule)
        if occurrences:
            created += len(followups_create_from_rule(rule=rule, occurrences=occurrences))
    return created


def on_customers_created(*, customer_ids: Sequence[int] | None) -> int:
    """New customers (ids from customer_create; None after an import: those created in the last day)."""

    def occurrences(rule: FollowUpRule) -> list[RuleOccurrence]:
        qs = Customer.objects.filter(deleted_at__isnull=True, created_at__gte=rule.created_at)
        if customer_ids is None:
            qs = qs.filter(created_at__gte=timezone.now() - IMPORT_CREATED_WINDOW)
        else:
            qs = qs.filter(pk__in=list(customer_ids))
        return [RuleOccurrence(pk, f"created:{pk}") for pk in qs.values_list("pk", flat=True)]

    return _apply(Trigger.CUSTOMER_CREATED, occurrences)


def on_orders(*, customer_ids: Sequence[int] | None) -> int:
    """A customer's first purchase (a customer has one at most: the key is the customer). Orders
    dated before the rule existed are history, not a first purchase to follow up."""

    def occurrences(rule: FollowUpRule) -> list[RuleOccurrence]:
        qs = Customer.objects.filter(
            deleted_at__isnull=True, orders_count__gte=1, first_order_at__gte=rule.created_at
        )
        if customer_ids is not None:
            qs = qs.filter(pk__in=list(customer_ids))
        return [RuleOccurrence(pk, f"first_purchase:{pk}") for pk in qs.values_list("pk", flat=True)]

    return _apply(Trigger.FIRST_PURCHASE, occurrences)


def on_churn_alerts(*, alert_ids: Sequence[int]) -> int:
    from segmentation.selectors import alert_customer_ids

    customers_of = alert_customer_ids(alert_ids=list(alert_ids))

    def occurrences(rule: FollowUpRule) -> list[RuleOccurrence]:
        return [
            RuleOccurrence(customer_id, f"alert:{alert_id}") for alert_id, customer_id in customers_of.items()
        ]

    return _apply(Trigger.CHURN_ALERT, occurrences)


def on_recompute(*, run_id: int) -> int:
    """After a recompute: customers the run moved into a rule's stage, and customers who entered a
    rule's saved segment since the last evaluation."""
    from segmentation.selectors import run_stage_entries

    def stage_occurrences(rule: FollowUpRule) -> list[RuleOccurrence]:
        return [
            RuleOccurrence(customer_id, f"stage:{transition_id}")
            for transition_id, customer_id in run_stage_entries(run_id=run_id, stage=rule.stage)
        ]

    created = _apply(Trigger.LIFECYCLE_STAGE, stage_occurrences)
    for rule in active_rules(triggers=(Trigger.SEGMENT,)).filter(segment__isnull=False):
        created += segment_rule_evaluate(rule_id=rule.pk, run_id=run_id)
    return created


@transaction.atomic
def segment_rule_evaluate(*, rule_id: int, run_id: int) -> int:
    """Compare the segment's members now with those remembered: entrants get a follow-up (keyed by
    customer and run, so someone who leaves and comes back is followed up again), leavers are
    forgotten. The first evaluation only records who is in (no follow-ups for the whole segment).
    The rule row is locked, so two workers evaluating the same rule take turns."""
    from segmentation.selectors import segment_member_ids

    rule = (
        FollowUpRule.objects.select_for_update(of=("self",))
        .select_related("segment", "fallback_assignee")
        .filter(pk=rule_id, is_active=True, trigger=Trigger.SEGMENT)
        .first()
    )
    if rule is None or rule.segment is None:
        return 0
    now = timezone.now()
    members = segment_member_ids(segment=rule.segment)
    remembered = set(RuleSegmentMember.objects.filter(rule=rule).values_list("customer_id", flat=True))
    entrants = sorted(members - remembered)
    leavers = remembered - members
    if leavers:
        RuleSegmentMember.objects.filter(rule=rule, customer_id__in=list(leavers)).delete()
    RuleSegmentMember.objects.bulk_create(
        [RuleSegmentMember(rule=rule, customer_id=pk, since=now) for pk in entrants],
        batch_size=1000,
        ignore_conflicts=True,
    )
    if rule.members_since is None:
        FollowUpRule.objects.filter(pk=rule.pk).update(members_since=now)
        return 0
    created = followups_create_from_rule(
        rule=rule, occurrences=[RuleOccurrence(pk, f"segment:{pk}:run:{run_id}") for pk in entrants], now=now
    )
    return len(created)
