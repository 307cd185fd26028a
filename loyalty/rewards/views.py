"""Pages of the rewards catalogue and the counter.

Redeeming takes three clicks from the customer's 360 panel or the member page: pick a reward (the
panel and the member page list the ones the member may take) -> confirm -> the voucher is shown.
Every view checks the role; members and vouchers are fetched through access helpers (sales: the
customers they own or that are shared with them); the catalogue is kept by managers and admins.
"""

from __future__ import annotations

import secrets

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.accounts.permissions import ALL_ROLES, MANAGERS, role_required
from crm.errors import SERVICE_ERRORS, service_error_text, show_service_error
from loyalty.selectors import member_get_for_user

from . import selectors, services
from .forms import ConfirmForm, RewardForm, VoucherCodeForm
from .models import Reward

IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
}


@role_required(*ALL_ROLES)
@require_GET
def catalogue(request: HttpRequest) -> HttpResponse:
    rewards = selectors.reward_list(include_inactive=request.user.is_manager_or_admin)
    return render(request, "loyalty/rewards/catalogue.html", {"tab": "rewards", "rewards": rewards})


def _reward_page(request: HttpRequest, reward: Reward | None) -> HttpResponse:
    form = RewardForm(request.POST or None, request.FILES or None, instance=reward or Reward())
    if request.method == "POST" and form.is_valid():
        try:
            services.reward_save(
                actor=request.user,
                reward=reward,
                data=form.reward_values(),
                tiers=list(form.cleaned_data["tiers"]),
                image=form.cleaned_data.get("image"),
            )
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Reward saved."))
            return redirect("loyalty:rewards:catalogue")
    context = {"tab": "rewards", "form": form, "reward": reward}
    return render(
        request, "loyalty/rewards/reward_form.html", context, status=400 if request.method == "POST" else 200
    )


@role_required(*MANAGERS)
@require_http_methods(["GET", "POST"])
def reward_new(request: HttpRequest) -> HttpResponse:
    return _reward_page(request, None)


@role_required(*MANAGERS)
@require_http_methods(["GET", "POST"])
def reward_edit(request: HttpRequest, reward_id: int) -> HttpResponse:
    return _reward_page(request, selectors.reward_get(reward_id=reward_id))


@role_required(*MANAGERS)
@require_POST
def reward_deactivate(request: HttpRequest, reward_id: int) -> HttpResponse:
    reward = selectors.reward_get(reward_id=reward_id)
    services.reward_deactivate(actor=request.user, reward=reward)
    messages.success(request, _("%(name)s is no longer offered.") % {"name": reward.name})
    return redirect("loyalty:rewards:catalogue")


@role_required(*ALL_ROLES)
@require_GET
def reward_image(request: HttpRequest, reward_id: int) -> HttpResponse:
    reward = selectors.reward_get(reward_id=reward_id)
    if not reward.image:
        raise Http404
    extension = reward.image.name.rsplit(".", 1)[-1].lower()
    try:
        handle = reward.image.open("rb")
    except FileNotFoundError:
        raise Http404
    response = FileResponse(handle, content_type=IMAGE_TYPES.get(extension, "application/octet-stream"))
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'"
    response["Cache-Control"] = "private, max-age=3600"
    return response


@role_required(*ALL_ROLES)
@require_GET
def redeem_pick(request: HttpRequest, member_id: int) -> HttpResponse:
    member = member_get_for_user(user=request.user, member_id=member_id)
    context = {
        "tab": "members",
        "member": member,
        "rewards": selectors.rewards_for_member(member=member),
    }
    return render(request, "loyalty/rewards/redeem_pick.html", context)


