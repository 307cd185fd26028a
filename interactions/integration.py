"""What the interaction log contributes to the customer pages, through `customers.registry.registry`.

Registered from `InteractionsConfig.ready()`:
- a list filter "no contact for N days" (NOT EXISTS on interaction_customer_time_idx);
- a list column "Last contact" (one index probe per row of the page, as a subquery: no N+1);
- a row action "Log interaction" that opens the log dialog from the customer list;
- the "Interactions" panel on the 360 page (latest interactions and the log button);
- timeline entries for interactions;
- the merge hook (interactions move to the survivor, and back on undo);
- the purge hook (a purged customer's attachment files leave the tenant's storage).
"""

from __future__ import annotations

from django.urls import reverse
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from crm.numbers import BoundedIntegerField
from customers.registry import (
    DetailPanel,
    ListColumn,
    ListFilter,
    MergeHook,
    PurgeHook,
    RowAction,
    TimelineEntry,
    registry,
)

from .labels import CHANNEL_ICONS

NO_CONTACT_MAX_DAYS = 3650


# --- filter ----------------------------------------------------------------------------------------


def _apply_no_contact(qs, value, user):
    from .selectors import customers_without_contact

    return customers_without_contact(qs, days=int(value))


FILTERS = [
    ListFilter(
        key="no_contact_days",
        label=_("No contact for (days)"),
        form_field=lambda: BoundedIntegerField(
            label=_("No contact for (days)"),
            min_value=1,
            max_value=NO_CONTACT_MAX_DAYS,
            required=False,
            help_text=_("customers without an interaction in that many days"),
        ),
        apply=_apply_no_contact,
        order=70,
    ),
]


# --- column ----------------------------------------------------------------------------------------


def _with_last_contact(qs):
    from .selectors import last_contact_subquery

    return qs.annotate(last_contact_at=last_contact_subquery())


def _last_contact_cell(customer):
    return getattr(customer, "last_contact_at", None)  # a time: the list shows its day


COLUMNS = [
    ListColumn("last_contact", _("Last contact"), _with_last_contact, _last_contact_cell, None, True, 70)
]


# --- row action ------------------------------------------------------------------------------------


ROW_ACTION = RowAction(
    key="interactions.log",
    label=_("Log interaction"),
    url=lambda customer: reverse("interactions:log", args=[customer.pk]),
    icon="chat-dots",
    order=10,
)


# --- panel -----------------------------------------------------------------------------------------


def _panel_context(customer, user) -> dict:
    from .selectors import customer_interactions

    interactions = customer_interactions(customer=customer)
    for interaction in interactions:
        interaction.icon = CHANNEL_ICONS.get(interaction.channel, "dot")
    return {"interactions": interactions}


PANEL = DetailPanel(
    key="interactions.latest",
    title=_("Interactions"),
    template="interactions/partials/_customer_panel.html",
    context=_panel_context,
    order=10,
)


# --- timeline --------------------------------------------------------------------------------------


def interactions_provider(*, customer, before=None, limit: int = 20, **_kwargs):
    from .selectors import customer_interactions

    for interaction in customer_interactions(customer=customer, before=before, limit=limit):
        channel = interaction.get_channel_display()
        title = f"{channel} · {interaction.subject}" if interaction.subject else channel
        parts = [interaction.get_direction_display()]
        if interaction.outcome_id:
            parts.append(interaction.outcome.label)
        if interaction.notes:
            parts.append(Truncator(interaction.notes).chars(140))
        yield TimelineEntry(
            when=interaction.occurred_at,
            kind="interaction",
            title=title,
            detail=" · ".join(str(p) for p in parts),
            icon=CHANNEL_ICONS.get(interaction.channel, "chat-dots"),
            url=reverse("interactions:detail", args=[interaction.pk]),
            actor=interaction.author.get_full_name() if interaction.author_id else "",
        )


# --- registration ----------------------------------------------------------------------------------


def register() -> None:
    from .services import merge_move, merge_undo, purge_hook

    for item in FILTERS:
        registry.add_list_filter(item)
    for column in COLUMNS:
        registry.add_list_column(column)
    registry.add_row_action(ROW_ACTION)
    registry.add_detail_panel(PANEL)
    registry.add_timeline_provider("interactions", interactions_provider)
    registry.add_merge_hook(MergeHook(key="interactions", move=merge_move, undo=merge_undo))
    registry.add_purge_hook(PurgeHook(key="interactions", before_purge=purge_hook))
