"""Writes of follow-ups and follow-up rules: atomic, validated, audited.

Sales staff create and handle follow-ups on customers they can see and assign them to themselves;
managers and admins assign to anyone active and reassign. Follow-ups made by rules carry a
`source_key` naming the rule and the trigger occurrence: one occurrence gives one follow-up, however
often the signal arrives or however many workers race (`followups_create_from_rule`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.accounts.models import User
from crm.accounts.permissions import ALL_ROLES, MANAGERS, user_has_role, visible_to
from crm.audit.models import AuditEvent
from crm.audit.services import audit_diff, audit_record
from customers.models import Customer

from .models import NOTES_MAX, TITLE_MAX, FollowUp, FollowUpRule
from .selectors import due_unreminded, followup_visible

logger = logging.getLogger(__name__)

# A due time further away than this is a typo (a year 2062 instead of 2026), not a plan.
MAX_DAYS_AHEAD = 730
# A follow-up may be logged as already overdue, but not from long ago.
MAX_DAYS_BACK = 31
MAX_SNOOZE_DAYS = 90
BULK_LIMIT = 500
SNOOZE_CHOICES_HOURS = (1, 4, 24, 72, 168)


def _now() -> datetime:
    return timezone.now()


def _user_label(user: User | None) -> str | None:
    return user.get_full_name() if user is not None else None


def _snapshot(followup: FollowUp) -> dict[str, Any]:
    return {
        "title": followup.title,
        "notes": followup.notes,
        "due_at": followup.due_at.isoformat() if followup.due_at else None,
        "status": followup.status,
        "assignee": _user_label(followup.assignee) if followup.assignee_id else None,
        "customer": followup.customer_id,
        "source": followup.source,
    }


def _audit(*, actor, action: str, followup: FollowUp, before: dict[str, Any]) -> None:
    audit_record(actor=actor, action=action, target=followup, changes=audit_diff(before, _snapshot(followup)))


def _require_actor(actor: User) -> None:
    if not user_has_role(actor, ALL_ROLES):
        raise PermissionDenied(_("You are not allowed to do that."))


def _check_due(due_at: Any, errors: dict[str, list], *, field: str = "due_at") -> None:
    if not isinstance(due_at, datetime) or timezone.is_naive(due_at):
        errors.setdefault(field, []).append(ValidationError(_("Enter a due date and time."), code="invalid"))
        return
    now = _now()
    if due_at > now + timedelta(days=MAX_DAYS_AHEAD):
        errors.setdefault(field, []).append(
            ValidationError(
                _("A follow-up can be due at most %(days)d days ahead.") % {"days": MAX_DAYS_AHEAD},
                code="too_far",
            )
        )
    elif due_at < now - timedelta(days=MAX_DAYS_BACK):
        errors.setdefault(field, []).append(
            ValidationError(
                _("A follow-up can be due at most %(days)d days in the past.") % {"days": MAX_DAYS_BACK},
                code="too_early",
            )
        )


def _check_assignee(actor: User | None, assignee: Any, errors: dict[str, list]) -> None:
    """An active user of this tenant; sales staff may only assign to themselves."""
    valid = (
        isinstance(assignee, User)
        and assignee.pk is not None
        # Read from the database, not the object passed in: this schema's user of that id (not a user
        # of another tenant), active and with a role now.
        and User.objects.filter(
            pk=assignee.pk, email=assignee.email, is_active=True, role__in=ALL_ROLES
        ).exists()
    )
    if not valid:
        errors.setdefault("assignee", []).append(
            ValidationError(_("Choose an active user of this company."), code="invalid_assignee")
        )
    elif actor is not None and not user_has_role(actor, MANAGERS) and assignee.pk != actor.pk:
        errors.setdefault("assignee", []).append(
            ValidationError(_("You can assign follow-ups to yourself only."), code="not_yours")
        )


def _clean_text(title: Any, notes: Any, errors: dict[str, list]) -> tuple[str, str]:
    title = " ".join(str(title or "").split())
    notes = str(notes or "").strip()
    if not title:
        errors.setdefault("title", []).append(ValidationError(_("Enter a title."), code="required"))
    elif len(title) > TITLE_MAX:
        errors.setdefault("title", []).append(
            ValidationError(_("Keep the title under %(n)d characters.") % {"n": TITLE_MAX}, code="max_length")
        )
    if len(notes) > NOTES_MAX:
        errors.setdefault("notes", []).append(
            ValidationError(_("Keep the notes under %(n)d characters.") % {"n": NOTES_MAX}, code="max_length")
        )
    return title, notes


def _check_customer(actor: User, customer: Customer) -> None:
    """The actor must see the customer, and it must not be in the recycle bin."""
    qs = Customer.objects.filter(pk=customer.pk, deleted_at__isnull=True)
    if not visible_to(qs, actor).exists():
        raise PermissionDenied(_("You cannot see this customer."))


def _check_can_handle(actor: User, followup: FollowUp) -> None:
    _require_actor(actor)
    if not followup_visible(user=actor).filter(pk=followup.pk).exists():
        raise PermissionDenied(_("You cannot change this follow-up."))


def _lock(followup: FollowUp) -> FollowUp:
    return FollowUp.objects.select_for_update().select_related("assignee", "customer").get(pk=followup.pk)


# --- create ----------------------------------------------------------------------------------------


@transaction.atomic
def followup_create(
    *,
    actor: User,
    customer: Customer,
    assignee: User,
    due_at: datetime,
    title: str,
    notes: str = "",
) -> FollowUp:
    """A manual follow-up (360 page, My day, the interaction form)."""
    _require_actor(actor)
    _check_customer(actor, customer)
    errors: dict[str, list] = {}
    title, notes = _clean_text(title, notes, errors)
    _check_due(due_at, errors)
    _check_assignee(actor, assignee, errors)
    if errors:
        raise ValidationError(errors)
    followup = FollowUp(
        customer=customer,
        assignee=assignee,
        due_at=due_at,
        title=title,
        notes=notes,
        source=FollowUp.Source.MANUAL,
        created_by=actor,
    )
    followup.full_clean(exclude=["source_key", "rule"])
    followup.save()
    _audit(actor=actor, action="followup.created", followup=followup, before={})
    return followup


@transaction.atomic
def followups_create_many(
    *,
    actor: User,
    customer_ids: Sequence[int],
    due_at: datetime,
    title: str,
    notes: str = "",
    assignee: User | None = None,
) -> list[FollowUp]:
    """The customer list's bulk action: one follow-up per selected customer the actor can see. The
    assignee is `assignee` when given, else each customer's owner (the actor when it has none, or
    when the actor is a sales rep)."""
    _require_actor(actor)
    errors: dict[str, list] = {}
    title, notes = _clean_text(title, notes, errors)
    _check_due(due_at, errors)
    if assignee is not None:
        _check_assignee(actor, assignee, errors)
    ids = sorted({int(pk) for pk in customer_ids})
    if not ids:
        errors.setdefault("__all__", []).append(ValidationError(_("Select customers first."), code="empty"))
    elif len(ids) > BULK_LIMIT:
        errors.setdefault("__all__", []).append(
            ValidationError(
                _("Select at most %(n)d customers at a time.") % {"n": BULK_LIMIT}, code="too_many"
            )
        )
    if errors:
        raise ValidationError(errors)
    customers = list(
        visible_to(Customer.objects.filter(pk__in=ids, deleted_at__isnull=True), actor)
        .select_related("owner")
        .order_by("pk")
    )
    is_manager = user_has_role(actor, MANAGERS)

    def owner_of(customer: Customer) -> User:
        if assignee is not None:
            return assignee
        if is_manager and customer.owner_id and user_has_role(customer.owner, ALL_ROLES):
            return customer.owner
        return actor

    rows = [
        FollowUp(
            customer=customer,
            assignee=owner_of(customer),
            due_at=due_at,
            title=title,
            notes=notes,
            source=FollowUp.Source.MANUAL,
            created_by=actor,
        )
        for customer in customers
    ]
    created = FollowUp.objects.bulk_create(rows, batch_size=500)
    _audit_many(actor=actor, action="followup.created", followups=created)
    return created


def _audit_many(*, actor, action: str, followups: Iterable[FollowUp]) -> None:
    """One INSERT for the audit rows of many new follow-ups (what audit_record would write)."""
    has_actor = actor is not None and getattr(actor, "pk", None)
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                actor=actor if has_actor else None,
                actor_label=actor.get_full_name() if has_actor else "",
                action=action,
                target_type=FollowUp._meta.label_lower,
                target_id=str(followup.pk),
                target_label=str(followup)[:300],
                changes=audit_diff({}, _snapshot(followup)),
            )
            for followup in followups
        ],
        batch_size=500,
    )


@dataclass(frozen=True)
class RuleOccurrence:
    """One thing that happened to a customer that a rule turns into a follow-up; `key` names the
    occurrence (e.g. "alert:812"), so the follow-up's source_key is "rule:<rule id>:<key>"."""

    customer_id: int
    key: str


