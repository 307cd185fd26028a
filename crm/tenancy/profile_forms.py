"""The company profile form: the same choices as the console's tenant form (crm.tenancy.forms), the
rules themselves checked once, by `crm.tenancy.profile.tenant_update_profile`."""

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from crm.timezones import time_zone_choices

from .models import CURRENCY_CHOICES, Tenant
from .profile import LOGO_MAX_SIDE


class CompanyProfileForm(forms.Form):
    name = forms.CharField(label=_("Company name"), max_length=Tenant._meta.get_field("name").max_length)
    time_zone = forms.ChoiceField(
        label=_("Time zone"),
        help_text=_("Dates and times are shown in this zone unless a user picks their own."),
    )
    currency = forms.ChoiceField(label=_("Currency"), choices=CURRENCY_CHOICES)
    default_language = forms.ChoiceField(
        label=_("Language"),
        choices=settings.LANGUAGES,
        help_text=_("New users see this language until they choose their own."),
    )
    logo = forms.FileField(
        label=_("Logo"),
        required=False,
        widget=forms.FileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}),
    )
    remove_logo = forms.BooleanField(label=_("Remove the logo"), required=False)

    def __init__(self, *args, tenant: Tenant, **kwargs):
        kwargs.setdefault(
            "initial",
            {
                "name": tenant.name,
                "time_zone": tenant.time_zone,
                "currency": tenant.currency,
                "default_language": tenant.default_language,
            },
        )
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = time_zone_choices(current=tenant.time_zone)
        self.fields["time_zone"].widget.attrs.update(
            {"data-searchable": "true", "data-search-label": _("Search by city or UTC offset")}
        )
        self.fields["logo"].help_text = _(
            "PNG, JPEG or WebP, at most 1 MB and %(side)d × %(side)d pixels. "
            "It is shown at most 512 pixels wide."
        ) % {"side": LOGO_MAX_SIDE}
        if not tenant.logo:
            del self.fields["remove_logo"]

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "time_zone": data["time_zone"],
            "currency": data["currency"],
            "default_language": data["default_language"],
            "logo": data.get("logo") or None,
            "remove_logo": bool(data.get("remove_logo")),
        }
