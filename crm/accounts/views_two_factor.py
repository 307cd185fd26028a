"""Two-factor sign-in, its set-up and the user's own sessions.

Sign-in with two-factor is two steps. The password step (`LoginView`) does not sign the user in: it
remembers who passed it in the session ("pending", for TWO_FACTOR_PENDING_SECONDS) and sends them to
the code step, or to set-up when two-factor is required and not yet on. Only a good code calls
`login()`. Wrong codes count as failed sign-ins for django-axes (under the same normalised address as
wrong passwords), and TWO_FACTOR_MAX_CODE_FAILURES of them end the pending step.
"""

import time
from base64 import b32encode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.db import connection
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from . import selectors, services
from .forms import SecuritySettingsForm, TwoFactorCodeForm
from .models import User
from .permissions import ADMINS, role_required

PENDING_KEY = "_crm_two_factor_pending"
RECOVERY_CODES_KEY = "_crm_recovery_codes"


def _default_next() -> str:
    return reverse("tenancy:list") if connection.schema_name == "public" else reverse("home")


def start_pending_sign_in(request, *, user, next_url: str):
    """Called by the password step for a user who needs a code (or must set two-factor up)."""
    enrol = not services.two_factor_enabled(user=user)
    request.session.cycle_key()
    request.session[PENDING_KEY] = {
        "uid": user.pk,
        "backend": getattr(user, "backend", "django.contrib.auth.backends.ModelBackend"),
        "at": time.time(),
        "next": next_url,
        "fails": 0,
        "enrol": enrol,
    }
    return redirect("accounts:two_factor_setup" if enrol else "accounts:two_factor_verify")


def _pending(request):
    data = request.session.get(PENDING_KEY)
    if not isinstance(data, dict) or time.time() - data.get("at", 0) > settings.TWO_FACTOR_PENDING_SECONDS:
        return None, None
    user = User.objects.filter(pk=data.get("uid"), is_active=True).first()
    return (user, data) if user is not None else (None, None)


def _restart(request):
    request.session.pop(PENDING_KEY, None)
    messages.info(request, _("Please sign in again."))
    return redirect("accounts:login")


def _locked(request, user) -> bool:
    from axes.handlers.proxy import AxesProxyHandler

    return AxesProxyHandler.is_locked(request, credentials={"username": user.email})


def _code_failed(request, user, data):
    """Count a wrong code for axes and for this pending step; end the step after too many."""
    user_login_failed.send(sender=__name__, credentials={"username": user.email}, request=request)
    data["fails"] = data.get("fails", 0) + 1
    request.session[PENDING_KEY] = data
    if data["fails"] >= settings.TWO_FACTOR_MAX_CODE_FAILURES:
        request.session.pop(PENDING_KEY, None)
        messages.error(request, _("Too many wrong codes. Sign in again."))
        return redirect("accounts:login")
    return None


def _finish_sign_in(request, *, user, data, device, recovery_codes=None):
    from django_otp import login as otp_login

    next_url = data.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = _default_next()
    request.session.pop(PENDING_KEY, None)
    auth_login(request, user, backend=data["backend"])
    otp_login(request, device)
    if recovery_codes:
        request.session[RECOVERY_CODES_KEY] = {"codes": recovery_codes, "next": next_url}
        return redirect("accounts:two_factor_recovery_codes")
    return redirect(next_url)


def two_factor_verify(request):
    """Sign-in, second step: a code from the authenticator app or a recovery code."""
    from .views_lockout import lockout

    user, data = _pending(request)
    if user is None:
        return _restart(request)
    if data.get("enrol"):
        return redirect("accounts:two_factor_setup")
    form = TwoFactorCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if _locked(request, user):
            return lockout(request)
        device = services.two_factor_verify(user=user, code=form.cleaned_data["code"])
        if device is not None:
            return _finish_sign_in(request, user=user, data=data, device=device)
        ended = _code_failed(request, user, data)
        if ended is not None or getattr(request, "axes_locked_out", False):
            return ended or lockout(request)
        form.add_error("code", _("That code is not right. Try the current code, or a recovery code."))
    return render(request, "accounts/two_factor_verify.html", {"form": form})


def _enrolment_context(device) -> dict:
    import segno

    secret = b32encode(device.bin_key).decode()
    # segno draws the QR code as an SVG of paths only (no text from the address is placed in it),
    # generated here from our own device URL: safe to embed as markup.
    svg = segno.make(device.config_url, error="m").svg_inline(scale=4, border=2, dark="#000", light="#fff")
    return {
        "qr_svg": mark_safe(svg),  # noqa: S308
        "secret": secret,
        "secret_grouped": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        "issuer": settings.OTP_TOTP_ISSUER,
    }


def two_factor_setup(request):
    """Sign-in for someone who must have two-factor and has not set it up: set it up now."""
    user, data = _pending(request)
    if user is None:
        return _restart(request)
    if not data.get("enrol") or services.two_factor_enabled(user=user):
        # Set up meanwhile (from another session): this sign-in asks for a code like any other.
        data["enrol"] = False
        request.session[PENDING_KEY] = data
        return redirect("accounts:two_factor_verify")
    form = TwoFactorCodeForm(request.POST or None)
    device = services.two_factor_start_enrolment(user=user)
    if request.method == "POST" and form.is_valid():
        from .views_lockout import lockout

        if _locked(request, user):
            return lockout(request)
        try:
            codes = services.two_factor_confirm_enrolment(
                actor=user, user=user, code=form.cleaned_data["code"]
            )
        except ValidationError as exc:
            ended = _code_failed(request, user, data)
            if ended is not None or getattr(request, "axes_locked_out", False):
                return ended or lockout(request)
            form.add_error("code", exc.messages)
        else:
            device.refresh_from_db()
            return _finish_sign_in(request, user=user, data=data, device=device, recovery_codes=codes)
    response = render(
        request,
        "accounts/two_factor_enrol.html",
        {"form": form, "at_sign_in": True, **_enrolment_context(device)},
    )
    response["Cache-Control"] = "no-store"  # the page shows the secret key
    return response