SOURCE_OF_TRIGGER = {
    FollowUpRule.Trigger.CUSTOMER_CREATED: FollowUp.Source.NEW_CUSTOMER,
    FollowUpRule.Trigger.FIRST_PURCHASE: FollowUp.Source.FIRST_PURCHASE,
    FollowUpRule.Trigger.LIFECYCLE_STAGE: FollowUp.Source.LIFECYCLE_STAGE,
    FollowUpRule.Trigger.SEGMENT: FollowUp.Source.SEGMENT,
    FollowUpRule.Trigger.CHURN_ALERT: FollowUp.Source.CHURN_ALERT,
}


def rule_source_key(rule: FollowUpRule, occurrence_key: str) -> str:
    return f"rule:{rule.pk}:{occurrence_key}"[:120]


@transaction.atomic
def followups_create_from_rule(
    *, rule: FollowUpRule, occurrences: Sequence[RuleOccurrence], now: datetime | None = None
) -> list[FollowUp]:
    """Create the rule's follow-up for each occurrence that has none yet; returns the new ones.

    Idempotent and race-safe: occurrences whose source_key exists are skipped (one query), the rest
    are inserted in one statement; if a concurrent worker inserted one of them meanwhile, the unique
    source_key refuses it and the others are inserted one by one, each in its own savepoint.
    The assignee is the customer's owner when active, else the rule's fallback user; an occurrence
    with neither (or a customer in the recycle bin) is skipped and logged.
    """
    if not occurrences:
        return []
    now = now or _now()
    keyed = {rule_source_key(rule, o.key): o for o in occurrences}
    existing = set(FollowUp.objects.filter(source_key__in=list(keyed)).values_list("source_key", flat=True))
    wanted = {key: o for key, o in keyed.items() if key not in existing}
    if not wanted:
        return []
    customers = Customer.objects.filter(
        pk__in={o.customer_id for o in wanted.values()}, deleted_at__isnull=True
    ).select_related("owner")
    customers = {c.pk: c for c in customers}
    fallback = rule.fallback_assignee if rule.fallback_assignee_id else None
    if fallback is not None and not user_has_role(fallback, ALL_ROLES):
        fallback = None
    rows = []
    for key, occurrence in wanted.items():
        customer = customers.get(occurrence.customer_id)
        if customer is None:
            continue
        assignee = (
            customer.owner if customer.owner_id and user_has_role(customer.owner, ALL_ROLES) else fallback
        )
        if assignee is None:
            logger.info(
                "follow-up rule %s: customer %s has no active owner and no fallback", rule.pk, customer.pk
            )
            continue
        rows.append(
            FollowUp(
                customer=customer,
                assignee=assignee,
                due_at=now + timedelta(days=rule.delay_days),
                title=rule.title,
                source=SOURCE_OF_TRIGGER.get(rule.trigger, FollowUp.Source.RULE),
                source_key=key,
                rule=rule,
            )
        )
    if not rows:
        return []
    try:
        with transaction.atomic():
            created = FollowUp.objects.bulk_create(rows, batch_size=500)
    except IntegrityError:
        created = []
        for row in rows:
            try:
                with transaction.atomic():
                    row.save()
                created.append(row)
            except IntegrityError:  # another worker created this one meanwhile
                continue
    _audit_many(actor=None, action="followup.created", followups=created)
    return created


