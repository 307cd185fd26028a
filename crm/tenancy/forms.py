from django import forms
from django.conf import settings
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from crm.timezones import time_zone_choices

from .models import CURRENCY_CHOICES, Tenant


class TenantCreateForm(forms.Form):
    name = forms.CharField(label=_("Company name"), max_length=200)
    slug = forms.CharField(
        label=_("Address"),
        max_length=40,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"}
        ),
    )
    time_zone = forms.ChoiceField(label=_("Time zone"), initial="Asia/Shanghai")
    currency = forms.ChoiceField(label=_("Currency"), choices=CURRENCY_CHOICES, initial="CNY")
    default_language = forms.ChoiceField(label=_("Language"), choices=settings.LANGUAGES)
    admin_email = forms.EmailField(
        label=_("First admin's email"),
        help_text=_("They receive an email with a link to choose their password."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = time_zone_choices(
            current=(self.initial or {}).get("time_zone", "")
        )
        self.fields["time_zone"].widget.attrs.update(
            {"data-searchable": "true", "data-search-label": _("Search by city or UTC offset")}
        )
        # Offered in the operator's own language rather than always Chinese.
        self.fields["default_language"].initial = get_language() or settings.LANGUAGE_CODE
        self.fields["slug"].help_text = _(
            "Lowercase letters, digits and hyphens. The workspace will live at address.%(domain)s"
        ) % {"domain": settings.BASE_DOMAIN}

    def clean_slug(self) -> str:
        # Checked in full by the service (format, reserved names, duplicates); only tidy it here.
        return self.cleaned_data["slug"].strip()


class TenantFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=100)
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("All statuses")), *Tenant.Status.choices]
    )


class TenantDeleteForm(forms.Form):
    confirm_slug = forms.CharField(
        label=_("Type the company's address name to confirm"),
        max_length=40,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"}
        ),
    )
