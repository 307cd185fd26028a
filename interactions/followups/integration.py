"""What follow-ups contribute to the customer pages (through `customers.registry.registry`) and the
receivers that turn customer and segmentation events into rule follow-ups.

Registered from `FollowupsConfig.ready()`:
- list filter "has an open follow-up" (EXISTS on the partial index of open follow-ups per customer);
- bulk action "assign a follow-up" on the selected customers;
- the "Follow-ups" panel on the 360 page (open follow-ups and a form to add one);
- timeline entries: follow-up created, done;
- the merge hook (follow-ups move to the survivor, and back on undo).

The receivers only queue `apply_followup_rules_task` (when an active rule wants the event): the work
is done by a worker, never in the request that created the customer or order.
"""

from __future__ import annotations

import logging

from django import forms
from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from customers.registry import BulkAction, DetailPanel, ListFilter, MergeHook, TimelineEntry, registry

from .models import FollowUp, FollowUpRule

logger = logging.getLogger(__name__)


# --- list filter -------------------------------------------------------------------------------------
def _apply_has_open(qs, value, user):
    open_followups = FollowUp.objects.filter(customer_id=OuterRef("pk"), status=FollowUp.Status.OPEN)
    if value == "yes":
        return qs.filter(Exists(open_followups))
    if value == "no":
        return qs.exclude(Exists(open_followups))
    return qs


FILTER = ListFilter(
    key="open_followup",
    label=_("Open follow-up"),
    form_field=lambda: forms.ChoiceField(
        label=_("Open follow-up"),
        choices=[("", _("Any")), ("yes", _("Has an open follow-up")), ("no", _("No open follow-up"))],
        required=False,
    ),
    apply=_apply_has_open,
    order=70,
)

BULK = BulkAction(
    key="followup", label=_("Assign a follow-up"), url_name="followups:bulk_new", icon="calendar-plus"
)


# --- 360 panel ----------------------------------------------------------------------------------------
def _panel_context(customer, user) -> dict:
    from .forms import FollowUpForm
    from .selectors import customer_open_followups

    return {
        "followups": customer_open_followups(user=user, customer=customer),
        "form": FollowUpForm(user=user),
    }


PANEL = DetailPanel(
    key="followups",
    title=_("Follow-ups"),
    template="followups/partials/_customer_panel.html",
    context=_panel_context,
    order=15,
)


# --- timeline -----------------------------------------------------------------------------------------
def followups_provider(*, customer, before=None, limit: int = 20, **_kwargs):
    """One entry when a follow-up was created, one when it was done (cancelled ones show as created)."""
    from .selectors import customer_followups_for_timeline

    url = reverse("customers:detail", args=[customer.pk])
    entries = []
    for followup in customer_followups_for_timeline(customer=customer, before=before, limit=limit):
        assignee = followup.assignee.get_full_name() if followup.assignee_id else ""
        if before is None or followup.created_at < before:
            entries.append(
                TimelineEntry(
                    when=followup.created_at,
                    kind="followup",
                    title=_t("Follow-up: %(title)s") % {"title": followup.title},
                    detail=followup.get_source_display(),
                    icon="calendar-plus",
                    url=url,
                    actor=assignee,
                )
            )
        if (
            followup.status == FollowUp.Status.DONE
            and followup.completed_at
            and (before is None or followup.completed_at < before)
        ):
            entries.append(
                TimelineEntry(
                    when=followup.completed_at,
                    kind="followup_done",
                    title=_t("Follow-up done: %(title)s") % {"title": followup.title},
                    icon="check2-circle",
                    url=url,
                    actor=followup.completed_by.get_full_name() if followup.completed_by_id else "",
                )
            )
    entries.sort(key=lambda entry: entry.when, reverse=True)
    return entries[:limit]


def register() -> None:
    from .services import merge_move, merge_undo

    registry.add_list_filter(FILTER)
    registry.add_bulk_action(BULK)
    registry.add_detail_panel(PANEL)
    registry.add_timeline_provider("followups", followups_provider)
    registry.add_merge_hook(MergeHook(key="followups", move=merge_move, undo=merge_undo))


# --- receivers: events -> rules (queued) ----------------------------------------------------------------
def _queue(triggers: tuple[str, ...], **kwargs) -> None:
    from .selectors import any_active_rule
    from .tasks import apply_followup_rules_task

    if any_active_rule(triggers=triggers):
        apply_followup_rules_task.apply_async(kwargs=kwargs)


def on_customers_changed(sender, *, reason: str, customer_ids=None, **kwargs) -> None:
    from customers.signals import REASON_CREATED, REASON_IMPORT, REASON_ORDERS

    from .tasks import EVENT_CREATED, EVENT_ORDERS

    if reason == REASON_CREATED:
        _queue((FollowUpRule.Trigger.CUSTOMER_CREATED,), event=EVENT_CREATED, customer_ids=customer_ids)
    elif reason == REASON_ORDERS:
        _queue((FollowUpRule.Trigger.FIRST_PURCHASE,), event=EVENT_ORDERS, customer_ids=customer_ids)
    elif reason == REASON_IMPORT:  # an import may create customers and record first purchases
        _queue((FollowUpRule.Trigger.CUSTOMER_CREATED,), event=EVENT_CREATED, customer_ids=None)
        _queue((FollowUpRule.Trigger.FIRST_PURCHASE,), event=EVENT_ORDERS, customer_ids=None)


def on_churn_alerts_raised(sender, *, alert_ids, customer_ids=None, **kwargs) -> None:
    from .tasks import EVENT_ALERTS

    _queue((FollowUpRule.Trigger.CHURN_ALERT,), event=EVENT_ALERTS, alert_ids=list(alert_ids))


def on_recompute_finished(sender, *, run_id: int, **kwargs) -> None:
    from .tasks import EVENT_RECOMPUTE

    _queue(
        (FollowUpRule.Trigger.LIFECYCLE_STAGE, FollowUpRule.Trigger.SEGMENT),
        event=EVENT_RECOMPUTE,
        run_id=run_id,
    )


def connect_receivers() -> None:
    from customers.signals import customers_changed
    from segmentation.signals import churn_alerts_raised, recompute_finished

    customers_changed.connect(on_customers_changed, dispatch_uid="followups.customers_changed")
    churn_alerts_raised.connect(on_churn_alerts_raised, dispatch_uid="followups.churn_alerts")
    recompute_finished.connect(on_recompute_finished, dispatch_uid="followups.recompute_finished")
