"""Writes of the service desk: tickets and their thread, assignment, status and the SLA clocks, the
desk's settings, and the periodic SLA scan.

Every service is atomic and validating (bad input raises ValidationError / ApplicationError and writes
nothing), writes an audit record, and queues its e-mail on commit.

Role rules (views check them too):
- everyone opens tickets, replies, writes notes and changes the status of the tickets they can see
  (selectors.ticket_scope);
- managers and admins assign tickets to anyone; sales staff may take a ticket (assign it to themselves);
- managers and admins delete and restore tickets (soft delete);
- admins change the desk's settings (categories, teams, SLA policies, working hours, holidays).

SLA clocks: a ticket's targets (business minutes) come from the SlaPolicy of its priority and category
(a category's own policy wins over the priority's default). The clock starts when the ticket opens;
"waiting on customer" pauses it (the paused business time is added to the targets when the pause ends);
resolving stops it; reopening starts a new cycle in which the time spent resolved counts as paused.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from crm.accounts.models import User
from crm.accounts.permissions import ADMINS, MANAGERS, user_has_role
from crm.audit.services import audit_diff, audit_record
from crm.errors import ApplicationError
from customers.models import Customer, Order
from customers.phone import normalise_phone
from customers.services import customer_create

from . import business_hours as bh
from .models import (
    Channel,
    Holiday,
    Priority,
    ServiceSettings,
    SlaPolicy,
    Status,
    Team,
    Ticket,
    TicketAttachment,
    TicketCategory,
    TicketMessage,
)
from .signals import ticket_resolved_on_commit

logger = logging.getLogger(__name__)

BULK_LIMIT = 500
SUBJECT_MAX = 200
BODY_MAX = 10_000
NAME_MAX = 200
MAX_ATTACHMENTS = 5
ATTACHMENT_MAX_BYTES = getattr(settings, "SERVICE_ATTACHMENT_MAX_BYTES", 5 * 1024 * 1024)
# Extension -> the content types accepted for it (what a browser sends for such a file).
ATTACHMENT_TYPES = {
    ".pdf": {"application/pdf"},
    ".png": {"image/png"},
    ".jpg": {"image/jpeg"},
    ".jpeg": {"image/jpeg"},
    ".gif": {"image/gif"},
    ".txt": {"text/plain"},
    ".csv": {"text/csv", "text/plain", "application/vnd.ms-excel"},
    ".docx": {"application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    ".xlsx": {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
}
DEFAULT_WORKING_HOURS = {str(day): [["09:00", "18:00"]] for day in range(5)}


# --- the desk's calendar ----------------------------------------------------------------------------


def settings_get() -> ServiceSettings:
    row, _created = ServiceSettings.objects.get_or_create(
        pk=1, defaults={"working_hours": DEFAULT_WORKING_HOURS}
    )
    return row


def tenant_time_zone() -> str:
    tenant = getattr(connection, "tenant", None)
    return getattr(tenant, "time_zone", "") or "Asia/Shanghai"


def parse_working_hours(raw: dict) -> dict[int, tuple[bh.Interval, ...]]:
    """{"0": [["09:00", "18:00"]]} -> {0: ((540, 1080),)}; ValueError on anything malformed."""
    weekly: dict[int, tuple[bh.Interval, ...]] = {}
    for key, intervals in (raw or {}).items():
        day = int(key)
        if not 0 <= day <= 6:
            raise ValueError(f"weekday out of range: {key}")
        weekly[day] = bh.normalise_intervals((bh.parse_hhmm(a), bh.parse_hhmm(b)) for a, b in intervals)
    return weekly


def calendar_get() -> bh.BusinessCalendar:
    """The tenant's business calendar: working hours, time zone, public and own holidays."""
    desk = settings_get()
    closed, extra = set(), set()
    for day, is_working in Holiday.objects.values_list("day", "is_working_day"):
        (extra if is_working else closed).add(day)
    return bh.BusinessCalendar(
        time_zone=tenant_time_zone(),
        weekly=parse_working_hours(desk.working_hours),
        holiday_country=desk.holiday_country,
        closed_days=frozenset(closed),
        extra_working_days=frozenset(extra),
    )


# --- helpers ----------------------------------------------------------------------------------------


def _label(user: User | None) -> str | None:
    return user.get_full_name() if user is not None else None


def _require_roles(actor, roles, message) -> None:
    if not user_has_role(actor, roles):
        raise PermissionDenied(message)


def _check_agent(user: User | None, field: str, errors: dict) -> None:
    if user is not None and not (user.is_active and getattr(user, "role", None)):
        errors.setdefault(field, []).append(_("Choose an active user."))


def _bounded_text(value: str, *, field: str, max_length: int, required: bool, errors: dict) -> str:
    value = (value or "").strip()
    if required and not value:
        errors.setdefault(field, []).append(_("This field is required."))
    elif len(value) > max_length:
        errors.setdefault(field, []).append(
            _t("Use at most %(max)d characters (you typed %(typed)d).")
            % {"max": max_length, "typed": len(value)}
        )
    return value


