"""What segmentation contributes to the customer pages, through `customers.registry.registry`.

Registered from `SegmentationConfig.ready()`:
- list filters: RFM segment, lifecycle stage, saved segment, CLV range, P(alive) below;
- list columns: segment, stage, CLV, P(alive) (each `prepare` adds select_related("score"): no N+1);
- the "Value" panel on the customer page;
- timeline entries: stage changes and churn alerts;
- the merge hook (history and alerts move to the survivor; the merged customer's score is dropped
  and the survivor's is recomputed by the next recompute).
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.urls import reverse
from django.utils.formats import number_format
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from crm.numbers import BoundedDecimalField, parse_id
from customers.registry import DetailPanel, ListColumn, ListFilter, MergeHook, TimelineEntry, registry

from .labels import ClvModel, LifecycleStage, RfmSegment, segment_label, stage_label
from .models import CustomerScore


def _score(customer) -> CustomerScore | None:
    try:
        return customer.score
    except CustomerScore.DoesNotExist:
        return None


# --------------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------------
class SavedSegmentField(forms.ChoiceField):
    """Offers the saved segments the viewer may use (`limit_to`: shared ones and their own; managers
    and admins all), or the shared ones when no viewer is known. Accepts any segment id: applying
    the filter checks the user may use it (`_apply_saved_segment`)."""

    def __init__(self, **kwargs):
        super().__init__(choices=self._shared_choices, **kwargs)

    @staticmethod
    def _shared_choices():
        from .models import Segment

        return SavedSegmentField._with_empty(Segment.objects.filter(is_shared=True))

    @staticmethod
    def _with_empty(segments):
        return [("", _t("Any saved segment"))] + [
            (str(pk), name) for pk, name in segments.order_by("name").values_list("pk", "name")
        ]

    def limit_to(self, user) -> None:
        from .selectors import segment_list

        self.choices = lambda: self._with_empty(segment_list(user=user))

    def to_python(self, value):
        if value in self.empty_values:
            return None
        number = parse_id(value)
        if number is None:
            raise forms.ValidationError(_("Choose a saved segment."), code="invalid_choice")
        return number

    def validate(self, value):
        if value is None and self.required:
            raise forms.ValidationError(self.error_messages["required"], code="required")


def _apply_saved_segment(qs, value, user):
    from .rules import RuleError, rules_to_q
    from .selectors import segment_list

    segment = segment_list(user=user).filter(pk=value).first()
    if segment is None:
        return qs.none()
    try:
        return qs.filter(rules_to_q(segment.rules))
    except RuleError:  # e.g. a custom field used by the rules was removed since
        return qs.none()


def _choice_field(label, choices, empty_label):
    return lambda: forms.ChoiceField(label=label, choices=[("", empty_label)] + list(choices), required=False)


def _money_field(label):
    return lambda: BoundedDecimalField(
        label=label, min_value=0, max_digits=14, decimal_places=2, required=False
    )


SCORE_CHOICES = [(str(n), str(n)) for n in range(1, 6)]

FILTERS = [
    ListFilter(
        key="rfm_segment",
        label=_("RFM segment"),
        form_field=_choice_field(_("RFM segment"), RfmSegment.choices, _("Any RFM segment")),
        apply=lambda qs, value, user: qs.filter(score__rfm_segment=value),
        order=60,
    ),
    ListFilter(
        key="lifecycle_stage",
        label=_("Lifecycle stage"),
        form_field=_choice_field(_("Lifecycle stage"), LifecycleStage.choices, _("Any stage")),
        apply=lambda qs, value, user: qs.filter(score__lifecycle_stage=value),
        order=61,
    ),
    ListFilter(
        key="segment",
        label=_("Saved segment"),
        form_field=lambda: SavedSegmentField(label=_("Saved segment"), required=False),
        apply=_apply_saved_segment,
        order=62,
    ),
    ListFilter(
        key="r_score",
        label=_("R score"),
        form_field=_choice_field(_("R score"), SCORE_CHOICES, _("Any R score")),
        apply=lambda qs, value, user: qs.filter(score__r_score=value),
        order=66,
    ),
    ListFilter(
        key="f_score",
        label=_("F score"),
        form_field=_choice_field(_("F score"), SCORE_CHOICES, _("Any F score")),
        apply=lambda qs, value, user: qs.filter(score__f_score=value),
        order=67,
    ),
    ListFilter(
        key="clv_min",
        label=_("Predicted CLV from"),
        form_field=_money_field(_("Predicted CLV from")),
        apply=lambda qs, value, user: qs.filter(score__predicted_clv__gte=value),
        order=63,
    ),
    ListFilter(
        key="clv_max",
        label=_("Predicted CLV up to"),
        form_field=_money_field(_("Predicted CLV up to")),
        apply=lambda qs, value, user: qs.filter(score__predicted_clv__lte=value),
        order=64,
    ),
    ListFilter(
        key="alive_below",
        label=_("P(alive) below"),
        form_field=lambda: BoundedDecimalField(
            label=_("P(alive) below"),
            min_value=0,
            max_value=1,
            max_digits=4,
            decimal_places=3,
            required=False,
            help_text=_("between 0 and 1, e.g. 0.3"),
        ),
        apply=lambda qs, value, user: qs.filter(score__probability_alive__lt=value),
        order=65,
    ),
]


# --------------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------------
def _with_score(qs):
    return qs.select_related("score")


def _segment_cell(customer):
    score = _score(customer)
    return segment_label(score.rfm_segment) if score and score.rfm_segment else None


def _stage_cell(customer):
    score = _score(customer)
    return stage_label(score.lifecycle_stage) if score else None


def _clv_cell(customer) -> Decimal | None:
    score = _score(customer)
    return score.predicted_clv if score else None


def _alive_cell(customer) -> str | None:
    score = _score(customer)
    if score is None or score.probability_alive is None:
        return None
    return f"{number_format(round(score.probability_alive * 100), decimal_pos=0)}%"


COLUMNS = [
    ListColumn("rfm_segment", _("RFM segment"), _with_score, _segment_cell, "score__rfm_segment", True, 60),
    ListColumn("lifecycle_stage", _("Stage"), _with_score, _stage_cell, "score__lifecycle_stage", True, 61),
    ListColumn(
        "predicted_clv", _("Predicted CLV"), _with_score, _clv_cell, "score__predicted_clv", False, 62
    ),
    ListColumn(
        "probability_alive", _("P(alive)"), _with_score, _alive_cell, "score__probability_alive", False, 63
    ),
]


# --------------------------------------------------------------------------------------------------
# Detail panel
# --------------------------------------------------------------------------------------------------
def _value_panel_context(customer, user) -> dict:
    score = _score(customer)
    return {
        "score": score,
        "segment_label": segment_label(score.rfm_segment) if score else "",
        "stage_label": stage_label(score.lifecycle_stage) if score else "",
        "is_historical": bool(score and score.clv_model == ClvModel.HISTORICAL),
        "model_label": ClvModel(score.clv_model).label if score and score.clv_model else "",
        # Shown beside the model's expected order value, which differs from it (see the panel).
        "average_order": (customer.total_spent / customer.orders_count) if customer.orders_count else None,
    }


PANEL = DetailPanel(
    key="segmentation.value",
    title=_("Value"),
    template="segmentation/partials/_customer_value_panel.html",
    context=_value_panel_context,
    order=20,
)


# --------------------------------------------------------------------------------------------------
# Timeline
# --------------------------------------------------------------------------------------------------
def stage_changes_provider(*, customer, before=None, limit: int = 20, **_kwargs):
    from .selectors import customer_stage_transitions

    for transition in customer_stage_transitions(customer=customer, before=before, limit=limit):
        if transition.from_stage:
            title = _t("Stage: %(from)s → %(to)s") % {
                "from": stage_label(transition.from_stage),
                "to": stage_label(transition.to_stage),
            }
        else:
            title = _t("Stage: %(to)s") % {"to": stage_label(transition.to_stage)}
        yield TimelineEntry(when=transition.at, kind="stage_change", title=title, icon="signpost-split")


def alerts_provider(*, customer, before=None, limit: int = 20, **_kwargs):
    from .selectors import customer_alerts

    url = reverse("segmentation:alerts")
    for alert in customer_alerts(customer=customer, before=before, limit=limit):
        detail = alert.get_status_display()
        if alert.acted_by_id and alert.acted_by:
            detail = f"{detail} · {alert.acted_by.get_full_name()}"
        yield TimelineEntry(
            when=alert.created_at,
            kind="alert",
            title=_t("Churn alert: %(reason)s") % {"reason": alert.get_reason_display()},
            detail=detail,
            icon="exclamation-triangle",
            url=url,
        )


# --------------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------------
def register() -> None:
    from .services import merge_move, merge_undo

    for item in FILTERS:
        registry.add_list_filter(item)
    for column in COLUMNS:
        registry.add_list_column(column)
    registry.add_detail_panel(PANEL)
    registry.add_timeline_provider("segmentation.stages", stage_changes_provider)
    registry.add_timeline_provider("segmentation.alerts", alerts_provider)
    registry.add_merge_hook(MergeHook(key="segmentation", move=merge_move, undo=merge_undo))


# --------------------------------------------------------------------------------------------------
# Navigation badge and following customer changes (connected in SegmentationConfig.ready())
# --------------------------------------------------------------------------------------------------
def open_alerts_badge(user) -> str:
    from .selectors import alert_badge

    return alert_badge(user)


# Changes after which the scores are recomputed at once; the others (a single order, a merge, the
# bin) wait for the nightly recompute, as the merge hook above explains.
RECOMPUTE_ON = {"import"}


def recompute_when_customers_change(sender, *, reason: str, actor=None, **kwargs) -> None:
    """customers.signals.customers_changed receiver: queue a recompute (or join the waiting one)."""
    if reason not in RECOMPUTE_ON:
        return
    from .services import recompute_request

    recompute_request(user=actor, trigger=reason)


def follow_tag_merge(sender, *, source_id: int, target_id: int, **kwargs) -> None:
    """Receiver of customers' `tags_merged`: saved segments that named the merged tag name the tag it
    was merged into (inside the merge's transaction), instead of an id that no longer exists."""
    from .models import Segment
    from .rules import replace_tag

    for pk, rules in Segment.objects.values_list("pk", "rules"):
        changed = replace_tag(rules, source_id=source_id, target_id=target_id)
        if changed != rules:
            Segment.objects.filter(pk=pk).update(rules=changed)
