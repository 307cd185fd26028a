from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _


class EmailAuthenticationForm(AuthenticationForm):
    username = forms.EmailField(
        label=_("Email"), widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )

    error_messages = {
        "invalid_login": _("That email and password do not match an active account here."),
        "inactive": _("This account has been deactivated."),
    }


class ProfileForm(forms.Form):
    full_name = forms.CharField(label=_("Name"), max_length=150, required=False)
    language = forms.ChoiceField(label=_("Language"), required=False)
    time_zone = forms.ChoiceField(label=_("Time zone"), required=False)

    def __init__(self, *args, **kwargs):
        from django.conf import settings

        from crm.tenancy.models import TIME_ZONE_CHOICES

        super().__init__(*args, **kwargs)
        self.fields["language"].choices = [("", _("Company default")), *settings.LANGUAGES]
        self.fields["time_zone"].choices = [("", _("Company default")), *TIME_ZONE_CHOICES]
