from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from crm.numbers import NumberError, parse_decimal, parse_id

from .labels import LifecycleStage, RfmSegment
from .models import ChurnAlert, Segment, SegmentationSettings


class SegmentForm(forms.Form):
    name = forms.CharField(label=pgettext_lazy("segment", "Name"), max_length=120)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    is_shared = forms.BooleanField(
        label=_("Shared with the team"),
        required=False,
        initial=True,
        help_text=Segment._meta.get_field("is_shared").help_text,
    )


THRESHOLD_FIELDS = (
    (
        "recency",
        _("Recency cut points (days)"),
        _("e.g. 30, 90, 180, 365: up to 30 days scores 5, over 365 scores 1"),
    ),
    (
        "frequency",
        _("Frequency cut points (purchase days)"),
        _("e.g. 1, 2, 4, 8: 1 day scores 1, 9 or more score 5"),
    ),
    (
        "monetary",
        _("Monetary cut points"),
        _("e.g. 100, 300, 1000, 3000: up to 100 scores 1, over 3000 scores 5"),
    ),
)


class SettingsForm(forms.ModelForm):
    """The tenant's analysis settings; fixed RFM thresholds are typed as four comma-separated numbers."""

    class Meta:
        model = SegmentationSettings
        fields = [
            "rfm_window_days",
            "monetary_mode",
            "scoring_method",
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
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = (self.instance.score_thresholds or {}) if self.instance else {}
        for metric, label, help_text in THRESHOLD_FIELDS:
            values = current.get(metric)
            self.fields[f"thresholds_{metric}"] = forms.CharField(
                label=label,
                max_length=200,
                required=False,
                help_text=help_text,
                initial=", ".join(_plain(v) for v in values) if values else "",
            )

    def clean(self):
        cleaned = super().clean()
        thresholds = {}
        for metric, _label, _help in THRESHOLD_FIELDS:
            raw = (cleaned.get(f"thresholds_{metric}") or "").strip()
            if not raw:
                continue
            try:
                values = [
                    float(parse_decimal(part, max_digits=18, decimal_places=6, thousands=False))
                    for part in raw.replace("，", ",").split(",")[:10]
                    if part.strip()
                ]
            except NumberError:
                self.add_error(f"thresholds_{metric}", _("Enter four numbers separated by commas."))
                continue
            if len(values) != 4 or any(b <= a for a, b in zip(values, values[1:], strict=False)):
                self.add_error(f"thresholds_{metric}", _("Enter four ascending numbers separated by commas."))
                continue
            thresholds[metric] = values
        cleaned["score_thresholds"] = thresholds
        # The model's clean() (run next by ModelForm) checks the thresholds against the scoring method.
        self.instance.score_thresholds = thresholds
        return cleaned

    def settings_values(self) -> dict:
        values = {name: self.cleaned_data[name] for name in self.Meta.fields}
        values["score_thresholds"] = self.cleaned_data["score_thresholds"]
        return values


def _plain(value) -> str:
    number = float(value)
    return str(int(number)) if number == int(number) else str(number)


MAX_BULK_IDS = 200  # = services.MAX_BULK_ALERTS

ALERT_STATUS_CHOICES = (
    ("open", _("Open")),
    ("acknowledged", _("Acknowledged")),
    ("dismissed", _("Dismissed")),
    ("all", _("All")),
)


class AlertQueueFilterForm(forms.Form):
    """The queue's filters (GET). Unknown values are field errors; the queue then shows no filter."""

    status = forms.ChoiceField(label=_("Status"), choices=ALERT_STATUS_CHOICES, required=False)
    reason = forms.ChoiceField(label=_("Reason"), required=False)
    owner = forms.ModelChoiceField(
        label=_("Owner"), queryset=None, required=False, empty_label=_("Any owner")
    )
    segment = forms.ChoiceField(label=_("RFM segment"), required=False)
    stage = forms.ChoiceField(label=_("Lifecycle stage"), required=False)

    def __init__(self, *args, owners, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].choices = [("", _("Any reason")), *ChurnAlert.Reason.choices]
        self.fields["segment"].choices = [("", _("Any segment")), *RfmSegment.choices]
        self.fields["stage"].choices = [("", _("Any stage")), *LifecycleStage.choices]
        self.fields["owner"].queryset = owners
        if not owners.exists():
            del self.fields["owner"]  # sales staff see only their own alerts

    def filters(self) -> dict:
        """Keyword arguments for `selectors.alert_queue` (only the valid fields)."""
        self.is_valid()  # the valid fields filter; an invalid one is shown with its error and ignored
        data = getattr(self, "cleaned_data", {})
        status = data.get("status") or "open"
        owner = data.get("owner")
        return {
            "status": None if status == "all" else status,
            "reason": data.get("reason") or "",
            "owner_id": owner.pk if owner else None,
            "segment": data.get("segment") or "",
            "stage": data.get("stage") or "",
        }


class AlertBulkForm(forms.Form):
    """Bulk acknowledge or assign (POST): the ticked alerts, the action and, to assign, the user."""

    ACTIONS = (("acknowledge", _("Acknowledge")), ("assign", _("Assign")))

    action = forms.ChoiceField(label=_("Action"), choices=ACTIONS)
    alert = forms.TypedMultipleChoiceField(label=_("Alerts"), coerce=int, choices=())
    owner = forms.ModelChoiceField(label=_("Assign to"), queryset=None, required=False)

    def __init__(self, *args, owners, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = owners
        raw = self.data.getlist("alert") if hasattr(self.data, "getlist") else self.data.get("alert", [])
        ids = []
        for value in list(raw)[:MAX_BULK_IDS]:
            parsed = parse_id(value)
            if parsed is not None:
                ids.append(parsed)
        self.fields["alert"].choices = [(i, i) for i in ids]
        if len(raw) > MAX_BULK_IDS:
            self.too_many = True
        else:
            self.too_many = False

    def clean(self):
        data = super().clean()
        if self.too_many:
            raise forms.ValidationError(_("Select at most %(max)s alerts at a time.") % {"max": MAX_BULK_IDS})
        if data.get("action") == "assign" and not data.get("owner"):
            self.add_error("owner", _("Choose whom to assign the alerts to."))
        return data
