from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from crm.numbers import NumberError, parse_decimal

from .models import Segment, SegmentationSettings


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
