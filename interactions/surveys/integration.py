"""What the surveys contribute to the rest of the CRM. Registered from `SurveysConfig.ready()`:

- triggers: `interactions.service.signals.ticket_resolved` and `interactions.signals.interaction_logged`
  (both sent on commit) create invitations;
- customer list filters "last NPS" and "last CSAT" (a join on the indexed CustomerSurveyScore row);
- the "Satisfaction" panel on the customer page and timeline entries for answers;
- the merge hook (invitations and answers move to the survivor, back on undo);
- segment rule fields "last NPS score" and "last CSAT" (segmentation.rules.register_rule_field);
- the personal-data provider (answers' comments);
- navigation "Surveys" and the notification kind of detractor alerts.
"""

from __future__ import annotations

import logging

from django.urls import reverse
from django.utils.text import Truncator
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from crm.numbers import BoundedIntegerField
from customers.registry import (
    DetailPanel,
    ListFilter,
    MergeHook,
    PersonalDataProvider,
    TimelineEntry,
    registry,
)

from .models import SurveyKind, SurveyResponse

logger = logging.getLogger(__name__)


# --- triggers -----------------------------------------------------------------------------------------


def on_ticket_resolved(sender, *, ticket_id: int, **kwargs) -> None:
    from .services import invitations_for_ticket

    invitations_for_ticket(ticket_id=ticket_id)


def on_interaction_logged(sender, *, interaction_id: int, outcome_id=None, **kwargs) -> None:
    from .services import invitations_for_interaction

    invitations_for_interaction(interaction_id=interaction_id, outcome_id=outcome_id)


# --- list filters ---------------------------------------------------------------------------------------


def _range_filter(key: str, label, lookup: str, low: int, high: int, order: int) -> ListFilter:
    return ListFilter(
        key=key,
        label=label,
        form_field=lambda: BoundedIntegerField(label=label, min_value=low, max_value=high, required=False),
        apply=lambda qs, value, user: qs.filter(**{lookup: value}),
        order=order,
    )


FILTERS = [
    _range_filter("nps_min", _("Last NPS from"), "survey_score__last_nps__gte", 0, 10, 90),
    _range_filter("nps_max", _("Last NPS up to"), "survey_score__last_nps__lte", 0, 10, 91),
    _range_filter("csat_min", _("Last CSAT from"), "survey_score__last_csat__gte", 1, 5, 92),
    _range_filter("csat_max", _("Last CSAT up to"), "survey_score__last_csat__lte", 1, 5, 93),
]


# --- panel and timeline -----------------------------------------------------------------------------


def _panel_context(customer, user) -> dict | None:
    from .selectors import customer_survey_summary

    summary = customer_survey_summary(customer=customer)
    if summary is None:
        return None
    return {"summary": summary, "customer": customer}


PANEL = DetailPanel(
    key="surveys",
    title=_("Satisfaction"),
    template="surveys/partials/_customer_panel.html",
    context=_panel_context,
    order=45,
)


def responses_provider(*, customer, before=None, limit: int = 20, **_kwargs):
    responses = SurveyResponse.objects.filter(customer=customer).select_related("template")
    if before is not None:
        responses = responses.filter(answered_at__lt=before)
    for response in responses.order_by("-answered_at", "-id")[:limit]:
        label = "NPS" if response.kind == SurveyKind.NPS else "CSAT"
        yield TimelineEntry(
            when=response.answered_at,
            kind="survey_response",
            title=_t("Survey answered: %(kind)s %(score)d") % {"kind": label, "score": response.score},
            detail=Truncator(response.comment).chars(200),
            icon="emoji-frown" if response.is_detractor else "emoji-smile",
            url=reverse("surveys:responses") + f"?customer={response.customer_id}",
        )


# --- merge --------------------------------------------------------------------------------------------


def merge_move(survivor, merged) -> dict:
    from .services import surveys_move_customer

    return {"invitations": surveys_move_customer(from_customer_id=merged.pk, to_customer_id=survivor.pk)}


def merge_undo(survivor, merged, info: dict) -> None:
    from .services import surveys_move_customer

    surveys_move_customer(
        from_customer_id=survivor.pk, to_customer_id=merged.pk, invitation_ids=info.get("invitations", [])
    )


# --- segment rules ------------------------------------------------------------------------------------


def register_rule_fields() -> None:
    from segmentation.rules import RuleField, register_rule_field

    group = _("Surveys")
    register_rule_field(
        RuleField(
            "last_nps",
            _("Last NPS score"),
            "number",
            "survey_score__last_nps",
            group,
            minimum=0,
            maximum=10,
            integer=True,
        )
    )
    register_rule_field(
        RuleField(
            "last_csat",
            _("Last CSAT"),
            "number",
            "survey_score__last_csat",
            group,
            minimum=1,
            maximum=5,
            integer=True,
        )
    )


# --- personal data --------------------------------------------------------------------------------------


def _export(customer):
    from .services import personal_data_export

    return personal_data_export(customer)


def _erase(customer, actor):
    from .services import personal_data_erase

    return personal_data_erase(customer, actor)


def register() -> None:
    from crm.navigation import NavItem
    from crm.navigation import register as register_nav
    from crm.notifications.registry import register_kind
    from interactions.service.signals import ticket_resolved
    from interactions.signals import interaction_logged

    ticket_resolved.connect(on_ticket_resolved, dispatch_uid="surveys.ticket_resolved")
    interaction_logged.connect(on_interaction_logged, dispatch_uid="surveys.interaction_logged")
    for item in FILTERS:
        registry.add_list_filter(item)
    registry.add_detail_panel(PANEL)
    registry.add_timeline_provider("surveys.responses", responses_provider)
    registry.add_merge_hook(MergeHook(key="surveys", move=merge_move, undo=merge_undo))
    registry.add_personal_data(
        PersonalDataProvider(key="surveys", label=_("Survey answers"), export=_export, erase=_erase, order=45)
    )
    register_rule_fields()
    register_nav(NavItem("surveys", _("Surveys"), "surveys:reports", "clipboard-check", order=36))
    register_kind(
        "surveys.detractor", _("A customer of yours answered a survey unhappily"), default_email=True
    )
