"""Writes of the segmentation app: settings, saved segments, churn alerts, recompute requests and the
customer-merge hook. The heavy recompute itself lives in `segmentation.recompute`."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _t

from crm.accounts.models import User
from crm.audit.services import audit_diff, audit_record
from crm.jobs.models import BackgroundJob
from crm.jobs.services import job_enqueue, job_get_or_create_active

from .models import (
    AlertQueueVisit,
    ChurnAlert,
    CustomerScore,
    LifecycleTransition,
    RecomputeRun,
    Segment,
    SegmentationSettings,
    SegmentTransition,
)
from .rules import count_conditions, validate_rules
from .selectors import ALERTS_VERSION_KEY, RECOMPUTE_JOB_KIND, forget_new_alert_count
from .signals import churn_alerts_raised_on_commit

SETTINGS_FIELDS = (
    "rfm_window_days",
    "monetary_mode",
    "scoring_method",
    "score_thresholds",
    "clv_horizon_days",
    "annual_discount_rate",
    "margin",
    "new_days",
    "at_risk_multiplier",
    "churn_multiplier",
    "at_risk_min_days",
    "churn_min_days",
    "loyal_min_orders",
    "at_risk_alive_threshold",
    "alert_alive_threshold",
)


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------
def settings_get() -> SegmentationSettings:
    """The tenant's settings row, created with the defaults on first use."""
    row = SegmentationSettings.objects.filter(pk=SegmentationSettings.SINGLETON_ID).first()
    if row is None:
        row, _created = SegmentationSettings.objects.get_or_create(pk=SegmentationSettings.SINGLETON_ID)
    return row


def _settings_snapshot(row: SegmentationSettings) -> dict[str, Any]:
    values = {}
    for name in SETTINGS_FIELDS:
        value = getattr(row, name)
        values[name] = value if isinstance(value, int | str | dict | list | type(None)) else str(value)
    return values


