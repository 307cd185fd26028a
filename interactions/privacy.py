"""What interactions, follow-ups and service tickets hold about a person, for personal-data requests
(customers.registry.PersonalDataProvider; the erasure is customers.privacy.services.customer_erase).

Export: every interaction (with its attachments' names), follow-up, ticket and ticket message of the
customer, binned ones included. Erasure keeps what the statistics need (the rows, channels, times,
outcomes, statuses, SLA figures) attached to the then anonymous customer and removes what is about
the person:
- interactions: subject and notes blanked; attachments deleted, their files from the tenant's
  storage after the commit;
- follow-ups: a neutral title, notes blanked; their reminder notifications (which name the customer)
  deleted;
- tickets: a neutral subject, description, requester e-mail and phone blanked; every message body
  replaced by a neutral text; attachments deleted (files after the commit); the SLA notifications
  deleted;
- the audit log's copies of those texts (the snapshots of "interaction.created" and the like) are
  redacted with them.
"""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from crm.audit.services import audit_redact
from crm.notifications.models import Notification
from customers.registry import PersonalDataProvider, registry

from .followups.models import FollowUp
from .models import Interaction, InteractionAttachment
from .service.models import Ticket, TicketAttachment, TicketMessage

INTERACTION_FIELDS = (
    "channel", "direction", "occurred_at", "duration_minutes", "subject", "notes", "outcome", "order",
    "author", "created_at", "deleted_at",
)  # fmt: skip
FOLLOWUP_FIELDS = ("title", "notes", "due_at", "status", "source", "assignee", "completed_at", "created_at")
TICKET_FIELDS = (
    "subject", "description", "channel", "priority", "status", "requester_email", "requester_phone",
    "created_at", "resolved_at", "closed_at",
)  # fmt: skip
MIN_REDACTED = 3  # audit_redact ignores shorter strings (they would match everywhere)


