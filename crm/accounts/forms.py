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

        from crm.tenancy.models import TIME_ZONE_CHOICES

        super().__init__(*args, **kwargs)
        self.fields["language"].choices = [("", _("Company default")), *settings.LANGUAGES]
        self.fields["time_zone"].choices = [("", _("Company default")), *TIME_ZONE_CHOICES]


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
