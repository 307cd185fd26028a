"""Views of follow-ups: My day (今日待办), the actions on one follow-up (htmx in place), the 360 panel's
form, the customer list's bulk action and the tenant admin's rules."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.accounts.permissions import ADMINS, MANAGERS, role_required, user_has_role
from crm.errors import SERVICE_ERRORS, service_error_text, show_service_error
from crm.numbers import parse_id
from customers.selectors import customer_get_for_user, customer_list

from . import selectors, services
from .forms import (
    BulkFollowUpForm,
    FollowUpForm,
    ReassignForm,
    RepPickerForm,
    RescheduleForm,
    RuleForm,
    SnoozeForm,
)
from .models import FollowUp

BULK_LIMIT = services.BULK_LIMIT


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}):
        return target
    return default


# --- My day ------------------------------------------------------------------------------------------


_PK = 987654321  # a stand-in id, reversed once per URL name and replaced per row


def attach_row_urls(followups) -> None:
    """Give each row its URLs (`followup.urls`): each name is reversed once per page and the id put
    in, rather than five `{% url %}` per row (reversing was a quarter of My day's rendering)."""
    patterns = {
        "customer": reverse("customers:detail", args=[_PK]),
        "log": reverse("interactions:log", args=[_PK]),
        "complete": reverse("followups:complete", args=[_PK]),
        "snooze": reverse("followups:snooze", args=[_PK]),
        "reschedule": reverse("followups:reschedule", args=[_PK]),
    }
    stand_in = str(_PK)
    for followup in followups:
        ids = {"customer": followup.customer_id, "log": followup.customer_id}
        followup.urls = {
            name: pattern.replace(stand_in, str(ids.get(name, followup.pk)))
            for name, pattern in patterns.items()
        }


def snooze_options() -> str:
    """The snooze choices as <option> tags, rendered once per page rather than once per row (My day
    shows up to 150 rows). Only our own labels, escaped by format_html_join."""
    return format_html_join("", '<option value="{}">{}</option>', SnoozeForm().fields["hours"].choices)


def row_context(request: HttpRequest, followup: FollowUp, *, error: str = "", team: bool = False) -> dict:
    """The context of one row of My day (`followups/partials/_followup_row.html`); the interaction
    log dialog uses it to replace the row of the follow-up its call completed."""
    attach_row_urls([followup])
    return {
        "followup": followup,
        "error": error,
        "team": team,
        "snooze_options": snooze_options(),
    }


@role_required()
@require_GET
def my_day(request: HttpRequest) -> HttpResponse:
    user = request.user
    is_manager = user_has_role(user, MANAGERS)
    picker = None
    rep = user
    if is_manager:
        picker = RepPickerForm(request.GET or None)
        rep = picker.chosen_rep() if request.GET.get("rep") else None
    day = selectors.my_day(viewer=user, rep=rep)
    attach_row_urls([*day.overdue.rows, *day.due_today.rows, *day.upcoming.rows])
    context = {
        "day": day,
        "picker": picker,
        "team": rep is None or rep.pk != user.pk,
        "snooze_options": snooze_options(),
        "can_reassign": is_manager,
        "sections": [
            ("overdue", _("Overdue"), day.overdue),
            ("today", _("Today"), day.due_today),
            ("upcoming", _("Next 7 days"), day.upcoming),
        ],
    }
    return render(request, "followups/my_day.html", context)


def _act(request: HttpRequest, pk: int, call) -> HttpResponse:
    followup = selectors.followup_get_for_user(user=request.user, followup_id=pk)
    error = ""
    try:
        followup = call(followup)
    except (*SERVICE_ERRORS, PermissionDenied) as exc:
        error = service_error_text(exc)
    if request.htmx:
        team = request.POST.get("team") == "1"
        return render(
            request,
            "followups/partials/_followup_row.html",
            row_context(request, followup, error=error, team=team),
        )
    if error:
        messages.error(request, error)
    return redirect(_safe_next(request, reverse("followups:my_day")))


@role_required()
@require_POST
def followup_complete(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, lambda f: services.followup_complete(actor=request.user, followup=f))


@role_required()
@require_POST
def followup_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, lambda f: services.followup_cancel(actor=request.user, followup=f))


@role_required()
@require_POST
def followup_snooze(request: HttpRequest, pk: int) -> HttpResponse:
    form = SnoozeForm(request.POST)

    def call(followup):
        if not form.is_valid():
            raise ValidationError(_("Choose how long to snooze."))
        return services.followup_snooze(
            actor=request.user, followup=followup, hours=form.cleaned_data["hours"]
        )

    return _act(request, pk, call)


