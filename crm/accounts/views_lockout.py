"""The page django-axes shows once an account is locked out (used by both sign-in steps)."""

from django.shortcuts import render
from django.utils.translation import gettext as _

from .forms import EmailAuthenticationForm


def lockout(request, credentials=None, *args, **kwargs):
    """Shown by django-axes once an account has failed too often from one address."""
    message = _(
        "Too many failed sign-in attempts for this account from your network. "
        "Please wait 15 minutes and try again, or reset your password."
    )
    return render(
        request,
        "accounts/login.html",
        {"form": EmailAuthenticationForm(request), "lockout_message": message},
        status=429,
    )
