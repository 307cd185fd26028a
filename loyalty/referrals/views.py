"""Pages of the referral programme: recording a referral on the new member's page (staff), the
ambassador report and its drill-down (managers), the bonus settings (admins), and the public page
behind a member's referral link (`/r/<code>/`, no sign-in, rate-limited like the contact form)."""

from __future__ import annotations

import hashlib

from django.contrib import messages
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.accounts.permissions import ADMINS, ALL_ROLES, MANAGERS, role_required
from crm.errors import SERVICE_ERRORS, show_service_error
from loyalty.selectors import member_get_for_user, programme_or_none

from . import selectors, services
from .forms import JoinForm, RecordReferralForm, ReferralSettingsForm
from .models import ReferralCode

JOIN_LIMIT_PER_IP = 10  # sign-ups per hour from one address


@role_required(*ALL_ROLES)
@require_POST
def record(request: HttpRequest, member_id: int) -> HttpResponse:
    member = member_get_for_user(user=request.user, member_id=member_id)
    form = RecordReferralForm(request.POST)
    if form.is_valid():
        try:
            referral = services.referral_record(
                actor=request.user, referee=member, code=form.cleaned_data["code"]
            )
        except SERVICE_ERRORS as error:
            show_service_error(request, error)
        else:
            messages.success(
                request,
                _("Referral recorded: referred by %(name)s.") % {"name": referral.referrer.customer.name},
            )
    else:
        messages.error(request, _("Enter the referrer's code."))
    return redirect("loyalty:member", member_id=member.pk)


@role_required(*MANAGERS)
@require_GET
def ambassadors(request: HttpRequest) -> HttpResponse:
    context = {"tab": "ambassadors", "rows": selectors.ambassadors(), "limit": selectors.TOP_AMBASSADORS}
    return render(request, "loyalty/referrals/ambassadors.html", context)


@role_required(*MANAGERS, visible=lambda user, member_id: member_get_for_user(user=user, member_id=member_id))
@require_GET
def ambassador(request: HttpRequest, member_id: int) -> HttpResponse:
    member = member_get_for_user(user=request.user, member_id=member_id)
    context = {"tab": "ambassadors", "member": member, "rows": selectors.referees_of(member=member)}
    return render(request, "loyalty/referrals/ambassador_detail.html", context)


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def settings_edit(request: HttpRequest) -> HttpResponse:
    current = services.referral_settings_get()
    form = ReferralSettingsForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        try:
            services.referral_settings_update(
                actor=request.user, data={name: form.cleaned_data[name] for name in form.Meta.fields}
            )
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Referral settings saved."))
            return redirect("loyalty:referrals:settings")
    context = {"tab": "settings", "form": form}
    return render(
        request,
        "loyalty/referrals/settings_form.html",
        context,
        status=400 if request.method == "POST" else 200,
    )


def _over_limit(request: HttpRequest) -> bool:
    ip = request.META.get("REMOTE_ADDR", "")
    key = "referrals:join:" + hashlib.sha256(ip.encode()).hexdigest()[:32]
    cache.add(key, 0, timeout=3600)
    try:
        return cache.incr(key) > JOIN_LIMIT_PER_IP
    except ValueError:
        return False


@require_http_methods(["GET", "POST"])
def join(request: HttpRequest, code: str) -> HttpResponse:
    """The public page behind a referral link: shows the programme (never the referrer's name or any
    other personal data) and a sign-up form."""
    cleaned = services.referral_code_clean(code)
    valid = ReferralCode.objects.filter(code=cleaned).exists()
    programme = programme_or_none()
    form = JoinForm(request.POST or None)
    status = 200 if valid else 404
    if request.method == "POST" and valid and form.is_valid():
        data = form.cleaned_data
        if data.get("website"):
            return render(request, "loyalty/referrals/join_done.html", {"programme": programme})
        if _over_limit(request):
            form.add_error(
                None, _("Too many sign-ups from your address in the last hour. Please try again later.")
            )
            status = 429
        else:
            try:
                services.referral_join_by_link(
                    code=cleaned,
                    name=data["name"],
                    email=data.get("email") or "",
                    phone=data.get("phone") or "",
                )
            except SERVICE_ERRORS as error:
                show_service_error(form, error)
                status = 400
            else:
                return render(request, "loyalty/referrals/join_done.html", {"programme": programme})
    elif request.method == "POST":
        status = 400 if valid else 404
    context = {"form": form, "valid": valid, "programme": programme, "code": cleaned}
    return render(request, "loyalty/referrals/join.html", context, status=status)