@role_required()
@require_POST
def followup_reschedule(request: HttpRequest, pk: int) -> HttpResponse:
    form = RescheduleForm(request.POST)

    def call(followup):
        if not form.is_valid():
            raise ValidationError(" ".join(form.errors.get("due_at", [_("Enter a due date and time.")])))
        return services.followup_reschedule(
            actor=request.user, followup=followup, due_at=form.cleaned_data["due_at"]
        )

    return _act(request, pk, call)


@role_required(*MANAGERS, visible=lambda user, pk: selectors.followup_get_for_user(user=user, followup_id=pk))
@require_POST
def followup_reassign(request: HttpRequest, pk: int) -> HttpResponse:
    form = ReassignForm(request.POST)

    def call(followup):
        if not form.is_valid():
            raise ValidationError(_("Choose an active user of this company."))
        return services.followup_reassign(
            actor=request.user, followup=followup, assignee=form.cleaned_data["assignee"]
        )

    return _act(request, pk, call)


# --- 360 panel -----------------------------------------------------------------------------------------


@role_required()
@require_POST
def followup_create(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = customer_get_for_user(user=request.user, customer_id=customer_id)
    form = FollowUpForm(request.POST, user=request.user)
    created = None
    if form.is_valid():
        try:
            created = services.followup_create(
                actor=request.user,
                customer=customer,
                assignee=form.assignee(),
                due_at=form.cleaned_data["due_at"],
                title=form.cleaned_data["title"],
                notes=form.cleaned_data.get("notes", ""),
            )
        except (*SERVICE_ERRORS, PermissionDenied) as error:
            show_service_error(form, error)
    if request.htmx:
        context = {
            "customer": customer,
            "followups": selectors.customer_open_followups(user=request.user, customer=customer),
            "form": FollowUpForm(user=request.user) if created else form,
            "created": created,
        }
        return HttpResponse(
            render_to_string("followups/partials/_customer_panel.html", context, request=request)
        )
    if created:
        messages.success(request, _("Follow-up “%(title)s” added.") % {"title": created.title})
    else:
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
    return redirect("customers:detail", pk=customer.pk)


# --- bulk action from the customer list -----------------------------------------------------------------


@role_required()
@require_POST
def followup_bulk_new(request: HttpRequest) -> HttpResponse:
    """Step 1 (from the list's bulk bar): show the form for the selected customers; step 2 (confirm):
    create one follow-up per customer the user can see, then back to the list."""
    ids = sorted({pk for pk in map(parse_id, request.POST.getlist("ids")[:BULK_LIMIT]) if pk is not None})
    back = _safe_next(request, reverse("customers:list"))
    if not ids:
        messages.error(request, _("Select customers first."))
        return redirect(back)
    confirm = request.POST.get("confirm") == "1"
    form = BulkFollowUpForm(request.POST if confirm else None, user=request.user)
    if confirm and form.is_valid():
        try:
            created = services.followups_create_many(
                actor=request.user,
                customer_ids=ids,
                due_at=form.cleaned_data["due_at"],
                title=form.cleaned_data["title"],
                notes=form.cleaned_data.get("notes", ""),
                assignee=form.assignee(),
            )
        except (*SERVICE_ERRORS, PermissionDenied) as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("%(count)d follow-ups added.") % {"count": len(created)})
            return redirect(back)
    customers = list(
        customer_list(user=request.user)
        .filter(pk__in=ids)
        .order_by("name", "pk")
        .only("pk", "name")[:BULK_LIMIT]
    )
    return render(
        request,
        "followups/bulk_form.html",
        {"form": form, "customers": customers, "ids": [c.pk for c in customers], "next": back},
    )


# --- rules (tenant admin) ---------------------------------------------------------------------------------


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def rule_list(request: HttpRequest) -> HttpResponse:
    form = RuleForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            rule = services.rule_create(actor=request.user, **form.service_data())
        except (*SERVICE_ERRORS, PermissionDenied) as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Rule “%(name)s” saved.") % {"name": rule.name})
            return redirect("followups:rules")
    return render(request, "followups/rule_list.html", {"rules": list(selectors.rule_list()), "form": form})


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def rule_edit(request: HttpRequest, pk: int) -> HttpResponse:
    rule = selectors.rule_get(rule_id=pk)
    form = RuleForm(request.POST or None, user=request.user, initial=RuleForm.initial_from(rule))
    if request.method == "POST" and form.is_valid():
        try:
            rule = services.rule_update(actor=request.user, rule=rule, **form.service_data())
        except (*SERVICE_ERRORS, PermissionDenied) as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Rule “%(name)s” saved.") % {"name": rule.name})
            return redirect("followups:rules")
    return render(request, "followups/rule_form.html", {"rule": rule, "form": form})