@transaction.atomic
def followup_create_for_source(
    *,
    customer: Customer,
    assignee: User,
    source_key: str,
    due_at: datetime,
    title: str,
    notes: str = "",
    source: str = FollowUp.Source.RULE,
) -> FollowUp | None:
    """A follow-up another app raises for something that happened (e.g. a survey detractor,
    source_key "survey:<response id>"): at most one per `source_key`, however often it is asked for.
    Returns the new follow-up, or None when one exists already for that key or the assignee cannot
    take follow-ups."""
    if not source_key or not user_has_role(assignee, ALL_ROLES):
        return None
    errors: dict[str, list] = {}
    title, notes = _clean_text(title, notes, errors)
    if errors:
        raise ValidationError(errors)
    followup = FollowUp(
        customer=customer,
        assignee=assignee,
        due_at=due_at,
        title=title,
        notes=notes,
        source=source,
        source_key=source_key[:120],
    )
    try:
        with transaction.atomic():
            followup.save()
    except IntegrityError:  # raised already (a redelivered signal, a second worker)
        return None
    _audit_many(actor=None, action="followup.created", followups=[followup])
    return followup


# --- handle ----------------------------------------------------------------------------------------


@transaction.atomic
def followup_complete(*, actor: User, followup: FollowUp) -> FollowUp:
    _check_can_handle(actor, followup)
    followup = _lock(followup)
    if followup.status != FollowUp.Status.OPEN:
        raise ValidationError(_("This follow-up is no longer open."), code="closed")
    before = _snapshot(followup)
    followup.status = FollowUp.Status.DONE
    followup.completed_at = _now()
    followup.completed_by = actor
    followup.save(update_fields=["status", "completed_at", "completed_by", "updated_at"])
    _audit(actor=actor, action="followup.completed", followup=followup, before=before)
    return followup


