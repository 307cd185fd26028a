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

    def clean_username(self):
        # The same normalised address that the lockout counts (crm.accounts.lockout).
        from .lockout import normalise_login

        return normalise_login(self.cleaned_data.get("username"))


class ProfileForm(forms.Form):
    full_name = forms.CharField(label=_("Name"), max_length=150, required=False)
    language = forms.ChoiceField(label=_("Language"), required=False)
    time_zone = forms.ChoiceField(label=_("Time zone"), required=False)

    def __init__(self, *args, **kwargs):
        from django.conf import settings

        from crm.timezones import time_zone_choices

        super().__init__(*args, **kwargs)
        self.fields["language"].choices = [("", _("Company default")), *settings.LANGUAGES]
        # Common zones by city in the reader's language, plus the one saved (crm/timezones.py).
        current = (self.initial or {}).get("time_zone") or ""
        self.fields["time_zone"].choices = [("", _("Company default")), *time_zone_choices(current=current)]
        self.fields["time_zone"].widget.attrs.update(
            {"data-searchable": "true", "data-search-label": _("Search by city or UTC offset")}
        )


class UserFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=100)
    role = forms.ChoiceField(label=_("Role"), required=False)
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[("", _("Everyone")), ("active", _("Active")), ("inactive", _("Deactivated"))],
    )

    def __init__(self, *args, **kwargs):
        from .models import Role

        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [("", _("All roles")), *Role.choices]


class InvitationForm(forms.Form):
    email = forms.EmailField(label=_("Email"), max_length=254)
    full_name = forms.CharField(label=_("Name"), max_length=150, required=False)
    role = forms.ChoiceField(label=_("Role"))

    def __init__(self, *args, **kwargs):
        from .models import Role

        super().__init__(*args, **kwargs)
        self.fields["role"].choices = Role.choices
        self.fields["role"].initial = Role.SALES


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"))

    def __init__(self, *args, **kwargs):
        from .models import Role

        super().__init__(*args, **kwargs)
        self.fields["role"].choices = Role.choices


class InvitationAcceptForm(forms.Form):
    """Name and password for a new account; the password is checked against the validators."""

    full_name = forms.CharField(label=_("Your name"), max_length=150)
    password1 = forms.CharField(
        label=_("Password"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label=_("Password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, invitation=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.invitation = invitation

    def clean(self):
        from django.contrib.auth.password_validation import validate_password

        from .models import User

        cleaned = super().clean()
        password1, password2 = cleaned.get("password1"), cleaned.get("password2")
        if password1 and password2 and password1 != password2:
            self.add_error("password2", _("The two passwords do not match."))
        elif password1 and self.invitation is not None:
            probe = User(email=self.invitation.email, full_name=cleaned.get("full_name", ""))
            try:
                validate_password(password1, probe)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned


class TwoFactorCodeForm(forms.Form):
    """A 6-digit authenticator code or an 8-character recovery code."""

    code = forms.CharField(
        label=_("Code"),
        max_length=32,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autofocus": True,
                "autocapitalize": "off",
                "spellcheck": "false",
            }
        ),
    )


class SecuritySettingsForm(forms.Form):
    require_two_factor_for_admins = forms.BooleanField(
        label=_("Require two-factor sign-in for admins"),
        required=False,
        help_text=_("Admins without it are asked to set it up the next time they sign in."),
    )


class AuditFilterForm(forms.Form):
    """The audit log's filters: who, which customer, which event, which days (in the viewer's zone).

    Every value is bounded: a chosen event from the registered names, a user id from the list, at
    most 100 characters of customer name, dates between 2000 and 2100 and at most a year apart.
    """

    MAX_DAYS = 366

    event = forms.ChoiceField(label=_("Event"), required=False)
    user = forms.TypedChoiceField(label=_("User"), required=False, coerce=int, empty_value=None)
    customer = forms.CharField(label=_("Customer"), required=False, max_length=100)
    date_from = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    date_to = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )

    def __init__(self, *args, users=(), **kwargs):
        from crm.audit.labels import event_choices

        super().__init__(*args, **kwargs)
        self.fields["event"].choices = [("", _("All events")), *event_choices()]
        self.fields["user"].choices = [("", _("Everyone")), *((u.pk, u.get_full_name()) for u in users)]
        for name in ("date_from", "date_to"):
            self.fields[name].widget.attrs.update({"min": "2000-01-01", "max": "2100-12-31", "maxlength": 10})

    def clean(self):
        data = super().clean()
        first, last = data.get("date_from"), data.get("date_to")
        for name in ("date_from", "date_to"):
            day = data.get(name)
            if day is not None and not (2000 <= day.year <= 2100):
                self.add_error(name, _("Enter a date between 2000 and 2100."))
        if first and last:
            if first > last:
                self.add_error("date_to", _("The end date is before the start date."))
            elif (last - first).days > self.MAX_DAYS:
                self.add_error("date_to", _("Choose at most a year at a time."))
        return data