def _row(obj, fields) -> dict:
    """JSON-safe values of `fields` (dates as ISO text, related rows as their id)."""
    row = {}
    for name in fields:
        value = getattr(obj, f"{name}_id") if obj._meta.get_field(name).is_relation else getattr(obj, name)
        row[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return row


def _texts(*values) -> list[str]:
    return [value for value in values if isinstance(value, str) and len(value.strip()) >= MIN_REDACTED]


def _delete_files_on_commit(files) -> None:
    """(storage, name) pairs to delete once the erasure has committed (a rollback keeps them)."""
    files = [(storage, name) for storage, name in files if name]

    def delete():
        for storage, name in files:
            try:
                storage.delete(name)
            except OSError:
                continue

    if files:
        transaction.on_commit(delete)


# --- interactions ------------------------------------------------------------------------------------


def export_interactions(customer) -> list[dict]:
    interactions = Interaction.objects.filter(customer=customer).order_by("occurred_at", "pk")
    names: dict[int, list[str]] = {}
    for interaction_id, name in InteractionAttachment.objects.filter(
        interaction__customer=customer
    ).values_list("interaction_id", "original_name"):
        names.setdefault(interaction_id, []).append(name)
    return [
        {"id": i.pk, **_row(i, INTERACTION_FIELDS), "attachments": names.get(i.pk, [])} for i in interactions
    ]


def erase_interactions(customer, actor) -> dict:
    interactions = Interaction.objects.filter(customer=customer)
    texts = []
    for subject, notes in interactions.values_list("subject", "notes"):
        texts += _texts(subject, notes)
    attachments = InteractionAttachment.objects.filter(interaction__customer=customer)
    storage = InteractionAttachment._meta.get_field("file").storage
    files = [(storage, name) for name in attachments.values_list("file", flat=True)]
    names = list(attachments.values_list("original_name", flat=True))
    deleted, _details = attachments.delete()
    blanked = interactions.exclude(subject="", notes="").update(subject="", notes="")
    _delete_files_on_commit(files)
    redacted = audit_redact(target=customer, values=texts + _texts(*names))
    return {
        "interactions_blanked": blanked,
        "attachments_deleted": deleted,
        "audit_events_redacted": redacted,
    }


# --- follow-ups --------------------------------------------------------------------------------------


def export_followups(customer) -> list[dict]:
    return [
        {"id": f.pk, **_row(f, FOLLOWUP_FIELDS)}
        for f in FollowUp.objects.filter(customer=customer).order_by("due_at", "pk")
    ]


def erase_followups(customer, actor) -> dict:
    followups = FollowUp.objects.filter(customer=customer)
    texts, keys = [], []
    for pk, title, notes in followups.values_list("pk", "title", "notes"):
        texts += _texts(title, notes)
        keys.append(f"followup:{pk}:")
    reminders = 0
    for prefix in keys:  # the reminders name the customer ("Customer: ...")
        reminders += Notification.objects.filter(key__startswith=prefix).delete()[0]
    blanked = followups.update(title=_t("Follow-up"), notes="")
    redacted = audit_redact(target=customer, values=texts)
    return {
        "followups_blanked": blanked,
        "notifications_deleted": reminders,
        "audit_events_redacted": redacted,
    }


# --- service tickets -----------------------------------------------------------------------------------


def export_tickets(customer) -> list[dict]:
    tickets = list(Ticket.objects.filter(customer=customer).order_by("created_at", "pk"))
    messages: dict[int, list] = {}
    for message in TicketMessage.objects.filter(ticket__customer=customer).order_by("created_at", "pk"):
        messages.setdefault(message.ticket_id, []).append(_row(message, ("kind", "body", "created_at")))
    files: dict[int, list] = {}
    for ticket_id, name in TicketAttachment.objects.filter(ticket__customer=customer).values_list(
        "ticket_id", "original_name"
    ):
        files.setdefault(ticket_id, []).append(name)
    return [
        {
            "id": t.pk,
            **_row(t, TICKET_FIELDS),
            "messages": messages.get(t.pk, []),
            "attachments": files.get(t.pk, []),
        }
        for t in tickets
    ]


def erase_tickets(customer, actor) -> dict:
    tickets = Ticket.objects.filter(customer=customer)
    ticket_ids = list(tickets.values_list("pk", flat=True))
    texts = []
    for row in tickets.values_list("subject", "description", "requester_email", "requester_phone"):
        texts += _texts(*row)
    messages = TicketMessage.objects.filter(ticket_id__in=ticket_ids)
    texts += _texts(*messages.values_list("body", flat=True))
    attachments = TicketAttachment.objects.filter(ticket_id__in=ticket_ids)
    storage = TicketAttachment._meta.get_field("file").storage
    files = [(storage, name) for name in attachments.values_list("file", flat=True)]
    texts += _texts(*attachments.values_list("original_name", flat=True))
    deleted, _details = attachments.delete()
    bodies = messages.update(body=_t("(erased)"))
    blanked = tickets.update(
        subject=_t("Erased ticket"), description="", requester_email="", requester_phone=""
    )
    sla_keys = [f"service.sla.{pk}" for pk in _sla_event_ids(ticket_ids)]
    notifications = Notification.objects.filter(key__in=sla_keys).delete()[0] if sla_keys else 0
    _delete_files_on_commit(files)
    redacted = audit_redact(target=customer, values=texts)
    return {
        "tickets_blanked": blanked,
        "messages_blanked": bodies,
        "attachments_deleted": deleted,
        "notifications_deleted": notifications,
        "audit_events_redacted": redacted,
    }


def _sla_event_ids(ticket_ids: list[int]) -> list[int]:
    from .service.models import SlaEvent

    return list(SlaEvent.objects.filter(ticket_id__in=ticket_ids).values_list("pk", flat=True))


def register() -> None:
    registry.add_personal_data(
        PersonalDataProvider(
            key="interactions",
            label=_("Calls, visits and other interactions"),
            export=export_interactions,
            erase=erase_interactions,
            order=30,
        )
    )
    registry.add_personal_data(
        PersonalDataProvider(
            key="followups",
            label=_("Follow-ups"),
            export=export_followups,
            erase=erase_followups,
            order=31,
        )
    )
    registry.add_personal_data(
        PersonalDataProvider(
            key="service",
            label=_("Service tickets"),
            export=export_tickets,
            erase=erase_tickets,
            order=32,
        )
    )