@transaction.atomic
def followup_cancel(*, actor: User, followup: FollowUp) -> FollowUp:
    _check_can_handle(actor, followup)
    followup = _lock(followup)
    if followup.status != FollowUp.Status.OPEN:
        raise ValidationError(_("This follow-up is no longer open."), code="closed")
    before = _snapshot(followup)
    followup.status = FollowUp.Status.CANCELLED
    followup.completed_at = _now()
    followup.completed_by = actor
    followup.save(update_fields=["status", "completed_at", "completed_by", "updated_at"])
    _audit(actor=actor, action="followup.cancelled", followup=followup, before=before)
    return followup


def _move_due(*, actor: User, followup: FollowUp, due_at: datetime, action: str, snooze: bool) -> FollowUp:
    _check_can_handle(actor, followup)
    errors: dict[str, list] = {}
    _check_due(due_at, errors)
    if errors:
        raise ValidationError(errors)
    followup = _lock(followup)
    if followup.status != FollowUp.Status.OPEN:
        raise ValidationError(_("This follow-up is no longer open."), code="closed")
    before = _snapshot(followup)
    followup.due_at = due_at
    followup.reminded_at = None  # the new time reminds again (under a new notification key)
    fields = ["due_at", "reminded_at", "updated_at"]
    if snooze:
        followup.snooze_count = min(followup.snooze_count + 1, 32767)
        fields.append("snooze_count")
    followup.save(update_fields=fields)
    _audit(actor=actor, action=action, followup=followup, before=before)
    return followup


@transaction.atomic
def followup_snooze(*, actor: User, followup: FollowUp, hours: int) -> FollowUp:
    """Move the due time `hours` from now (or from the due time, when that is still ahead)."""
    if not isinstance(hours, int) or not 1 <= hours <= MAX_SNOOZE_DAYS * 24:
        raise ValidationError(
            {"hours": [_("Snooze for 1 hour up to %(days)d days.") % {"days": MAX_SNOOZE_DAYS}]}
        )
    base = max(_now(), followup.due_at)
    return _move_due(
        actor=actor,
        followup=followup,
        due_at=base + timedelta(hours=hours),
        action="followup.snoozed",
        snooze=True,
    )


