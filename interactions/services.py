"""Writes to the interaction log. Every change goes through one of these functions: validated, atomic,
recorded in the audit log with old and new values.

Role rules enforced here (views check them too):
- anyone may log an interaction with a customer they can see (sales: their own and shared customers);
- the author, managers and admins edit, delete and restore an interaction;
- only admins configure the outcomes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Max
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from crm.accounts.models import User
from crm.accounts.permissions import ADMINS, MANAGERS, user_has_role, visible_to
from crm.audit.services import audit_diff, audit_record
from customers.models import Customer, Order

from .labels import Channel, Direction
from .models import Interaction, InteractionAttachment, InteractionOutcome
from .signals import interaction_logged_on_commit

SUBJECT_MAX = 200
NOTES_MAX = 10_000
DURATION_MAX = 24 * 60
ATTACHMENTS_PER_INTERACTION = 10
OUTCOME_NAME_MAX = 80

EDITABLE_FIELDS = (
    "channel",
    "direction",
    "occurred_at",
    "duration_minutes",
    "subject",
    "notes",
    "outcome",
    "order",
)


# --- helpers ---------------------------------------------------------------------------------------


def can_change(actor: User | None, interaction: Interaction) -> bool:
    """The author, managers and admins edit, delete and restore an interaction."""
    return user_has_role(actor, MANAGERS) or (
        user_has_role(actor, ("sales",))
        and interaction.author_id is not None
        and interaction.author_id == actor.pk
    )


def interaction_snapshot(interaction: Interaction) -> dict[str, Any]:
    """The audited state of an interaction (JSON-safe)."""
    return {
        "customer": interaction.customer_id,
        "channel": interaction.channel,
        "direction": interaction.direction,
        "occurred_at": interaction.occurred_at.isoformat() if interaction.occurred_at else None,
        "duration_minutes": interaction.duration_minutes,
        "subject": interaction.subject,
        "notes": interaction.notes,
        "outcome": interaction.outcome.key if interaction.outcome_id else None,
        "order": interaction.order.number if interaction.order_id else None,
    }


def _add(errors: dict[str, list], field: str, message, code: str) -> None:
    errors.setdefault(field, []).append(ValidationError(message, code=code))


def future_limit() -> timedelta:
    return timedelta(minutes=settings.INTERACTION_FUTURE_LIMIT_MINUTES)


def _clean_values(
    *,
    customer: Customer,
    values: dict[str, Any],
    errors: dict[str, list],
    previous_outcome_id: int | None = None,
) -> dict[str, Any]:
    """Normalise and check the editable values, collecting field errors."""
    cleaned: dict[str, Any] = {}
    channel = values.get("channel")
    if channel not in Channel.values:
        _add(errors, "channel", _("Choose one of the listed channels."), "unknown_channel")
    cleaned["channel"] = channel
    direction = values.get("direction")
    if direction not in Direction.values:
        _add(errors, "direction", _("Choose inbound or outbound."), "unknown_direction")
    cleaned["direction"] = direction

    occurred_at = values.get("occurred_at")
    if not isinstance(occurred_at, datetime):
        _add(errors, "occurred_at", _("Enter when it happened."), "required")
    else:
        if timezone.is_naive(occurred_at):
            occurred_at = timezone.make_aware(occurred_at)
        limit = future_limit()
        if occurred_at > timezone.now() + limit:
            _add(
                errors,
                "occurred_at",
                _("An interaction cannot be dated in the future (more than %(minutes)d minutes ahead).")
                % {"minutes": int(limit.total_seconds() // 60)},
                "future",
            )
        elif occurred_at.year < 1970:
            _add(errors, "occurred_at", _("Enter a date after 1970."), "too_early")
    cleaned["occurred_at"] = occurred_at

    duration = values.get("duration_minutes")
    valid_duration = (
        isinstance(duration, int) and not isinstance(duration, bool) and 0 <= duration <= DURATION_MAX
    )
    if duration is not None and not valid_duration:
        _add(
            errors,
            "duration_minutes",
            _("Enter a duration between 0 and %(max)d minutes.") % {"max": DURATION_MAX},
            "duration",
        )
    cleaned["duration_minutes"] = duration

    subject = " ".join(str(values.get("subject") or "").split())
    if len(subject) > SUBJECT_MAX:
        _add(
            errors, "subject", _("Keep the subject within %(max)d characters.") % {"max": SUBJECT_MAX}, "long"
        )
    cleaned["subject"] = subject
    notes = str(values.get("notes") or "").strip().replace("\r\n", "\n")
    if len(notes) > NOTES_MAX:
        _add(errors, "notes", _("Keep the notes within %(max)d characters.") % {"max": NOTES_MAX}, "long")
    cleaned["notes"] = notes

    outcome = values.get("outcome")
    usable = isinstance(outcome, InteractionOutcome) and (
        outcome.is_active or outcome.pk == previous_outcome_id
    )
    if outcome is not None and not usable:
        _add(errors, "outcome", _("Choose one of the listed outcomes."), "unknown_outcome")
    cleaned["outcome"] = outcome

    order = values.get("order")
    if order is not None and (not isinstance(order, Order) or order.customer_id != customer.pk):
        _add(errors, "order", _("Choose an order of this customer."), "foreign_order")
    cleaned["order"] = order
    return cleaned


def _check_attachments(files: Sequence[UploadedFile], errors: dict[str, list], *, already: int = 0) -> None:
    allowed = {ext.lower().lstrip(".") for ext in settings.INTERACTION_ATTACHMENT_EXTENSIONS}
    limit = settings.INTERACTION_ATTACHMENT_MAX_BYTES
    if already + len(files) > ATTACHMENTS_PER_INTERACTION:
        _add(
            errors,
            "attachments",
            _("An interaction can have at most %(max)d attachments.") % {"max": ATTACHMENTS_PER_INTERACTION},
            "too_many",
        )
    for upload in files:
        name = upload.name or ""
        extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if extension not in allowed:
            _add(
                errors,
                "attachments",
                _("%(name)s: this type of file cannot be attached. Allowed: %(types)s.")
                % {"name": name[:100], "types": ", ".join(sorted(allowed))},
                "file_type",
            )
        elif upload.size is None or upload.size > limit:
            _add(
                errors,
                "attachments",
                _("%(name)s is too large (%(size)s); the limit is %(limit)s.")
                % {
                    "name": name[:100],
                    "size": filesizeformat(upload.size or 0),
                    "limit": filesizeformat(limit),
                },
                "file_size",
            )


def _stored_name(upload: UploadedFile) -> str:
    """The user's file name as the attachment's row keeps it."""
    return (upload.name or "file")[-200:]


def _store_attachments(
    *, actor, interaction: Interaction, files: Sequence[UploadedFile]
) -> list[InteractionAttachment]:
    """Write the files (already checked) to the tenant's storage. Called last in a service, after
    every check and row: files written before a failure are removed again, so a refused log leaves
    no orphan file behind."""
    stored: list[InteractionAttachment] = []
    try:
        for upload in files:
            name = upload.name or "file"
            extension = name.rsplit(".", 1)[-1].lower()
            attachment = InteractionAttachment(
                interaction=interaction,
                original_name=_stored_name(upload),
                size=upload.size,
                content_type=(getattr(upload, "content_type", "") or "")[:100],
                uploaded_by=actor if getattr(actor, "pk", None) else None,
            )
            # A random stored name under the tenant's folder; the user's file name stays on the row.
            attachment.file.save(f"{uuid.uuid4().hex}.{extension}", upload, save=False)
            stored.append(attachment)
            attachment.save()
    except BaseException:
        for attachment in stored:
            attachment.file.storage.delete(attachment.file.name)
        raise
    return stored


def _raise(errors: dict[str, list]) -> None:
    if errors:
        raise ValidationError(errors)


def _actor_or_none(actor):
    return actor if actor is not None and getattr(actor, "pk", None) else None


# --- interactions ----------------------------------------------------------------------------------


@transaction.atomic
def interaction_log(
    *,
    actor: User | None,
    customer: Customer,
    channel: str,
    direction: str,
    occurred_at: datetime,
    duration_minutes: int | None = None,
    subject: str = "",
    notes: str = "",
    outcome: InteractionOutcome | None = None,
    order: Order | None = None,
    attachments: Sequence[UploadedFile] = (),
    author: User | None = None,
) -> Interaction:
    """Log one interaction with a customer the actor can see. `author` defaults to the actor (an
    import may name another active user)."""
    if actor is not None and not visible_to(Customer.objects.filter(pk=customer.pk), actor).exists():
        raise PermissionDenied(_t("You cannot log interactions for this customer."))
    errors: dict[str, list] = {}
    if customer.deleted_at is not None:
        _add(errors, "customer", _("This customer is in the recycle bin."), "binned")
    cleaned = _clean_values(
        customer=customer,
        values={
            "channel": channel,
            "direction": direction,
            "occurred_at": occurred_at,
            "duration_minutes": duration_minutes,
            "subject": subject,
            "notes": notes,
            "outcome": outcome,
            "order": order,
        },
        errors=errors,
    )
    files = list(attachments or ())
    _check_attachments(files, errors)
    _raise(errors)
    interaction = Interaction(customer=customer, author=author or _actor_or_none(actor), **cleaned)
    interaction.full_clean(exclude=["customer", "author", "outcome", "order", "deleted_by"])
    interaction.save()
    snapshot = interaction_snapshot(interaction)
    audit_record(
        actor=actor,
        action="interaction.logged",
        target=interaction,
        changes={
            key: {"old": None, "new": value} for key, value in snapshot.items() if value not in (None, "")
        },
    )
    _store_attachments(actor=actor, interaction=interaction, files=files)
    interaction_logged_on_commit(
        interaction_id=interaction.pk,
        customer_id=customer.pk,
        outcome_id=interaction.outcome_id,
        author_id=interaction.author_id,
    )
    return interaction


FOLLOW_UP_MAX_DAYS = 365


@transaction.atomic
def interaction_log_with_follow_up(
    *,
    actor: User,
    customer: Customer,
    follow_up_in_days: int | None,
    complete_followup: Any = None,
    **values: Any,
) -> tuple[Interaction, Any]:
    """Log an interaction and, with `follow_up_in_days`, create the actor's follow-up for the same
    customer that many days ahead (the log form's "next follow-up in N days"). With
    `complete_followup` (an open follow-up of this customer: the call logged from My day), that
    follow-up is marked done too. All or nothing: a refused follow-up rolls the interaction back; its
    errors are put on `follow_up_in_days` (or `complete_followup`)."""
    interaction = interaction_log(actor=actor, customer=customer, **values)
    # the attachments' files are written by now: a refused follow-up rolls the rows back, the files
    # must go with them
    files = attachment_files_of_interaction(interaction) if values.get("attachments") else []
    try:
        followup = _follow_up_for_log(
            actor=actor,
            customer=customer,
            interaction=interaction,
            follow_up_in_days=follow_up_in_days,
            complete_followup=complete_followup,
        )
    except BaseException:
        delete_stored_files(files)
        raise
    return interaction, followup


def _follow_up_for_log(
    *, actor: User, customer: Customer, interaction: Interaction, follow_up_in_days, complete_followup
):
    from interactions.followups.services import followup_complete, followup_create

    if complete_followup is not None:
        if complete_followup.customer_id != customer.pk:
            raise ValidationError({"complete_followup": _t("This follow-up belongs to another customer.")})
        try:
            followup_complete(actor=actor, followup=complete_followup)
        except ValidationError as error:
            raise ValidationError({"complete_followup": error.messages})
    if not follow_up_in_days:
        return None
    if not 1 <= follow_up_in_days <= FOLLOW_UP_MAX_DAYS:
        raise ValidationError(
            {
                "follow_up_in_days": _("Enter a number of days between 1 and %(max)d.")
                % {"max": FOLLOW_UP_MAX_DAYS}
            }
        )
    due = timezone.localtime() + timedelta(days=follow_up_in_days)
    title = interaction.subject or _t("Follow up: %(channel)s") % {
        "channel": interaction.get_channel_display()
    }
    try:
        followup = followup_create(
            actor=actor,
            customer=customer,
            assignee=actor,
            due_at=due.replace(minute=0, second=0, microsecond=0),
            title=title,
            notes="",
        )
    except ValidationError as error:
        raise ValidationError({"follow_up_in_days": error.messages})
    return followup


def _require_change(actor, interaction: Interaction, message: str) -> None:
    if not can_change(actor, interaction):
        raise PermissionDenied(message)


@transaction.atomic
def interaction_update(
    *,
    actor: User,
    interaction: Interaction,
    data: Mapping[str, Any],
    attachments: Sequence[UploadedFile] = (),
) -> Interaction:
    """Change the editable fields given in `data` (others keep their value); add attachments."""
    _require_change(actor, interaction, _t("Only the author, managers and admins can edit this interaction."))
    unknown = set(data) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    locked = (
        Interaction.objects.select_for_update(of=("self",))
        .select_related("customer", "outcome", "order")
        .get(pk=interaction.pk)
    )
    if locked.deleted_at is not None:
        raise PermissionDenied(_t("This interaction is in the recycle bin; restore it first."))
    before = interaction_snapshot(locked)
    values = {field: getattr(locked, field) for field in EDITABLE_FIELDS}
    values.update(data)
    errors: dict[str, list] = {}
    cleaned = _clean_values(
        customer=locked.customer, values=values, errors=errors, previous_outcome_id=locked.outcome_id
    )
    files = list(attachments or ())
    _check_attachments(files, errors, already=locked.attachments.filter(removed_at__isnull=True).count())
    _raise(errors)
    for field, value in cleaned.items():
        setattr(locked, field, value)
    locked.full_clean(exclude=["customer", "author", "outcome", "order", "deleted_by"])
    locked.save()
    changes = audit_diff(before, interaction_snapshot(locked))
    if files:
        changes["attachments"] = {"old": None, "new": [_stored_name(upload) for upload in files]}
    if changes:
        audit_record(actor=actor, action="interaction.updated", target=locked, changes=changes)
    # the files last, as in interaction_log: a refused audit row leaves no file behind
    _store_attachments(actor=actor, interaction=locked, files=files)
    return locked


def _attachment_for_change(actor: User, attachment: InteractionAttachment, message: str):
    """The attachment locked with its interaction, after the role check; refused while the interaction
    is in the recycle bin (restore it first)."""
    interaction = attachment.interaction
    _require_change(actor, interaction, message)
    locked = (
        InteractionAttachment.objects.select_for_update().select_related("interaction").get(pk=attachment.pk)
    )
    if locked.interaction.deleted_at is not None:
        raise PermissionDenied(_t("This interaction is in the recycle bin; restore it first."))
    return locked


@transaction.atomic
def attachment_remove(*, actor: User, attachment: InteractionAttachment) -> InteractionAttachment:
    """Take one attachment off its interaction. Like a deleted interaction it is kept, hidden and
    restorable, with its file; the file goes when the customer is purged from the bin (the purge hook
    in `integration`) or erased. Audited on the interaction."""
    locked = _attachment_for_change(
        actor, attachment, _t("Only the author, managers and admins can remove an attachment.")
    )
    if locked.removed_at is None:
        locked.removed_at = timezone.now()
        locked.removed_by = actor
        locked.save(update_fields=["removed_at", "removed_by"])
        audit_record(
            actor=actor,
            action="interaction.attachment_removed",
            target=locked.interaction,
            changes={"attachments": {"old": locked.original_name, "new": None}},
        )
    return locked


@transaction.atomic
def attachment_restore(*, actor: User, attachment: InteractionAttachment) -> InteractionAttachment:
    """Put a removed attachment back on its interaction (within the per-interaction limit)."""
    locked = _attachment_for_change(
        actor, attachment, _t("Only the author, managers and admins can restore an attachment.")
    )
    if locked.removed_at is not None:
        live = locked.interaction.attachments.filter(removed_at__isnull=True).count()
        if live >= ATTACHMENTS_PER_INTERACTION:
            raise ValidationError(
                _t("An interaction can have at most %(max)d attachments.")
                % {"max": ATTACHMENTS_PER_INTERACTION}
            )
        locked.removed_at = None
        locked.removed_by = None
        locked.save(update_fields=["removed_at", "removed_by"])
        audit_record(
            actor=actor,
            action="interaction.attachment_restored",
            target=locked.interaction,
            changes={"attachments": {"old": None, "new": locked.original_name}},
        )
    return locked


def attachment_files_of_customers(customer_ids: Sequence[int]) -> list[str]:
    """The stored file names of every attachment (removed ones too) of these customers' interactions."""
    return list(
        InteractionAttachment.objects.filter(interaction__customer_id__in=list(customer_ids))
        .exclude(file="")
        .values_list("file", flat=True)
    )


def attachment_files_of_interaction(interaction: Interaction) -> list[str]:
    """The stored file names of one interaction's attachments."""
    return list(interaction.attachments.exclude(file="").values_list("file", flat=True))


def delete_stored_files(names: Sequence[str]) -> None:
    """Delete files from the tenant's storage (after a commit); a missing file is not an error."""
    storage = InteractionAttachment._meta.get_field("file").storage
    for name in names:
        try:
            storage.delete(name)
        except OSError:  # already gone, or the disk refused: nothing a user can act on
            continue


def purge_hook(customer_ids: list[int]):
    """customers.registry.PurgeHook: the purged customers' attachment files leave the tenant's storage
    once the purge has committed (the rows go by CASCADE)."""
    names = attachment_files_of_customers(customer_ids)
    if not names:
        return None
    return lambda: delete_stored_files(names)


@transaction.atomic
def interaction_delete(*, actor: User, interaction: Interaction) -> Interaction:
    """Move an interaction to the recycle bin (restorable; purged with its customer)."""
    _require_change(
        actor, interaction, _t("Only the author, managers and admins can delete this interaction.")
    )
    now = timezone.now()
    updated = Interaction.objects.filter(pk=interaction.pk, deleted_at__isnull=True).update(
        deleted_at=now, deleted_by=actor, updated_at=now
    )
    interaction.refresh_from_db()
    if updated:
        audit_record(
            actor=actor,
            action="interaction.deleted",
            target=interaction,
            changes={"deleted_at": {"old": None, "new": now.isoformat()}},
        )
    return interaction


@transaction.atomic
def interaction_restore(*, actor: User, interaction: Interaction) -> Interaction:
    """Bring an interaction back from the recycle bin."""
    _require_change(
        actor, interaction, _t("Only the author, managers and admins can restore this interaction.")
    )
    deleted_at = interaction.deleted_at
    updated = Interaction.objects.filter(pk=interaction.pk, deleted_at__isnull=False).update(
        deleted_at=None, deleted_by=None, updated_at=timezone.now()
    )
    interaction.refresh_from_db()
    if updated:
        audit_record(
            actor=actor,
            action="interaction.restored",
            target=interaction,
            changes={"deleted_at": {"old": deleted_at.isoformat() if deleted_at else None, "new": None}},
        )
    return interaction


# --- merge hook (customers.registry.MergeHook) ------------------------------------------------------


def merge_move(survivor: Customer, merged: Customer) -> dict:
    """Move every interaction of `merged` (binned ones too) to `survivor`; the ids are the undo info."""
    ids = list(Interaction.objects.filter(customer=merged).order_by("pk").values_list("pk", flat=True))
    if ids:
        Interaction.objects.filter(pk__in=ids).update(customer=survivor)
    return {"ids": ids}


def merge_undo(survivor: Customer, merged: Customer, info: dict) -> None:
    """Move exactly the interactions the merge moved back to `merged`."""
    ids = [int(pk) for pk in (info or {}).get("ids", [])]
    if ids:
        Interaction.objects.filter(pk__in=ids, customer=survivor).update(customer=merged)


# --- outcomes (tenant admins) ----------------------------------------------------------------------


def _require_admin(actor) -> None:
    if not user_has_role(actor, ADMINS):
        raise PermissionDenied(_t("Only admins can change the interaction outcomes."))


def _clean_outcome_name(name: str, *, exclude_pk: int | None = None) -> str:
    cleaned = " ".join(str(name or "").split())
    errors: dict[str, list] = {}
    if not cleaned:
        _add(errors, "name", _("Enter a name."), "required")
    elif len(cleaned) > OUTCOME_NAME_MAX:
        _add(
            errors, "name", _("Keep the name within %(max)d characters.") % {"max": OUTCOME_NAME_MAX}, "long"
        )
    else:
        taken = {o.label.casefold() for o in InteractionOutcome.objects.exclude(pk=exclude_pk)}
        if cleaned.casefold() in taken:
            _add(errors, "name", _("An outcome with this name exists already."), "unique")
    _raise(errors)
    return cleaned


def _new_key(name: str) -> str:
    base = (slugify(name) or "outcome")[:40]
    key, n = base, 1
    while InteractionOutcome.objects.filter(key=key).exists():
        n += 1
        key = f"{base}-{n}"
    return key


@transaction.atomic
def outcome_create(*, actor: User, name: str) -> InteractionOutcome:
    _require_admin(actor)
    cleaned = _clean_outcome_name(name)
    last = InteractionOutcome.objects.aggregate(last=Max("position"))["last"] or 0
    outcome = InteractionOutcome(key=_new_key(cleaned), name=cleaned, position=min(last + 10, 32_000))
    outcome.full_clean()
    outcome.save()
    audit_record(
        actor=actor,
        action="interaction_outcome.created",
        target=outcome,
        changes={"name": {"old": None, "new": cleaned}},
    )
    return outcome


@transaction.atomic
def outcome_rename(*, actor: User, outcome: InteractionOutcome, name: str) -> InteractionOutcome:
    _require_admin(actor)
    cleaned = _clean_outcome_name(name, exclude_pk=outcome.pk)
    before = outcome.label
    outcome.name = cleaned
    outcome.full_clean()
    outcome.save(update_fields=["name", "updated_at"])
    if before != cleaned:
        audit_record(
            actor=actor,
            action="interaction_outcome.updated",
            target=outcome,
            changes={"name": {"old": before, "new": cleaned}},
        )
    return outcome


@transaction.atomic
def outcome_set_active(*, actor: User, outcome: InteractionOutcome, active: bool) -> InteractionOutcome:
    """Hide an outcome from new interactions (or offer it again); logged interactions keep it."""
    _require_admin(actor)
    if outcome.is_active != bool(active):
        outcome.is_active = bool(active)
        outcome.save(update_fields=["is_active", "updated_at"])
        audit_record(
            actor=actor,
            action="interaction_outcome.updated",
            target=outcome,
            changes={"is_active": {"old": not outcome.is_active, "new": outcome.is_active}},
        )
    return outcome


@transaction.atomic
def outcome_move(*, actor: User, outcome: InteractionOutcome, up: bool) -> InteractionOutcome:
    """Swap an outcome with its neighbour in the list's order."""
    _require_admin(actor)
    ordered = list(InteractionOutcome.objects.select_for_update().order_by("position", "id"))
    index = next(i for i, o in enumerate(ordered) if o.pk == outcome.pk)
    other = index - 1 if up else index + 1
    if 0 <= other < len(ordered):
        ordered[index], ordered[other] = ordered[other], ordered[index]
        for position, item in enumerate(ordered):
            if item.position != position * 10:
                InteractionOutcome.objects.filter(pk=item.pk).update(position=position * 10)
        audit_record(
            actor=actor,
            action="interaction_outcome.moved",
            target=outcome,
            changes={"position": {"old": index + 1, "new": other + 1}},
        )
    outcome.refresh_from_db()
    return outcome
