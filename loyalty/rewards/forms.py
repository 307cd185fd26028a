"""Forms of the rewards pages; numbers go through crm/numbers.py's bounded fields."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from crm.numbers import BoundedIntegerField
from loyalty.models import Tier

from .models import MAX_REWARD_POINTS, Reward
from .services import IMAGE_EXTENSIONS


class RewardForm(forms.ModelForm):
    points_cost = BoundedIntegerField(label=_("Points cost"), min_value=1, max_value=MAX_REWARD_POINTS)
    stock = BoundedIntegerField(
        label=_("Stock"),
        min_value=0,
        max_value=10_000_000,
        required=False,
        help_text=_("Leave empty for unlimited stock."),
    )
    voucher_days = BoundedIntegerField(label=_("Voucher valid for (days)"), min_value=1, max_value=366)
    tiers = forms.ModelMultipleChoiceField(
        label=_("Tiers allowed"),
        queryset=Tier.objects.order_by("rank"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every tier."),
    )
    image = forms.FileField(
        label=_("Image"),
        required=False,
        widget=forms.FileInput(attrs={"accept": ",".join(f".{ext}" for ext in IMAGE_EXTENSIONS)}),
    )

    class Meta:
        model = Reward
        fields = [
            "name",
            "description",
            "points_cost",
            "stock",
            "valid_from",
            "valid_until",
            "voucher_days",
            "tiers",
            "is_active",
        ]
        widgets = {
            "valid_from": forms.DateInput(attrs={"type": "date"}),
            "valid_until": forms.DateInput(attrs={"type": "date"}),
            "description": forms.Textarea(attrs={"rows": 3, "maxlength": 1000}),
        }

    def clean_image(self):
        upload = self.cleaned_data.get("image")
        # Bounded before anything reads it: the service checks type, size and signature again.
        if upload and upload.size > settings.REWARD_IMAGE_MAX_BYTES:
            from django.template.defaultfilters import filesizeformat

            raise forms.ValidationError(
                _("The image is too large; the limit is %(limit)s.")
                % {"limit": filesizeformat(settings.REWARD_IMAGE_MAX_BYTES)}
            )
        return upload or None

    def reward_values(self) -> dict:
        return {
            name: self.cleaned_data[name]
            for name in (
                "name",
                "description",
                "points_cost",
                "stock",
                "valid_from",
                "valid_until",
                "voucher_days",
                "is_active",
            )
        }


class VoucherCodeForm(forms.Form):
    code = forms.CharField(
        label=_("Voucher code"),
        max_length=40,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "autocapitalize": "characters", "autofocus": True}
        ),
    )


class ConfirmForm(forms.Form):
    request_key = forms.CharField(max_length=64, widget=forms.HiddenInput)