@role_required(*ALL_ROLES)
@require_http_methods(["GET", "POST"])
def redeem_confirm(request: HttpRequest, member_id: int, reward_id: int) -> HttpResponse:
    member = member_get_for_user(user=request.user, member_id=member_id)
    reward = selectors.reward_get(reward_id=reward_id)
    form = ConfirmForm(request.POST or None, initial={"request_key": secrets.token_urlsafe(24)})
    errors: list[str] = []
    if request.method == "POST":
        if form.is_valid():
            try:
                voucher = services.voucher_issue(
                    actor=request.user,
                    member=member,
                    reward=reward,
                    request_key=form.cleaned_data["request_key"],
                )
            except SERVICE_ERRORS as error:
                errors = [service_error_text(error)]
            else:
                messages.success(request, _("Voucher issued: %(code)s.") % {"code": voucher.display_code})
                return redirect("loyalty:rewards:voucher", voucher_id=voucher.pk)
        else:
            errors = [_("The form expired. Please confirm again.")]
        # A new token: the refused attempt wrote nothing, the next one is a new request.
        form = ConfirmForm(initial={"request_key": secrets.token_urlsafe(24)})
        member.refresh_from_db()
    context = {
        "tab": "members",
        "member": member,
        "reward": reward,
        "form": form,
        "balance_after": member.balance - reward.points_cost,
        "errors": errors,
    }
    return render(
        request,
        "loyalty/rewards/redeem_confirm.html",
        context,
        status=400 if errors else 200,
    )


@role_required(*ALL_ROLES)
@require_GET
def voucher(request: HttpRequest, voucher_id: int) -> HttpResponse:
    found = selectors.voucher_get_for_user(user=request.user, voucher_id=voucher_id)
    today = timezone.localdate()
    context = {
        "tab": "counter",
        "voucher": found,
        "shown_status": found.shown_status(today),
        "can_cancel": found.status == found.Status.ISSUED and services.can_cancel(request.user, found),
        "can_use": found.status == found.Status.ISSUED and not found.is_past_expiry(today),
    }
    return render(request, "loyalty/rewards/voucher_detail.html", context)


@role_required(*ALL_ROLES)
@require_POST
def voucher_cancel(request: HttpRequest, voucher_id: int) -> HttpResponse:
    found = selectors.voucher_get_for_user(user=request.user, voucher_id=voucher_id)
    try:
        services.voucher_cancel(actor=request.user, voucher=found)
    except SERVICE_ERRORS as error:
        show_service_error(request, error)
    else:
        messages.success(
            request, _("Voucher cancelled; %(points)s points returned.") % {"points": found.points}
        )
    return redirect("loyalty:rewards:voucher", voucher_id=found.pk)


@role_required(*ALL_ROLES)
@require_POST
def voucher_use(request: HttpRequest, voucher_id: int) -> HttpResponse:
    found = selectors.voucher_get_for_user(user=request.user, voucher_id=voucher_id)
    try:
        services.voucher_use(actor=request.user, code=found.code)
    except SERVICE_ERRORS as error:
        show_service_error(request, error)
    else:
        messages.success(request, _("Voucher %(code)s marked used.") % {"code": found.display_code})
    return redirect("loyalty:rewards:voucher", voucher_id=found.pk)


@role_required(*ALL_ROLES)
@require_http_methods(["GET", "POST"])
def counter(request: HttpRequest) -> HttpResponse:
    """Enter or scan a voucher code: GET shows the voucher, POST marks it used."""
    data = request.POST if request.method == "POST" else (request.GET if "code" in request.GET else None)
    form = VoucherCodeForm(data)
    found, status = None, 200
    if form.is_valid():
        code = services.voucher_code_clean(form.cleaned_data["code"])
        if request.method == "POST":
            try:
                found = services.voucher_use(actor=request.user, code=code)
            except SERVICE_ERRORS as error:
                show_service_error(form, error)
                status = 400
            else:
                messages.success(request, _("Voucher %(code)s marked used.") % {"code": found.display_code})
                return redirect(f"{request.path}?code={found.code}")
        found = selectors.voucher_by_code(code=code)
        if found is None and not form.errors:
            form.add_error("code", _("No voucher has this code."))
    elif request.method == "POST":
        status = 400
    today = timezone.localdate()
    context = {
        "tab": "counter",
        "form": form,
        "voucher": found,
        "shown_status": found.shown_status(today) if found else "",
        "can_use": bool(found) and found.status == found.Status.ISSUED and not found.is_past_expiry(today),
    }
    return render(request, "loyalty/rewards/counter.html", context, status=status)