@transaction.atomic
def followup_reschedule(*, actor: User, followup: FollowUp, due_at: datetime) -> FollowUp:
    return _move_due(
        actor=actor, followup=followup, due_at=due_at, action="followup.rescheduled", snooze=False
    )


@transaction.atomic
def followup_reassign(*, actor: User, followup: FollowUp, assignee: User) -> FollowUp:
    """Give the follow-up to someone else (managers and admins)."""
    if not user_has_role(actor, MANAGERS):
        raise PermissionDenied(_("Only managers and admins can reassign follow-ups."))
    _check_can_handle(actor, followup)
    errors: dict[str, list] = {}
    _check_assignee(actor, assignee, errors)
    if errors:
        raise ValidationError(errors)
    followup = _lock(followup)
    if followup.status != FollowUp.Status.OPEN:
        raise ValidationError(_("This follow-up is no longer open."), code="closed")
    if followup.assignee_id == assignee.pk:
        return followup
    before = _snapshot(followup)
    followup.assignee = assignee
    followup.reminded_at = None
    followup.save(update_fields=["assignee", "reminded_at", "updated_at"])
    _audit(actor=actor, action="followup.reassigned", followup=followup, before=before)
    return followup


# --- reminders -------------------------------------------------------------------------------------


def reminder_key(followup: FollowUp) -> str:
    """The notification key of a follow-up's due reminder: a retry finds the same key (never two
    notifications), a snoozed or rescheduled follow-up a new one (it reminds again)."""
    return f"followup:{followup.pk}:{followup.due_at.isoformat()}"


REMINDER_KIND = "followups.due"
REMINDER_BATCH = 200
# Batches per run: a backlog larger than this waits for the next minute's run (a run stays short, and a
# batch that somehow stayed unmarked can never keep a worker busy forever).
REMINDER_MAX_BATCHES = 50


def _reminder_spec(followup: FollowUp, spec_class):
    """The notification of one due follow-up, in its assignee's language."""
    from django.urls import reverse
    from django.utils import translation

    language = followup.assignee.language or getattr(connection.tenant, "default_language", "") or "en"
    with translation.override(language):
        title = _("Follow-up due: %(title)s") % {"title": followup.title}
        body = _("Customer: %(customer)s") % {"customer": followup.customer.name}
    return spec_class(
        recipient=followup.assignee_id,
        key=reminder_key(followup),
        title=title,
        body=body,
        url=reverse("customers:detail", args=[followup.customer_id]),
    )


def followup_reminders_send(*, now: datetime | None = None, batch_size: int = REMINDER_BATCH) -> int:
    """Hand every follow-up that fell due (open, not reminded yet) to the notifications service once.

    In batches, each in one transaction: the batch is claimed with FOR UPDATE SKIP LOCKED (a second
    worker takes the next rows), `notify_many` creates the notifications (keyed by follow-up and due
    time: a retry after a crash finds them and creates nothing twice) and `reminded_at` is set. A crash
    before the commit leaves nothing behind; one after it leaves nothing to do."""
    from crm.notifications.services import NotificationSpec, notify_many

    now = now or _now()
    sent = 0
    for _batch in range(REMINDER_MAX_BATCHES):
        with transaction.atomic():
            batch = list(
                due_unreminded(now=now)
                .select_related("customer", "assignee")
                .select_for_update(skip_locked=True, of=("self",))[:batch_size]
            )
            if not batch:
                return sent
            notify_many(kind=REMINDER_KIND, items=[_reminder_spec(f, NotificationSpec) for f in batch])
            FollowUp.objects.filter(pk__in=[f.pk for f in batch]).update(reminded_at=now)
        sent += len(batch)
    return sent


# --- merge -----------------------------------------------------------------------------------------


def merge_move(survivor: Customer, merged: Customer) -> dict:
    """Merge hook: the merged customer's follow-ups move to the survivor (ids kept for undo)."""
    ids = list(FollowUp.objects.filter(customer=merged).order_by("pk").values_list("pk", flat=True))
    if ids:
        FollowUp.objects.filter(pk__in=ids).update(customer=survivor, updated_at=_now())
    return {"followups": ids}