def two_factor_recovery_codes(request):
    """The new recovery codes, shown once."""
    if not request.user.is_authenticated:
        return redirect("accounts:login")
    shown = request.session.pop(RECOVERY_CODES_KEY, None)
    if not shown:
        return redirect("accounts:two_factor" if connection.schema_name != "public" else "tenancy:list")
    response = render(
        request,
        "accounts/two_factor_recovery_codes.html",
        {"codes": shown["codes"], "next_url": shown.get("next") or _default_next()},
    )
    response["Cache-Control"] = "no-store"
    return response


# --- Profile: two-factor (tenant users) ---------------------------------------------------------


@role_required()
def two_factor(request):
    user = request.user
    return render(
        request,
        "accounts/two_factor.html",
        {
            "enabled": services.two_factor_enabled(user=user),
            "required": services.two_factor_required(user=user),
            "codes_left": services.two_factor_recovery_codes_left(user=user),
            "disable_form": TwoFactorCodeForm(prefix="disable"),
            "renew_form": TwoFactorCodeForm(prefix="renew"),
        },
    )


@role_required()
def two_factor_enable(request):
    user = request.user
    if services.two_factor_enabled(user=user):
        return redirect("accounts:two_factor")
    device = services.two_factor_start_enrolment(user=user)
    form = TwoFactorCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            codes = services.two_factor_confirm_enrolment(
                actor=user, user=user, code=form.cleaned_data["code"]
            )
        except ValidationError as exc:
            form.add_error("code", exc.messages)
        else:
            from django_otp import login as otp_login

            device.refresh_from_db()
            otp_login(request, device)
            request.session[RECOVERY_CODES_KEY] = {"codes": codes, "next": reverse("accounts:two_factor")}
            messages.success(request, _("Two-factor sign-in is on."))
            return redirect("accounts:two_factor_recovery_codes")
    response = render(
        request,
        "accounts/two_factor_enrol.html",
        {"form": form, "at_sign_in": False, **_enrolment_context(device)},
    )
    response["Cache-Control"] = "no-store"  # the page shows the secret key
    return response


@role_required()
@require_POST
def two_factor_disable(request):
    form = TwoFactorCodeForm(request.POST, prefix="disable")
    if form.is_valid():
        try:
            services.two_factor_disable(actor=request.user, user=request.user, code=form.cleaned_data["code"])
        except ValidationError as exc:
            for message in exc.messages:
                messages.error(request, message)
        else:
            messages.success(request, _("Two-factor sign-in is off."))
    else:
        messages.error(request, _("Enter a current code to turn two-factor sign-in off."))
    return redirect("accounts:two_factor")


@role_required()
@require_POST
def two_factor_renew_codes(request):
    form = TwoFactorCodeForm(request.POST, prefix="renew")
    if form.is_valid():
        try:
            codes = services.two_factor_new_recovery_codes(
                actor=request.user, user=request.user, code=form.cleaned_data["code"]
            )
        except ValidationError as exc:
            for message in exc.messages:
                messages.error(request, message)
        else:
            request.session[RECOVERY_CODES_KEY] = {"codes": codes, "next": reverse("accounts:two_factor")}
            return redirect("accounts:two_factor_recovery_codes")
    else:
        messages.error(request, _("Enter a current code to get new recovery codes."))
    return redirect("accounts:two_factor")


# --- Profile: active sessions -------------------------------------------------------------------


@role_required()
def sessions(request):
    rows = selectors.user_session_list(user=request.user, current_session_key=request.session.session_key)
    return render(request, "accounts/sessions.html", {"sessions": rows})


@role_required()
@require_POST
def session_end(request, session_id: int):
    current = selectors.user_session_list(user=request.user, current_session_key=request.session.session_key)
    if any(row.pk == session_id and row.is_current for row in current):
        messages.error(request, _("To end this session, sign out."))
    elif services.user_session_end(user=request.user, session_id=session_id):
        messages.success(request, _("That session has been signed out."))
    return redirect("accounts:sessions")


@role_required()
@require_POST
def sessions_end_others(request):
    ended = services.user_end_other_sessions(user=request.user, keep_session_key=request.session.session_key)
    messages.success(request, _("Signed out everywhere else (%(count)s sessions).") % {"count": ended})
    return redirect("accounts:sessions")


# --- Settings -> Security (tenant admins) ---------------------------------------------------------


@role_required(*ADMINS)
def security_settings(request):
    current = services.account_settings_get()
    form = SecuritySettingsForm(
        request.POST or None, initial={"require_two_factor_for_admins": current.require_two_factor_for_admins}
    )
    if request.method == "POST" and form.is_valid():
        services.account_settings_update(actor=request.user, **form.cleaned_data)
        messages.success(request, _("Security settings saved."))
        return redirect("accounts:security_settings")
    return render(request, "accounts/security_settings.html", {"form": form})
