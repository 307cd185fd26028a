from django import forms
from django.conf import settings
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from crm.timezones import time_zone_choices

from .models import CURRENCY_CHOICES, Tenant


class TenantSettingsForm(forms.Form):
    """A company's settings, as entered when it is created and when it is edited (the rules are the
    service's: crm.tenancy.services.tenant_settings_apply)."""

    name = forms.CharField(label=_("Company name"), max_length=200)
    time_zone = forms.ChoiceField(label=_("Time zone"), initial="Asia/Shanghai")
    currency = forms.ChoiceField(label=_("Currency"), choices=CURRENCY_CHOICES, initial="CNY")
    default_language = forms.ChoiceField(label=_("Language"), choices=settings.LANGUAGES)
    admin_email = forms.EmailField(
        label=_("First admin's email"),
        max_length=254,
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


class TenantCreateForm(TenantSettingsForm):
    slug = forms.CharField(
        label=_("Address"),
        max_length=40,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"}
        ),
    )
    field_order = ["name", "slug", "time_zone", "currency", "default_language", "admin_email"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Offered in the operator's own language rather than always Chinese.
        self.fields["default_language"].initial = get_language() or settings.LANGUAGE_CODE
        self.fields["slug"].help_text = _(
            "Lowercase letters, digits and hyphens. The workspace will live at address.%(domain)s"
        ) % {"domain": settings.BASE_DOMAIN}

    def clean_slug(self) -> str:
        # Checked in full by the service (format, reserved names, duplicates); only tidy it here.
        return self.cleaned_data["slug"].strip()


class TenantEditForm(TenantSettingsForm):
    """The console's edit of a company (its address, and so its schema, never changes)."""

    def __init__(self, *args, admin_email_editable: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        email = self.fields["admin_email"]
        if admin_email_editable:
            email.help_text = _(
                "They have not accepted their invitation yet: correct the address here, then send the "
                "invitation again."
            )
        else:
            email.disabled = True
            email.help_text = _(
                "They have accepted their invitation; they change their e-mail in the workspace."
            )


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