def normalise_email(raw: str, errors: dict, field: str = "email") -> str:
    email = (raw or "").strip().lower()
    if not email:
        return ""
    if len(email) > 254:
        errors.setdefault(field, []).append(_("Enter a valid e-mail address."))
        return ""
    try:
        validate_email(email)
    except ValidationError:
        errors.setdefault(field, []).append(_("Enter a valid e-mail address."))
        return ""
    return email


def _normalise_phone(raw: str, errors: dict, field: str = "phone") -> str:
    raw = (raw or "").strip()
    if not raw:
        return ""
    if len(raw) > 40:
        errors.setdefault(field, []).append(_("Enter a valid phone number."))
        return ""
    try:
        return normalise_phone(raw)
    except ValidationError as error:
        errors.setdefault(field, []).extend(error.messages)
        return ""


def check_attachments(files: Sequence[UploadedFile]) -> list[str]:
    """Problems with the uploaded files (size, type, count), as messages; [] when all are fine."""
    problems = []
    if len(files) > MAX_ATTACHMENTS:
        problems.append(_t("Attach at most %(count)d files.") % {"count": MAX_ATTACHMENTS})
    for upload in files:
        name = (upload.name or "")[-200:]
        extension = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
        allowed = ATTACHMENT_TYPES.get(extension)
        declared = (upload.content_type or mimetypes.guess_type(name)[0] or "").split(";")[0].strip().lower()
        if allowed is None or declared not in allowed:
            problems.append(
                _t("%(name)s: this type of file cannot be attached (allowed: %(types)s).")
                % {"name": name, "types": ", ".join(sorted(ext.lstrip(".") for ext in ATTACHMENT_TYPES))}
            )
        elif upload.size > ATTACHMENT_MAX_BYTES:
            problems.append(
                _t("%(name)s is larger than %(size)d MB.")
                % {"name": name, "size": ATTACHMENT_MAX_BYTES // (1024 * 1024)}
            )
    return problems


def _save_attachments(*, ticket: Ticket, message: TicketMessage | None, files, actor) -> None:
    for upload in files:
        TicketAttachment.objects.create(
            ticket=ticket,
            message=message,
            file=upload,
            original_name=(upload.name or "file")[-200:],
            content_type=(upload.content_type or "")[:100],
            size=upload.size,
            uploaded_by=actor if actor is not None and actor.pk else None,
        )


# --- customers ----------------------------------------------------------------------------------------


def customer_match(*, email: str, phone: str) -> Customer | None:
    """The live customer with this (normalised) e-mail, else this phone; the oldest when several."""
    live = Customer.objects.filter(deleted_at__isnull=True, merged_into__isnull=True).order_by("pk")
    if email:
        found = live.filter(email__iexact=email).first()
        if found is not None:
            return found
    if phone:
        return live.filter(phone=phone).first()
    return None


# --- SLA ------------------------------------------------------------------------------------------------


def sla_policy_for(*, priority: str, category: TicketCategory | None) -> SlaPolicy | None:
    policies = list(SlaPolicy.objects.filter(priority=priority, category__in=[category] if category else []))
    if not policies:
        policies = list(SlaPolicy.objects.filter(priority=priority, category__isnull=True))
    return policies[0] if policies else None


def _apply_policy(ticket: Ticket) -> None:
    policy = sla_policy_for(priority=ticket.priority, category=ticket.category)
    ticket.first_response_target = policy.first_response_minutes if policy else None
    ticket.resolution_target = policy.resolution_minutes if policy else None


def sla_recompute(ticket: Ticket, *, calendar: bh.BusinessCalendar) -> None:
    """Due and 80% instants from the start, the targets and the business time paused so far."""
    start = ticket.created_at or timezone.now()

    def at(minutes: int | None, share: float) -> datetime | None:
        if minutes is None:
            return None
        try:
            return bh.add_business_seconds(calendar, start, int(minutes * 60 * share) + ticket.paused_seconds)
        except bh.NoWorkingTime:
            return None

    ticket.first_response_due_at = at(ticket.first_response_target, 1.0)
    ticket.first_response_warn_at = at(ticket.first_response_target, 0.8)
    ticket.resolution_due_at = at(ticket.resolution_target, 1.0)
    ticket.resolution_warn_at = at(ticket.resolution_target, 0.8)


def _end_pause(
    ticket: Ticket, *, now: datetime, calendar: bh.BusinessCalendar, since: datetime | None
) -> None:
    if since is not None:
        ticket.paused_seconds += bh.business_seconds(calendar, since, now)
    ticket.paused_since = None
    sla_recompute(ticket, calendar=calendar)


def _business_time_since_opening(
    ticket: Ticket, *, now: datetime, calendar: bh.BusinessCalendar | None = None
) -> int:
    """Business seconds from opening to `now`, less the business time paused so far."""
    calendar = calendar or calendar_get()
    return max(bh.business_seconds(calendar, ticket.created_at, now) - ticket.paused_seconds, 0)


@dataclass(frozen=True)
class Clock:
    """One SLA clock as a page shows it."""

    target: str  # "first_response" | "resolution"
    due_at: datetime | None
    seconds_left: int | None  # business seconds; negative once breached; None: no target
    state: str  # "met", "running", "paused", "warning", "breached", "none"
    done_at: datetime | None = None


def ticket_clocks(
    ticket: Ticket, *, calendar: bh.BusinessCalendar, now: datetime | None = None
) -> list[Clock]:
    now = now or timezone.now()
    clocks = []
    for target, due, warn, done in (
        (
            "first_response",
            ticket.first_response_due_at,
            ticket.first_response_warn_at,
            ticket.first_response_at,
        ),
        ("resolution", ticket.resolution_due_at, ticket.resolution_warn_at, ticket.resolved_at),
    ):
        if due is None:
            clocks.append(Clock(target, None, None, "none"))
            continue
        if done is not None:
            clocks.append(Clock(target, due, None, "met" if done <= due else "breached", done_at=done))
            continue
        if ticket.status == Status.CLOSED:
            clocks.append(Clock(target, due, None, "none"))
            continue
        reference = ticket.paused_since or now
        left = bh.signed_business_seconds(calendar, reference, due)
        if ticket.paused_since is not None:
            state = "paused"
        elif left <= 0:
            state = "breached"
        elif warn is not None and now >= warn:
            state = "warning"
        else:
            state = "running"
        clocks.append(Clock(target, due, left, state))
    return clocks


# --- tickets ------------------------------------------------------------------------------------------


def _snapshot(ticket: Ticket) -> dict:
    return {
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "channel": ticket.channel,
        "category": ticket.category.name if ticket.category_id else None,
        "assignee": _label(ticket.assignee) if ticket.assignee_id else None,
        "team": ticket.team.name if ticket.team_id else None,
        "order": ticket.order_id,
    }


def _lock(ticket: Ticket) -> Ticket:
    return (
        Ticket.objects.select_for_update(of=("self",))
        .select_related("customer", "assignee", "team", "category")
        .get(pk=ticket.pk, deleted_at__isnull=True)
    )


@transaction.atomic
def ticket_open(
    *,
    actor: User | None,
    subject: str,
    description: str = "",
    channel: str = Channel.EMAIL,
    priority: str = Priority.NORMAL,
    category: TicketCategory | None = None,
    customer: Customer | None = None,
    email: str = "",
    phone: str = "",
    name: str = "",
    assignee: User | None = None,
    team: Team | None = None,
    order: Order | None = None,
    attachments: Sequence[UploadedFile] = (),
) -> Ticket:
    """Open a ticket for `customer`, or for the customer matched by e-mail, then phone (normalised), or
    a new customer made from them. Sales staff who open a ticket without an assignee get it."""
    errors: dict[str, list] = {}
    subject = _bounded_text(subject, field="subject", max_length=SUBJECT_MAX, required=True, errors=errors)
    description = _bounded_text(
        description, field="description", max_length=BODY_MAX, required=False, errors=errors
    )
    name = _bounded_text(name, field="name", max_length=NAME_MAX, required=False, errors=errors)
    email = normalise_email(email, errors)
    phone = _normalise_phone(phone, errors)
    if channel not in Channel.values:
        errors.setdefault("channel", []).append(_("Choose a channel."))
    if priority not in Priority.values:
        errors.setdefault("priority", []).append(_("Choose a priority."))
    if category is not None and not category.is_active:
        errors.setdefault("category", []).append(_("This category is no longer in use."))
    _check_agent(assignee, "assignee", errors)
    if customer is None and not (email or phone) and "email" not in errors and "phone" not in errors:
        errors.setdefault("email", []).append(_("Give the customer's e-mail address or phone number."))
    if customer is not None and customer.deleted_at is not None:
        errors.setdefault("customer", []).append(_("This customer is in the recycle bin."))
    if order is not None and customer is not None and order.customer_id != customer.pk:
        errors.setdefault("order", []).append(_("The order belongs to another customer."))
    problems = check_attachments(list(attachments))
    if problems:
        errors.setdefault("attachments", []).extend(problems)
    if errors:
        raise ValidationError(errors)

    if customer is None:
        customer = customer_match(email=email, phone=phone)
        if customer is None:
            customer = customer_create(
                actor=actor,
                name=name or email or phone,
                email=email,
                phone=phone,
                source=Customer.Source.FORM
                if channel == Channel.WEB
                else Customer.Source.PHONE
                if channel == Channel.PHONE
                else Customer.Source.STORE,
            )
        if order is not None and order.customer_id != customer.pk:
            raise ValidationError({"order": [_("The order belongs to another customer.")]})
    if (
        assignee is None
        and actor is not None
        and not user_has_role(actor, MANAGERS)
        and user_has_role(actor, ("sales",))
    ):
        assignee = actor
    if team is None and assignee is not None:
        team = assignee.service_teams.order_by("name").first()
    ticket = Ticket(
        customer=customer,
        subject=subject,
        description=description,
        channel=channel,
        priority=priority,
        category=category,
        assignee=assignee,
        team=team,
        order=order,
        requester_email=email or customer.email,
        requester_phone=phone or customer.phone,
        created_by=actor if actor is not None and actor.pk else None,
        status=Status.OPEN if assignee is not None else Status.NEW,
    )
    ticket.created_at = timezone.now()
    _apply_policy(ticket)
    sla_recompute(ticket, calendar=calendar_get())
    ticket.full_clean(exclude=["customer", "assignee", "team", "order", "category", "created_by"])
    ticket.save()
    _save_attachments(ticket=ticket, message=None, files=attachments, actor=actor)
    audit_record(
        actor=actor, action="ticket.opened", target=ticket, changes=audit_diff({}, _snapshot(ticket))
    )
    return ticket


def _message_id(ticket: Ticket, message: TicketMessage) -> str:
    return f"<ticket-{ticket.pk}.message-{message.pk}.{connection.schema_name}@{settings.BASE_DOMAIN}>"


def _reply_address(ticket: Ticket) -> str:
    return ticket.requester_email or ticket.customer.email


@transaction.atomic
def ticket_reply(
    *, actor: User, ticket: Ticket, body: str, attachments: Sequence[UploadedFile] = ()
) -> TicketMessage:
    """Reply to the customer: on the thread, and by e-mail (queued on commit). The first reply is the
    first response; a new ticket becomes open."""
    return _add_message(
        actor=actor, ticket=ticket, body=body, kind=TicketMessage.Kind.REPLY, attachments=attachments
    )


@transaction.atomic
def ticket_note(
    *, actor: User, ticket: Ticket, body: str, attachments: Sequence[UploadedFile] = ()
) -> TicketMessage:
    """An internal note: on the thread, never sent to the customer."""
    return _add_message(
        actor=actor, ticket=ticket, body=body, kind=TicketMessage.Kind.NOTE, attachments=attachments
    )


def _add_message(*, actor, ticket: Ticket, body: str, kind: str, attachments) -> TicketMessage:
    errors: dict[str, list] = {}
    body = _bounded_text(body, field="body", max_length=BODY_MAX, required=True, errors=errors)
    problems = check_attachments(list(attachments))
    if problems:
        errors.setdefault("attachments", []).extend(problems)
    if errors:
        raise ValidationError(errors)
    ticket = _lock(ticket)
    if ticket.status == Status.CLOSED:
        raise ApplicationError(_t("This ticket is closed. Reopen it to write on it."))
    is_reply = kind == TicketMessage.Kind.REPLY
    if is_reply and not _reply_address(ticket):
        raise ApplicationError(
            _t("The customer has no e-mail address: add one to the customer, or write an internal note."),
            field="body",
        )
    message = TicketMessage.objects.create(ticket=ticket, kind=kind, author=actor, body=body)
    _save_attachments(ticket=ticket, message=message, files=attachments, actor=actor)
    changes = {}
    if is_reply:
        message.email_message_id = _message_id(ticket, message)
        message.save(update_fields=["email_message_id"])
        now = timezone.now()
        updates = ["updated_at"]
        if ticket.first_response_at is None:
            ticket.first_response_at = now
            ticket.first_response_seconds = _business_time_since_opening(ticket, now=now)
            updates += ["first_response_at", "first_response_seconds"]
            changes["first_response_at"] = {"old": None, "new": now.isoformat()}
        if ticket.status == Status.NEW:
            ticket.status = Status.OPEN
            updates.append("status")
            changes["status"] = {"old": Status.NEW, "new": Status.OPEN}
        ticket.save(update_fields=updates)
        from .tasks import ticket_reply_send_task

        message_id = message.pk
        transaction.on_commit(lambda: ticket_reply_send_task.delay(message_id))
    else:
        Ticket.objects.filter(pk=ticket.pk).update(updated_at=timezone.now())
    audit_record(
        actor=actor,
        action="ticket.replied" if is_reply else "ticket.noted",
        target=ticket,
        changes={"message": {"old": None, "new": message.pk}, **changes},
    )
    return message


def ticket_reply_send(*, message_id: int) -> bool:
    """Send one reply by e-mail, at most once per successful send: the row is locked while sending and
    marked sent; a crash after sending and before the mark re-sends with the same Message-ID, which
    mail clients take as the same message. Returns whether it sent."""
    from django.core.mail import EmailMessage

    with transaction.atomic():
        message = (
            TicketMessage.objects.select_for_update(of=("self",))
            .select_related("ticket", "ticket__customer", "author")
            .filter(pk=message_id, kind=TicketMessage.Kind.REPLY)
            .first()
        )
        if message is None or message.sent_at is not None:
            return False
        ticket = message.ticket
        to = _reply_address(ticket)
        if not to:
            return False
        email = EmailMessage(
            subject=f"[#{ticket.pk}] {ticket.subject}",
            body=message.body,
            to=[to],
            headers={
                "Message-ID": message.email_message_id or _message_id(ticket, message),
                "References": f"<ticket-{ticket.pk}.{connection.schema_name}@{settings.BASE_DOMAIN}>",
            },
        )
        email.send(fail_silently=False)
        message.sent_at = timezone.now()
        message.save(update_fields=["sent_at"])
        return True


def _can_assign(actor: User, assignee: User | None) -> bool:
    if user_has_role(actor, MANAGERS):
        return True
    return assignee is not None and assignee.pk == actor.pk  # sales take tickets for themselves


@transaction.atomic
def tickets_assign(
    *,
    actor: User,
    tickets: Iterable[Ticket] | None = None,
    ticket_ids: Sequence[int] = (),
    assignee: User | None,
    team: Team | None = None,
) -> int:
    """Assign the tickets (those the actor can see, at most BULK_LIMIT) to `assignee` (None: unassign),
    and to `team` when given (else the assignee's first team when the ticket has none). Returns how many
    changed."""
    from .selectors import ticket_scope

    errors: dict[str, list] = {}
    _check_agent(assignee, "assignee", errors)
    if errors:
        raise ValidationError(errors)
    if not _can_assign(actor, assignee):
        raise PermissionDenied(_t("Only managers and admins can assign tickets to others."))
    ids = [t.pk for t in tickets] if tickets is not None else []
    ids += [int(pk) for pk in ticket_ids]
    ids = ids[:BULK_LIMIT]
    rows = list(
        ticket_scope(Ticket.objects.filter(pk__in=ids, deleted_at__isnull=True), actor)
        .select_related("assignee", "team")
        .select_for_update(of=("self",))
        .order_by("pk")
    )
    assignee_team = assignee.service_teams.order_by("name").first() if assignee is not None else None
    changed = 0
    for ticket in rows:
        before = _snapshot(ticket)
        new_team = team or ticket.team or assignee_team
        if ticket.assignee_id == (assignee.pk if assignee else None) and ticket.team_id == (
            new_team.pk if new_team else None
        ):
            continue
        ticket.assignee, ticket.team = assignee, new_team
        if assignee is not None and ticket.status == Status.NEW:
            ticket.status = Status.OPEN
        ticket.save(update_fields=["assignee", "team", "status", "updated_at"])
        audit_record(
            actor=actor,
            action="ticket.assigned",
            target=ticket,
            changes=audit_diff(before, _snapshot(ticket)),
        )
        changed += 1
    return changed


@transaction.atomic
def ticket_update(
    *, actor: User, ticket: Ticket, priority: str, category: TicketCategory | None, order: Order | None = None
) -> Ticket:
    """Change priority and category (the SLA targets follow the new policy) and the related order."""
    errors: dict[str, list] = {}
    if priority not in Priority.values:
        errors.setdefault("priority", []).append(_("Choose a priority."))
    if order is not None and order.customer_id != ticket.customer_id:
        errors.setdefault("order", []).append(_("The order belongs to another customer."))
    if errors:
        raise ValidationError(errors)
    ticket = _lock(ticket)
    before = _snapshot(ticket)
    ticket.priority, ticket.category, ticket.order = priority, category, order
    _apply_policy(ticket)
    sla_recompute(ticket, calendar=calendar_get())
    ticket.save()
    audit_record(
        actor=actor, action="ticket.updated", target=ticket, changes=audit_diff(before, _snapshot(ticket))
    )
    return ticket


ALLOWED_MOVES = {
    Status.NEW: {Status.OPEN, Status.WAITING, Status.RESOLVED, Status.CLOSED},
    Status.OPEN: {Status.WAITING, Status.RESOLVED, Status.CLOSED},
    Status.WAITING: {Status.OPEN, Status.RESOLVED, Status.CLOSED},
    Status.RESOLVED: {Status.OPEN, Status.CLOSED},
    Status.CLOSED: {Status.OPEN},
}


@transaction.atomic
def ticket_change_status(*, actor: User, ticket: Ticket, status: str, now: datetime | None = None) -> Ticket:
    """Move a ticket: waiting on customer pauses the SLA clocks, open resumes them, resolved stops them,
    closed ends the ticket, open from resolved/closed reopens it (a new SLA cycle)."""
    if status not in Status.values:
        raise ValidationError({"status": [_("Choose a status.")]})
    ticket = _lock(ticket)
    if status == ticket.status:
        return ticket
    if status not in ALLOWED_MOVES[ticket.status]:
        raise ApplicationError(
            _t("A %(old)s ticket cannot become %(new)s.")
            % {"old": Status(ticket.status).label, "new": Status(status).label},
            field="status",
        )
    now = now or timezone.now()
    calendar = calendar_get()
    before = {**_snapshot(ticket), "paused_seconds": ticket.paused_seconds}
    old = ticket.status
    if old == Status.WAITING:
        _end_pause(ticket, now=now, calendar=calendar, since=ticket.paused_since)
    if old in (Status.RESOLVED, Status.CLOSED) and status == Status.OPEN:
        # reopened: the time spent resolved or closed does not count; warnings start afresh
        _end_pause(ticket, now=now, calendar=calendar, since=ticket.resolved_at or ticket.closed_at)
        ticket.resolved_at = None
        ticket.closed_at = None
        ticket.sla_cycle += 1
    ticket.status = status
    if status == Status.WAITING:
        ticket.paused_since = now
    elif status == Status.RESOLVED:
        ticket.resolved_at = now
        ticket.resolution_seconds = _business_time_since_opening(ticket, now=now, calendar=calendar)
    elif status == Status.CLOSED:
        ticket.closed_at = now
    ticket.save()
    after = {**_snapshot(ticket), "paused_seconds": ticket.paused_seconds}
    action = "ticket.reopened" if old in (Status.RESOLVED, Status.CLOSED) else f"ticket.{status}"
    audit_record(actor=actor, action=action, target=ticket, changes=audit_diff(before, after))
    if status == Status.RESOLVED:
        ticket_resolved_on_commit(
            ticket_id=ticket.pk,
            customer_id=ticket.customer_id,
            assignee_id=ticket.assignee_id,
            actor_id=actor.pk if actor is not None else None,
        )
    return ticket


def ticket_resolve(*, actor: User, ticket: Ticket, now: datetime | None = None) -> Ticket:
    return ticket_change_status(actor=actor, ticket=ticket, status=Status.RESOLVED, now=now)


def ticket_close(*, actor: User, ticket: Ticket, now: datetime | None = None) -> Ticket:
    return ticket_change_status(actor=actor, ticket=ticket, status=Status.CLOSED, now=now)


def ticket_reopen(*, actor: User, ticket: Ticket, now: datetime | None = None) -> Ticket:
    current = Ticket.objects.filter(pk=ticket.pk).values_list("status", flat=True).first()
    if current not in (Status.RESOLVED, Status.CLOSED):
        raise ApplicationError(_t("Only a resolved or closed ticket can be reopened."))
    return ticket_change_status(actor=actor, ticket=ticket, status=Status.OPEN, now=now)


@transaction.atomic
def ticket_delete(*, actor: User, ticket: Ticket) -> Ticket:
    """Soft delete (managers and admins): hidden from queues and pages, kept for restore."""
    _require_roles(actor, MANAGERS, _t("Only managers and admins can delete tickets."))
    ticket = _lock(ticket)
    ticket.deleted_at, ticket.deleted_by = timezone.now(), actor
    ticket.save(update_fields=["deleted_at", "deleted_by", "updated_at"])
    audit_record(actor=actor, action="ticket.deleted", target=ticket)
    return ticket


@transaction.atomic
def ticket_restore(*, actor: User, ticket: Ticket) -> Ticket:
    _require_roles(actor, MANAGERS, _t("Only managers and admins can restore tickets."))
    updated = Ticket.objects.filter(pk=ticket.pk, deleted_at__isnull=False).update(
        deleted_at=None, deleted_by=None, updated_at=timezone.now()
    )
    if updated:
        audit_record(actor=actor, action="ticket.restored", target=ticket)
    ticket.refresh_from_db()
    return ticket


def tickets_move_customer(
    *, from_customer_id: int, to_customer_id: int, ticket_ids: Sequence[int] | None = None
) -> list[int]:
    """Merge hook body: move tickets between customers; returns the ids moved."""
    qs = Ticket.objects.filter(customer_id=from_customer_id)
    if ticket_ids is not None:
        qs = qs.filter(pk__in=list(ticket_ids))
    ids = list(qs.values_list("pk", flat=True))
    Ticket.objects.filter(pk__in=ids).update(customer_id=to_customer_id)
    return ids


# --- the public contact form ------------------------------------------------------------------------------


@transaction.atomic
def ticket_open_from_contact_form(
    *, name: str, email: str, phone: str = "", subject: str, message: str, language: str = "en"
) -> Ticket:
    """A request from the tenant's public contact form: a ticket (channel web form) and, on commit, an
    acknowledgement e-mail to the address given."""
    ticket = ticket_open(
        actor=None,
        subject=subject,
        description=message,
        channel=Channel.WEB,
        email=email,
        phone=phone,
        name=name,
    )
    if settings_get().acknowledge_contact_form and ticket.requester_email:
        from .tasks import contact_acknowledge_task

        ticket_id = ticket.pk
        transaction.on_commit(lambda: contact_acknowledge_task.delay(ticket_id, language))
    return ticket


def contact_acknowledge_send(*, ticket_id: int, language: str) -> bool:
    """The acknowledgement of a contact-form request, in the language the form was filled in. A stable
    Message-ID per ticket makes a re-send after a crash the same message to mail clients."""
    from django.core.mail import EmailMessage
    from django.template.loader import render_to_string
    from django.utils import translation

    tenant = getattr(connection, "tenant", None)
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().filter(pk=ticket_id).first()
        if ticket is None or not ticket.requester_email or ticket.acknowledged_at is not None:
            return False
        with translation.override(language if language in dict(settings.LANGUAGES) else "en"):
            body = render_to_string(
                "service/email/contact_acknowledgement.txt",
                {"ticket": ticket, "company": getattr(tenant, "name", "")},
            )
            subject = _t("We received your request [#%(number)s]") % {"number": ticket.pk}
        EmailMessage(
            subject=subject,
            body=body,
            to=[ticket.requester_email],
            headers={
                "Message-ID": f"<ticket-{ticket.pk}.ack.{connection.schema_name}@{settings.BASE_DOMAIN}>"
            },
        ).send(fail_silently=False)
        ticket.acknowledged_at = timezone.now()
        ticket.save(update_fields=["acknowledged_at"])
    return True


# --- the SLA scan -----------------------------------------------------------------------------------------

# One INSERT ... SELECT per (target, level): the unique key (ticket, target, level, cycle) is the claim,
# so a scan that runs twice, or again after a worker died mid-scan (its transaction rolled back), raises
# each event exactly once. Warnings go to the assignee (else the team's manager), escalations to the
# team's manager (else the assignee). A warning whose target is already breached is not raised.
_SCAN_SQL = """
INSERT INTO service_slaevent (ticket_id, target, level, cycle, recipient_id, due_at, created_at)
SELECT t.id, %(target)s, %(level)s, t.sla_cycle, {recipient}, t.{due}, %(now)s
FROM service_ticket t LEFT JOIN service_team tm ON tm.id = t.team_id
WHERE t.deleted_at IS NULL AND t.status IN ('new', 'open') {extra}
  AND t.{warn} <= %(now)s AND {level_condition}
ON CONFLICT ON CONSTRAINT sla_event_once DO NOTHING
RETURNING id
"""


def sla_scan(*, now: datetime | None = None) -> list[int]:
    """Raise every warning (80%) and escalation (breach) due by `now` that is not raised yet, set-based.
    Returns the ids of the new SlaEvent rows."""
    now = now or timezone.now()
    created: list[int] = []
    with transaction.atomic(), connection.cursor() as cursor:
        for target, due, warn, extra in (
            (
                "first_response",
                "first_response_due_at",
                "first_response_warn_at",
                "AND t.first_response_at IS NULL",
            ),
            ("resolution", "resolution_due_at", "resolution_warn_at", ""),
        ):
            for level, recipient, condition in (
                ("warning", "COALESCE(t.assignee_id, tm.manager_id)", f"t.{due} > %(now)s"),
                ("breach", "COALESCE(tm.manager_id, t.assignee_id)", f"t.{due} <= %(now)s"),
            ):
                sql = _SCAN_SQL.format(
                    recipient=recipient, due=due, warn=warn, extra=extra, level_condition=condition
                )
                cursor.execute(sql, {"target": target, "level": level, "now": now})
                created.extend(row[0] for row in cursor.fetchall())
    return created


def sla_deliver_pending(*, limit: int = 500) -> int:
    """Hand the raised warnings and escalations on to their recipients.

    Until the notifications app is on main the SlaEvent rows are the record (the queue page lists a
    user's own); this marks nothing delivered. See the report of the `service` branch."""
    return 0


# --- settings (admins) ----------------------------------------------------------------------------------


@transaction.atomic
def category_save(
    *,
    actor: User,
    category: TicketCategory | None = None,
    name: str,
    position: int = 0,
    is_active: bool = True,
) -> TicketCategory:
    _require_roles(actor, ADMINS, _t("Only admins change the service settings."))
    errors: dict[str, list] = {}
    name = _bounded_text(name, field="name", max_length=80, required=True, errors=errors)
    clash = TicketCategory.objects.filter(name__iexact=name)
    if category is not None:
        clash = clash.exclude(pk=category.pk)
    if name and clash.exists():
        errors.setdefault("name", []).append(_("A category with this name exists."))
    if errors:
        raise ValidationError(errors)
    before = (
        {"name": category.name, "position": category.position, "active": category.is_active}
        if category
        else {}
    )
    category = category or TicketCategory()
    category.name, category.position, category.is_active = name, position, is_active
    category.full_clean()
    category.save()
    after = {"name": category.name, "position": category.position, "active": category.is_active}
    audit_record(
        actor=actor, action="service.category_saved", target=category, changes=audit_diff(before, after)
    )
    return category


@transaction.atomic
def team_save(
    *, actor: User, team: Team | None = None, name: str, manager: User | None, members: Iterable[User] = ()
) -> Team:
    _require_roles(actor, ADMINS, _t("Only admins change the service settings."))
    errors: dict[str, list] = {}
    name = _bounded_text(name, field="name", max_length=80, required=True, errors=errors)
    clash = Team.objects.filter(name__iexact=name)
    if team is not None:
        clash = clash.exclude(pk=team.pk)
    if name and clash.exists():
        errors.setdefault("name", []).append(_("A team with this name exists."))
    _check_agent(manager, "manager", errors)
    members = list(members)
    for member in members:
        _check_agent(member, "members", errors)
    if errors:
        raise ValidationError(errors)
    before = (
        {
            "name": team.name,
            "manager": _label(team.manager),
            "members": sorted(m.get_full_name() for m in team.members.all()),
        }
        if team
        else {}
    )
    team = team or Team()
    team.name, team.manager = name, manager
    team.save()
    team.members.set(members)
    after = {
        "name": team.name,
        "manager": _label(manager),
        "members": sorted(m.get_full_name() for m in members),
    }
    audit_record(actor=actor, action="service.team_saved", target=team, changes=audit_diff(before, after))
    return team


@transaction.atomic
def sla_policy_save(
    *,
    actor: User,
    policy: SlaPolicy | None = None,
    priority: str,
    category: TicketCategory | None,
    first_response_minutes: int,
    resolution_minutes: int,
) -> SlaPolicy:
    """Create or change a policy. Open tickets keep the targets they opened with."""
    _require_roles(actor, ADMINS, _t("Only admins change the service settings."))
    errors: dict[str, list] = {}
    if priority not in Priority.values:
        errors.setdefault("priority", []).append(_("Choose a priority."))
    for field, value in (
        ("first_response_minutes", first_response_minutes),
        ("resolution_minutes", resolution_minutes),
    ):
        if not isinstance(value, int) or not 1 <= value <= 60 * 24 * 365:
            errors.setdefault(field, []).append(_("Enter a whole number of minutes between 1 and 525600."))
    if not errors and resolution_minutes < first_response_minutes:
        errors.setdefault("resolution_minutes", []).append(
            _("The resolution target cannot be shorter than the first-response target.")
        )
    clash = SlaPolicy.objects.filter(priority=priority, category=category)
    if policy is not None:
        clash = clash.exclude(pk=policy.pk)
    if not errors and clash.exists():
        errors.setdefault("category", []).append(_("A policy for this priority and category exists."))
    if errors:
        raise ValidationError(errors)
    before = (
        {"first_response": policy.first_response_minutes, "resolution": policy.resolution_minutes}
        if policy
        else {}
    )
    policy = policy or SlaPolicy()
    policy.priority, policy.category = priority, category
    policy.first_response_minutes, policy.resolution_minutes = first_response_minutes, resolution_minutes
    policy.save()
    after = {"first_response": first_response_minutes, "resolution": resolution_minutes}
    audit_record(
        actor=actor, action="service.sla_policy_saved", target=policy, changes=audit_diff(before, after)
    )
    return policy


@transaction.atomic
def sla_policy_delete(*, actor: User, policy: SlaPolicy) -> None:
    _require_roles(actor, ADMINS, _t("Only admins change the service settings."))
    audit_record(
        actor=actor,
        action="service.sla_policy_deleted",
        target=policy,
        changes={"first_response": {"old": policy.first_response_minutes, "new": None}},
    )
    policy.delete()


@transaction.atomic
def working_hours_save(
    *, actor: User, working_hours: dict, holiday_country: str, acknowledge_contact_form: bool = True
) -> ServiceSettings:
    """working_hours: {"0": [["09:00", "18:00"]], ...} in the tenant's time zone."""
    _require_roles(actor, ADMINS, _t("Only admins change the service settings."))
    try:
        weekly = parse_working_hours(working_hours)
    except (ValueError, TypeError, AttributeError):
        raise ValidationError({"working_hours": [_("Enter opening hours as HH:MM-HH:MM, e.g. 09:00-18:00.")]})
    if not any(weekly.values()):
        raise ValidationError({"working_hours": [_("Open the desk on at least one day.")]})
    holiday_country = (holiday_country or "").strip().upper()
    if holiday_country:
        import holidays

        if holiday_country not in holidays.list_supported_countries():
            raise ValidationError({"holiday_country": [_("Choose a country from the list.")]})
    desk = ServiceSettings.objects.select_for_update().get(pk=settings_get().pk)
    before = {
        "working_hours": desk.working_hours,
        "holiday_country": desk.holiday_country,
        "acknowledge": desk.acknowledge_contact_form,
    }
    desk.working_hours = {
        str(day): [[bh.format_hhmm(a), bh.format_hhmm(b)] for a, b in intervals]
        for day, intervals in sorted(weekly.items())
        if intervals
    }
    desk.holiday_country = holiday_country
    desk.acknowledge_contact_form = acknowledge_contact_form
    desk.save()
    after = {
        "working_hours": desk.working_hours,
        "holiday_country": desk.holiday_country,
        "acknowledge": desk.acknowledge_contact_form,
    }
    audit_record(actor=actor, action="service.settings_saved", target=desk, changes=audit_diff(before, after))
    return desk


@transaction.atomic
def holiday_add(*, actor: User, day: date, name: str, is_working_day: bool = False) -> Holiday:
    _require_roles(actor, ADMINS, _t("Only admins change the service settings."))
    errors: dict[str, list] = {}
    name = _bounded_text(name, field="name", max_length=100, required=True, errors=errors)
    if day is None:
        errors.setdefault("day", []).append(_("Enter a date."))
    elif Holiday.objects.filter(day=day).exists():
        errors.setdefault("day", []).append(_("This date is already listed."))
    if errors:
        raise ValidationError(errors)
    holiday = Holiday.objects.create(day=day, name=name, is_working_day=is_working_day)
    audit_record(
        actor=actor,
        action="service.holiday_added",
        target=holiday,
        changes={
            "day": {"old": None, "new": day.isoformat()},
            "working": {"old": None, "new": is_working_day},
        },
    )
    return holiday


@transaction.atomic
def holiday_remove(*, actor: User, holiday: Holiday) -> None:
    _require_roles(actor, ADMINS, _t("Only admins change the service settings."))
    audit_record(
        actor=actor,
        action="service.holiday_removed",
        target=holiday,
        changes={"day": {"old": holiday.day.isoformat(), "new": None}},
    )
    holiday.delete()
