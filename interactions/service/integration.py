"""What the service desk contributes to the customer pages, through `customers.registry.registry`, and
its navigation entry. Registered from `ServiceConfig.ready()`:

- list filter "has open ticket" (an EXISTS on the indexed (customer, status) pair);
- the "Open tickets" panel on the customer page;
- timeline entries: tickets opened and their messages (replies and notes);
- the merge hook: the merged customer's tickets move to the survivor, and back on undo;
- navigation "Service" (order 35) and the notification kinds of SLA warnings and escalations.
"""

from __future__ import annotations

from django import forms
from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils.text import Truncator
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from customers.registry import DetailPanel, ListFilter, MergeHook, PurgeHook, TimelineEntry, registry

from .models import OPEN_STATUSES, Ticket, TicketMessage


def _apply_has_open_ticket(qs, value, user):
    open_ticket = Ticket.objects.filter(
        customer=OuterRef("pk"), status__in=OPEN_STATUSES, deleted_at__isnull=True
    )
    if value == "yes":
        return qs.filter(Exists(open_ticket))
    if value == "no":
        return qs.exclude(Exists(open_ticket))
    return qs


HAS_OPEN_TICKET = ListFilter(
    key="has_open_ticket",
    label=_("Open ticket"),
    form_field=lambda: forms.ChoiceField(
        label=_("Open ticket"),
        choices=[("", _("Any")), ("yes", _("Has an open ticket")), ("no", _("No open ticket"))],
        required=False,
    ),
    apply=_apply_has_open_ticket,
    order=80,
)


def _panel_context(customer, user) -> dict:
    from .selectors import customer_open_tickets

    return {"tickets": customer_open_tickets(customer=customer, user=user), "customer": customer}


PANEL = DetailPanel(
    key="service.tickets",
    title=_("Open tickets"),
    template="service/partials/_customer_tickets_panel.html",
    context=_panel_context,
    order=40,
)


def tickets_provider(*, customer, before=None, limit: int = 20, **_kwargs):
    """Tickets opened and the messages on them (replies, notes, the customer's), newest first."""
    tickets = Ticket.objects.filter(customer=customer, deleted_at__isnull=True)
    opened = tickets.order_by("-created_at", "-id")
    messages = TicketMessage.objects.filter(ticket__in=tickets.values("pk")).select_related(
        "ticket", "author"
    )
    if before is not None:
        opened = opened.filter(created_at__lt=before)
        messages = messages.filter(created_at__lt=before)
    entries = []
    for ticket in opened[:limit]:
        entries.append(
            TimelineEntry(
                when=ticket.created_at,
                kind="ticket",
                title=_t("Ticket opened: %(subject)s") % {"subject": ticket.subject},
                detail=f"#{ticket.pk} · {ticket.get_channel_display()}",
                icon="life-preserver",
                url=reverse("service:ticket", args=[ticket.pk]),
            )
        )
    for message in messages.order_by("-created_at", "-id")[:limit]:
        title = (
            _t("Internal note on #%(number)s")
            if message.kind == TicketMessage.Kind.NOTE
            else _t("Reply on #%(number)s")
        ) % {"number": message.ticket_id}
        entries.append(
            TimelineEntry(
                when=message.created_at,
                kind="ticket_message",
                title=title,
                detail=Truncator(message.body).chars(200),
                icon="chat-left-text" if message.kind == TicketMessage.Kind.REPLY else "sticky",
                url=reverse("service:ticket", args=[message.ticket_id]),
                actor=message.author.get_full_name() if message.author_id else "",
            )
        )
    entries.sort(key=lambda entry: entry.when, reverse=True)
    return entries[:limit]


def merge_move(survivor, merged) -> dict:
    from .services import tickets_move_customer

    return {"tickets": tickets_move_customer(from_customer_id=merged.pk, to_customer_id=survivor.pk)}


def merge_undo(survivor, merged, info: dict) -> None:
    from .services import tickets_move_customer

    tickets_move_customer(
        from_customer_id=survivor.pk, to_customer_id=merged.pk, ticket_ids=info.get("tickets", [])
    )


def purge_hook(customer_ids: list[int]):
    """customers.registry.PurgeHook: a purged customer's ticket attachment files leave the tenant's
    storage once the purge has committed (the tickets go by CASCADE)."""
    from .models import TicketAttachment

    storage = TicketAttachment._meta.get_field("file").storage
    names = list(
        TicketAttachment.objects.filter(ticket__customer_id__in=list(customer_ids))
        .exclude(file="")
        .values_list("file", flat=True)
    )
    if not names:
        return None

    def delete() -> None:
        for name in names:
            try:
                storage.delete(name)
            except OSError:
                continue

    return delete


def register() -> None:
    from crm.navigation import NavItem
    from crm.navigation import register as register_nav
    from crm.notifications.registry import register_kind

    registry.add_list_filter(HAS_OPEN_TICKET)
    registry.add_detail_panel(PANEL)
    registry.add_timeline_provider("service.tickets", tickets_provider)
    registry.add_merge_hook(MergeHook(key="service.tickets", move=merge_move, undo=merge_undo))
    registry.add_purge_hook(PurgeHook(key="service.tickets", before_purge=purge_hook))
    register_nav(NavItem("service", _("Service"), "service:queue", "life-preserver", order=35))
    register_kind("service.sla_warning", _("Ticket close to its SLA target (to the assignee)"))
    register_kind("service.sla_escalation", _("Ticket past its SLA target (to the team's manager)"))