@transaction.atomic
def settings_update(*, actor: User, **values: Any) -> SegmentationSettings:
    unknown = set(values) - set(SETTINGS_FIELDS)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    row = settings_get()
    row = SegmentationSettings.objects.select_for_update().get(pk=row.pk)
    before = _settings_snapshot(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_by = actor
    row.full_clean()
    row.save()
    changes = audit_diff(before, _settings_snapshot(row))
    if changes:
        audit_record(actor=actor, action="segmentation.settings_update", target=row, changes=changes)
    return row


# --------------------------------------------------------------------------------------------------
# Saved segments
# --------------------------------------------------------------------------------------------------
def _check_segment_rules(rules: Any) -> dict:
    from .rules import RuleError

    try:
        clean = validate_rules(rules)
    except RuleError as exc:
        raise ValidationError({"rules": exc.messages})
    if count_conditions(clean) == 0:
        raise ValidationError({"rules": [_t("Add at least one condition.")]})
    return clean


def _check_unique_name(*, name: str, created_by: User | None, exclude_pk: int | None = None) -> None:
    clash = Segment.objects.filter(name__iexact=name.strip(), created_by=created_by)
    if exclude_pk:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise ValidationError({"name": [_t("You already have a segment with this name.")]})


@transaction.atomic
def segment_create(
    *, actor: User, name: str, rules: Any, description: str = "", is_shared: bool = True
) -> Segment:
    clean_rules = _check_segment_rules(rules)
    _check_unique_name(name=name, created_by=actor)
    segment = Segment(
        name=name.strip(), description=description, rules=clean_rules, is_shared=is_shared, created_by=actor
    )
    segment.full_clean()
    segment.save()
    audit_record(
        actor=actor,
        action="segmentation.segment_create",
        target=segment,
        changes={"name": {"old": None, "new": segment.name}, "rules": {"old": None, "new": clean_rules}},
    )
    return segment


def _check_can_edit(*, actor: User, segment: Segment) -> None:
    if not (actor.is_manager_or_admin or segment.created_by_id == actor.pk):
        raise PermissionDenied


@transaction.atomic
def segment_update(
    *, actor: User, segment: Segment, name: str, rules: Any, description: str = "", is_shared: bool = True
) -> Segment:
    _check_can_edit(actor=actor, segment=segment)
    clean_rules = _check_segment_rules(rules)
    _check_unique_name(name=name, created_by=segment.created_by, exclude_pk=segment.pk)
    before = {"name": segment.name, "description": segment.description, "rules": segment.rules,
              "is_shared": segment.is_shared}  # fmt: skip
    segment.name, segment.description = name.strip(), description
    segment.rules, segment.is_shared = clean_rules, is_shared
    segment.full_clean()
    segment.save()
    after = {"name": segment.name, "description": segment.description, "rules": segment.rules,
             "is_shared": segment.is_shared}  # fmt: skip
    changes = audit_diff(before, after)
    if changes:
        audit_record(actor=actor, action="segmentation.segment_update", target=segment, changes=changes)
    return segment


@transaction.atomic
def segment_delete(*, actor: User, segment: Segment) -> None:
    _check_can_edit(actor=actor, segment=segment)
    audit_record(
        actor=actor,
        action="segmentation.segment_delete",
        target=segment,
        changes={"name": {"old": segment.name, "new": None}, "rules": {"old": segment.rules, "new": None}},
    )
    segment.delete()


# --------------------------------------------------------------------------------------------------
# Churn alerts
# --------------------------------------------------------------------------------------------------
def _bump_alerts_version() -> None:
    """Invalidate every cached navigation badge of this tenant (the cache key is per schema)."""
    try:
        cache.incr(ALERTS_VERSION_KEY)
    except ValueError:
        cache.set(ALERTS_VERSION_KEY, 1, None)


def alert_create(
    *, customer, reason: str, details: dict | None = None, run: RecomputeRun | None = None
) -> ChurnAlert | None:
    """Raise one churn alert for the customer's current owner.

    Returns None (and creates nothing) when an open alert for the same customer and reason exists: a
    recompute that finds the same state never raises a second alert.
    """
    created = alert_create_many(items=[(customer, reason, details or {})], run=run)
    return created[0] if created else None


def alert_create_many(
    *, items: list[tuple[Any, str, dict]], run: RecomputeRun | None = None
) -> list[ChurnAlert]:
    """Raise alerts for [(customer, reason, details)] in bulk: one query for the open alerts that
    already exist (those are skipped), one INSERT per 1,000 new ones. Every alert, single or from a
    recompute, is created here, so this is where the interactions app turns each new alert into a
    follow-up for its owner."""
    if not items:
        return []
    valid_reasons = set(ChurnAlert.Reason.values)
    for _customer, reason, _details in items:
        if reason not in valid_reasons:
            raise ValidationError({"reason": [_t("Unknown alert reason “%(reason)s”.") % {"reason": reason}]})
    customer_ids = {customer.pk for customer, _reason, _details in items}
    existing = set(
        ChurnAlert.objects.filter(customer_id__in=customer_ids, status=ChurnAlert.Status.OPEN).values_list(
            "customer_id", "reason"
        )
    )
    alerts, seen = [], set()
    for customer, reason, details in items:
        key = (customer.pk, reason)
        if key in existing or key in seen:
            continue
        seen.add(key)
        alerts.append(
            ChurnAlert(
                customer=customer, owner_id=customer.owner_id, reason=reason, details=details or {}, run=run
            )
        )
    if not alerts:
        return []
    try:
        with transaction.atomic():
            created = ChurnAlert.objects.bulk_create(alerts, batch_size=1000)
    except IntegrityError:
        # Raced with another writer that opened one of these alerts meanwhile: create the rest.
        created = []
        for alert in alerts:
            try:
                with transaction.atomic():
                    alert.save()
                created.append(alert)
            except IntegrityError:
                continue
    transaction.on_commit(_bump_alerts_version)
    churn_alerts_raised_on_commit(
        alert_ids=[alert.pk for alert in created], customer_ids=[alert.customer_id for alert in created]
    )
    return created


def _alert_act(*, actor: User, alert: ChurnAlert, status: str) -> ChurnAlert:
    if not (actor.is_manager_or_admin or alert.owner_id == actor.pk):
        raise PermissionDenied
    if alert.status != ChurnAlert.Status.OPEN:
        raise ValidationError(_t("This alert has already been handled."))
    old_status = alert.status
    alert.status = status
    alert.acted_by = actor
    alert.acted_at = timezone.now()
    alert.save(update_fields=["status", "acted_by", "acted_at"])
    audit_record(
        actor=actor,
        action=f"segmentation.alert_{status}",
        target=alert.customer,
        changes={"alert": {"old": old_status, "new": status}, "reason": {"old": None, "new": alert.reason}},
        label=str(alert.customer),
    )
    transaction.on_commit(_bump_alerts_version)
    return alert


@transaction.atomic
def alert_acknowledge(*, actor: User, alert: ChurnAlert) -> ChurnAlert:
    return _alert_act(actor=actor, alert=alert, status=ChurnAlert.Status.ACKNOWLEDGED)


@transaction.atomic
def alert_dismiss(*, actor: User, alert: ChurnAlert) -> ChurnAlert:
    return _alert_act(actor=actor, alert=alert, status=ChurnAlert.Status.DISMISSED)


#: At most this many alerts in one bulk action (one page of the queue is 25).
MAX_BULK_ALERTS = 200


def _bulk_alerts(alerts: list[ChurnAlert]) -> list[ChurnAlert]:
    if len(alerts) > MAX_BULK_ALERTS:
        raise ValidationError(
            _t("Select at most %(max)s alerts at a time.") % {"max": MAX_BULK_ALERTS}, code="too_many"
        )
    return alerts


@transaction.atomic
def alert_acknowledge_many(*, actor: User, alerts: list[ChurnAlert]) -> int:
    """Acknowledge the open alerts among `alerts` that `actor` may handle (their owner, or a manager or
    admin); the rest are left as they are. One audit record per alert. Returns how many changed."""
    alerts = _bulk_alerts(alerts)
    now = timezone.now()
    changed = [
        alert
        for alert in alerts
        if alert.status == ChurnAlert.Status.OPEN
        and (actor.is_manager_or_admin or alert.owner_id == actor.pk)
    ]
    if not changed:
        return 0
    # Only rows still open at the moment of the update change (a concurrent handler wins the others).
    updated_ids = set(
        ChurnAlert.objects.filter(pk__in=[a.pk for a in changed], status=ChurnAlert.Status.OPEN)
        .select_for_update()
        .values_list("pk", flat=True)
    )
    ChurnAlert.objects.filter(pk__in=updated_ids).update(
        status=ChurnAlert.Status.ACKNOWLEDGED, acted_by=actor, acted_at=now
    )
    for alert in changed:
        if alert.pk not in updated_ids:
            continue
        audit_record(
            actor=actor,
            action="segmentation.alert_acknowledged",
            target=alert.customer,
            changes={
                "alert": {"old": ChurnAlert.Status.OPEN.value, "new": ChurnAlert.Status.ACKNOWLEDGED.value},
                "reason": {"old": None, "new": alert.reason},
            },
            label=str(alert.customer),
        )
    transaction.on_commit(_bump_alerts_version)
    return len(updated_ids)


@transaction.atomic
def alert_assign_many(*, actor: User, alerts: list[ChurnAlert], owner: User) -> int:
    """Give the alerts to `owner` to handle (managers and admins only; the customer's own owner does
    not change). One audit record per alert whose owner changed. Returns how many changed."""
    if not actor.is_manager_or_admin:
        raise PermissionDenied
    alerts = _bulk_alerts(alerts)
    if owner is None or not owner.is_active:
        raise ValidationError({"owner": [_t("Choose an active user to assign the alerts to.")]})
    changed = [alert for alert in alerts if alert.owner_id != owner.pk]
    if not changed:
        return 0
    ChurnAlert.objects.filter(pk__in=[a.pk for a in changed]).update(owner=owner)
    for alert in changed:
        audit_record(
            actor=actor,
            action="segmentation.alert_assigned",
            target=alert.customer,
            changes={
                "alert_owner": {"old": str(alert.owner) if alert.owner_id else None, "new": str(owner)},
                "reason": {"old": None, "new": alert.reason},
            },
            label=str(alert.customer),
        )
    transaction.on_commit(_bump_alerts_version)
    return len(changed)


def alert_queue_seen(*, user: User) -> None:
    """The user opened the alerts queue: what was raised until now is no longer new for them."""
    # One INSERT ... ON CONFLICT UPDATE: the same single query on the first visit and every later one.
    AlertQueueVisit.objects.bulk_create(
        [AlertQueueVisit(user=user, seen_at=timezone.now())],
        update_conflicts=True,
        unique_fields=["user"],
        update_fields=["seen_at"],
    )
    forget_new_alert_count(user=user)


# --------------------------------------------------------------------------------------------------
# Recompute
# --------------------------------------------------------------------------------------------------
def recompute_request(
    *, user: User | None = None, trigger: str = RecomputeRun.Trigger.MANUAL
) -> BackgroundJob:
    """Queue a recompute of the current tenant, or join the one already waiting or running.

    Used by the segments page (manager/admin), the nightly dispatcher and the customer import
    (`recompute_request(user=importer, trigger="import")` after an import finishes). The task is sent
    when the surrounding transaction commits.
    """
    from .tasks import recompute_task

    job, created = job_get_or_create_active(
        kind=RECOMPUTE_JOB_KIND, created_by=user, params={"trigger": str(trigger)}
    )
    if created:
        job_enqueue(job=job, task=recompute_task, trigger=str(trigger))
    return job


# --------------------------------------------------------------------------------------------------
# Customer merge hook
# --------------------------------------------------------------------------------------------------
def merge_move(survivor, merged) -> dict:
    """Move the merged customer's stage/segment history and alerts to the survivor.

    Scores are derived data: the merged customer's score row is deleted and the survivor's is
    recomputed by the next recompute (nightly or on demand), so undo does not restore it. An open alert
    whose reason the survivor already has open stays with the merged customer (it is hidden with
    them) so the "one open alert per reason" rule holds.
    """
    stage_ids = list(LifecycleTransition.objects.filter(customer=merged).values_list("pk", flat=True))
    segment_ids = list(SegmentTransition.objects.filter(customer=merged).values_list("pk", flat=True))
    survivor_open = set(
        ChurnAlert.objects.filter(customer=survivor, status=ChurnAlert.Status.OPEN).values_list(
            "reason", flat=True
        )
    )
    alerts = ChurnAlert.objects.filter(customer=merged).exclude(
        status=ChurnAlert.Status.OPEN, reason__in=survivor_open
    )
    alert_ids = list(alerts.values_list("pk", flat=True))
    LifecycleTransition.objects.filter(pk__in=stage_ids).update(customer=survivor)
    SegmentTransition.objects.filter(pk__in=segment_ids).update(customer=survivor)
    ChurnAlert.objects.filter(pk__in=alert_ids).update(customer=survivor)
    CustomerScore.objects.filter(customer=merged).delete()
    transaction.on_commit(_bump_alerts_version)
    return {"stage_transitions": stage_ids, "segment_transitions": segment_ids, "alerts": alert_ids}


def merge_undo(survivor, merged, info: dict) -> None:
    LifecycleTransition.objects.filter(pk__in=info.get("stage_transitions", []), customer=survivor).update(
        customer=merged
    )
    SegmentTransition.objects.filter(pk__in=info.get("segment_transitions", []), customer=survivor).update(
        customer=merged
    )
    ChurnAlert.objects.filter(pk__in=info.get("alerts", []), customer=survivor).update(customer=merged)
    transaction.on_commit(_bump_alerts_version)
