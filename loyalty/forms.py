"""Forms of the loyalty pages. Every number goes through the bounded fields of crm/numbers.py."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from crm.numbers import BoundedDecimalField, BoundedIntegerField
from customers.models import Order

from .models import Programme, Tier
from .services import MAX_POINTS


def _decimal(label, *, max_digits=8, places=2, min_value=0, max_value=None, help_text=""):
    return BoundedDecimalField(
        label=label,
        max_digits=max_digits,
        decimal_places=places,
        min_value=min_value,
        max_value=max_value,
        help_text=help_text,
    )


class ProgrammeForm(forms.ModelForm):
    points_per_unit = _decimal(
        _("Points per unit of currency"), places=3, max_value=10000, help_text=_("e.g. 1 point per ¥1")
    )
    birthday_multiplier = _decimal(_("Birthday month multiplier"), max_digits=5, min_value=1, max_value=100)
    campaign_multiplier = _decimal(_("Campaign multiplier"), max_digits=5, min_value=1, max_value=100)
    redemption_value = _decimal(_("Value of a redemption unit"), max_digits=10, min_value=0)
    redemption_points = BoundedIntegerField(
        label=_("Points per redemption unit"), min_value=1, max_value=1_000_000
    )
    signup_bonus = BoundedIntegerField(label=_("Sign-up bonus (points)"), min_value=0, max_value=1_000_000)
    first_purchase_bonus = BoundedIntegerField(
        label=_("First purchase bonus (points)"), min_value=0, max_value=1_000_000
    )
    minimum_redeem_balance = BoundedIntegerField(
        label=_("Minimum balance to redeem"), min_value=0, max_value=MAX_POINTS
    )
    expiry_months = BoundedIntegerField(label=_("Months until points expire"), min_value=1, max_value=120)
    tier_grace_days = BoundedIntegerField(
        label=_("Grace period before a downgrade (days)"), min_value=0, max_value=3650
    )
    adjust_limit = BoundedIntegerField(
        label=_("Largest adjustment sales staff may make (points)"),
        min_value=0,
        max_value=MAX_POINTS,
        help_text=_("Larger adjustments need a manager or admin."),
    )
    earning_channels = forms.MultipleChoiceField(
        label=_("Channels that earn"),
        choices=Order.Channel.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every channel earns."),
    )
    excluded_categories = forms.CharField(
        label=_("Product categories that do not earn"),
        max_length=1000,
        required=False,
        help_text=_("Separated by commas, e.g. Gift cards, Deposits"),
    )
    campaign_starts = forms.DateField(
        label=_("Campaign starts"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    campaign_ends = forms.DateField(
        label=_("Campaign ends"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    class Meta:
        model = Programme
        fields = [
            "name",
            "is_active",
            "auto_enrol",
            "points_per_unit",
            "rounding",
            "earning_channels",
            "excluded_categories",
            "signup_bonus",
            "first_purchase_bonus",
            "birthday_multiplier",
            "campaign_multiplier",
            "campaign_starts",
            "campaign_ends",
            "redemption_points",
            "redemption_value",
            "minimum_redeem_balance",
            "expiry_mode",
            "expiry_months",
            "tier_basis",
            "tier_grace_days",
            "adjust_limit",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].required = False
        if self.instance and not self.is_bound:
            self.initial["excluded_categories"] = ", ".join(self.instance.excluded_categories or [])

    def clean_excluded_categories(self) -> list[str]:
        raw = self.cleaned_data.get("excluded_categories") or ""
        values = [" ".join(part.split()) for part in raw.split(",")]
        values = list(dict.fromkeys(v for v in values if v))
        if len(values) > 50 or any(len(v) > 100 for v in values):
            raise forms.ValidationError(_("At most 50 categories of up to 100 characters each."))
        return values

    def programme_values(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.Meta.fields}


class TierForm(forms.ModelForm):
    rank = BoundedIntegerField(
        label=_("Rank"),
        min_value=0,
        max_value=100,
        help_text=_("0 is the entry tier; higher ranks are better."),
    )
    threshold = _decimal(
        _("Qualifying threshold"),
        max_digits=14,
        help_text=_("Spend or points in the last 12 months, as the programme's tier basis says."),
    )
    multiplier = _decimal(_("Earn multiplier"), max_digits=5, min_value=Decimal("0.01"), max_value=100)

    class Meta:
        model = Tier
        fields = ["name", "rank", "threshold", "multiplier", "benefits"]
        widgets = {"benefits": forms.Textarea(attrs={"rows": 3})}

    def tier_values(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.Meta.fields}


class AdjustForm(forms.Form):
    points = BoundedIntegerField(
        label=_("Points"),
        min_value=-MAX_POINTS,
        max_value=MAX_POINTS,
        help_text=_("Positive to add, negative to deduct."),
    )
    reason = forms.CharField(label=_("Reason"), max_length=300)

    def clean_points(self):
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError(_("Enter a number of points other than zero."))
        return points


class LookupForm(forms.Form):
    q = forms.CharField(
        label=_("Phone, member number or name"),
        max_length=100,
        required=False,
        widget=forms.TextInput(attrs={"autofocus": True, "type": "search", "autocomplete": "off"}),
    )


class OpeningUploadForm(forms.Form):
    file = forms.FileField(
        label=_("CSV or Excel file"),
        help_text=_(
            "One member per row, with a header row: member number, or the customer's e-mail or phone, "
            "and the points; optionally the expiry date, the tier and a member number to set."
        ),
    )


class OpeningMappingForm(forms.Form):
    """One select per column of the file: the field it fills, or "do not import"."""

    def __init__(self, *args, headers: list[str], mapping: list[str], samples: list[list[str]], **kwargs):
        super().__init__(*args, **kwargs)
        from .imports import TARGETS

        choices = [("", _("Do not import"))] + [(t.key, t.label) for t in TARGETS]
        self.columns = []
        for index, header in enumerate(headers):
            name = f"col_{index}"
            self.fields[name] = forms.ChoiceField(
                label=header or "—",
                choices=choices,
                required=False,
                initial=mapping[index] if index < len(mapping) else "",
            )
            self.fields[name].widget.attrs["class"] = "form-select form-select-sm"
            example = next((row[index] for row in samples if index < len(row) and row[index]), "")
            self.columns.append({"field": name, "header": header, "example": example[:60]})

    def rows(self) -> list[dict]:
        return [{**column, "bound": self[column["field"]]} for column in self.columns]

    def mapping(self) -> list[str]:
        return [self.cleaned_data.get(f"col_{i}", "") or "" for i in range(len(self.columns))]