def merge_undo(survivor: Customer, merged: Customer, info: dict) -> None:
    ids = [int(pk) for pk in (info or {}).get("followups", [])]
    if ids:
        FollowUp.objects.filter(pk__in=ids, customer=survivor).update(customer=merged, updated_at=_now())


# --- rules -----------------------------------------------------------------------------------------


def _rule_snapshot(rule: FollowUpRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "trigger": rule.trigger,
        "stage": rule.stage,
        "segment": rule.segment_id,
        "delay_days": rule.delay_days,
        "title": rule.title,
        "fallback_assignee": _user_label(rule.fallback_assignee) if rule.fallback_assignee_id else None,
        "is_active": rule.is_active,
    }


RULE_FIELDS = ("name", "trigger", "stage", "segment", "delay_days", "title", "fallback_assignee", "is_active")
MAX_RULE_DELAY_DAYS = 365


def _clean_rule(rule: FollowUpRule) -> None:
    from segmentation.labels import LifecycleStage

    errors: dict[str, list] = {}
    rule.name = " ".join(str(rule.name or "").split())
    rule.title = " ".join(str(rule.title or "").split())
    if not rule.name:
        errors.setdefault("name", []).append(_("Enter a name."))
    if not rule.title:
        errors.setdefault("title", []).append(_("Enter a title."))
    if not isinstance(rule.delay_days, int) or not 0 <= rule.delay_days <= MAX_RULE_DELAY_DAYS:
        errors.setdefault("delay_days", []).append(
            _("Enter a number of days from 0 to %(n)d.") % {"n": MAX_RULE_DELAY_DAYS}
        )
    if rule.trigger == FollowUpRule.Trigger.LIFECYCLE_STAGE:
        if rule.stage not in LifecycleStage.values:
            errors.setdefault("stage", []).append(_("Choose the lifecycle stage."))
    else:
        rule.stage = ""
    if rule.trigger == FollowUpRule.Trigger.SEGMENT:
        if rule.segment_id is None:
            errors.setdefault("segment", []).append(_("Choose the saved segment."))
    else:
        rule.segment = None
    if rule.fallback_assignee_id is not None:
        fallback = rule.fallback_assignee
        if not (
            user_has_role(fallback, ALL_ROLES)
            and User.objects.filter(pk=fallback.pk, is_active=True).exists()
        ):
            errors.setdefault("fallback_assignee", []).append(_("Choose an active user of this company."))
    if errors:
        raise ValidationError(errors)
    rule.full_clean(exclude=["members_since", "created_by"])


def _require_admin(actor: User) -> None:
    if not user_has_role(actor, ("admin",)):
        raise PermissionDenied(_("Only admins can change follow-up rules."))


@transaction.atomic
def rule_create(*, actor: User, **values: Any) -> FollowUpRule:
    _require_admin(actor)
    rule = FollowUpRule(created_by=actor, **{k: v for k, v in values.items() if k in RULE_FIELDS})
    _clean_rule(rule)
    rule.save()
    audit_record(
        actor=actor, action="followup_rule.created", target=rule, changes=audit_diff({}, _rule_snapshot(rule))
    )
    return rule


@transaction.atomic
def rule_update(*, actor: User, rule: FollowUpRule, **values: Any) -> FollowUpRule:
    _require_admin(actor)
    rule = FollowUpRule.objects.select_for_update().get(pk=rule.pk)
    before = _rule_snapshot(rule)
    old_segment = rule.segment_id
    for key, value in values.items():
        if key in RULE_FIELDS:
            setattr(rule, key, value)
    _clean_rule(rule)
    if rule.segment_id != old_segment or rule.trigger != FollowUpRule.Trigger.SEGMENT:
        # Another segment (or none): the remembered members no longer mean anything.
        rule.members.all().delete()
        rule.members_since = None
    rule.save()
    changes = audit_diff(before, _rule_snapshot(rule))
    if changes:
        audit_record(actor=actor, action="followup_rule.updated", target=rule, changes=changes)
    return rule
