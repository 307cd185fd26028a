from django import forms
from django.utils.translation import gettext_lazy as _

from crm.numbers import BoundedIntegerField

from .models import MAX_BONUS, ReferralSettings


class RecordReferralForm(forms.Form):
    code = forms.CharField(
        label=_("Referrer's code"), max_length=40, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )


class ReferralSettingsForm(forms.ModelForm):
    referrer_bonus = BoundedIntegerField(
        label=_("Bonus for the referrer (points)"), min_value=0, max_value=MAX_BONUS
    )
    referee_bonus = BoundedIntegerField(
        label=_("Bonus for the new member (points)"), min_value=0, max_value=MAX_BONUS
    )

    class Meta:
        model = ReferralSettings
        fields = ["is_active", "referrer_bonus", "referee_bonus"]


class JoinForm(forms.Form):
    name = forms.CharField(label=_("Your name"), max_length=100)
    phone = forms.CharField(label=_("Mobile phone"), max_length=32, required=False)
    email = forms.EmailField(label=_("E-mail"), max_length=254, required=False)
    # Left empty by people; bots fill every field.
    website = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"tabindex": "-1", "autocomplete": "off"}),
    )

    def clean(self):
        data = super().clean()
        if not (data.get("phone") or "").strip() and not (data.get("email") or "").strip():
            raise forms.ValidationError(_("Give a mobile phone or an e-mail."))
        return data
