"""Interaction pages: the log (filters, keyset pages, recycle bin, export), logging from a dialog,
detail / edit / delete / restore, attachment downloads, and the outcomes settings.

Role decisions: every role logs and reads interactions of the customers they can see (sales: their
own and shared customers; managers and admins: all). The author, managers and admins edit, delete
and restore. Only admins configure outcomes. An interaction the user may not see answers 404
exactly like a missing one (interaction_get_for_user).
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.accounts.permissions import ADMINS, MANAGERS, role_required, user_has_role
from crm.errors import SERVICE_ERRORS, show_service_error
from crm.jobs.selectors import job_get_for_user, job_list_for_user
from customers.selectors import customer_get_for_user

from . import exports, imports, selectors, services
from .forms import ImportMappingForm, ImportUploadForm, InteractionFilterForm, InteractionForm, OutcomeForm
from .labels import CHANNEL_ICONS


def _querystring(params, **changes) -> str:
    query = params.copy()
    for key, value in changes.items():
        query.pop(key, None)
        if value not in (None, ""):
            query[key] = value
    return query.urlencode()


# --- the log ---------------------------------------------------------------------------------------


@role_required()
@require_GET
def interaction_index(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = InteractionFilterForm(request.GET or None, user=user)
    form.is_valid()
    filters = form.filters()
    binned = bool(filters.get("binned"))
    qs = selectors.interaction_list(user=user, filters=filters)
    page = selectors.interaction_page(
        qs,
        cursor=request.GET.get("cursor"),
        direction=request.GET.get("direction", "next"),
        binned=binned,
    )
    base_query = request.GET.copy()
    for key in ("cursor", "direction"):
        base_query.pop(key, None)
    customer = None
    if filters.get("customer"):
        try:
            customer = customer_get_for_user(user=user, customer_id=filters["customer"])
        except Http404:
            customer = None
    context = {
        "form": form,
        "page": page,
        "binned": binned,
        "customer": customer,
        "base_query": base_query.urlencode(),
        "next_query": _querystring(base_query, cursor=page.next_cursor, direction="next"),
        "prev_query": _querystring(base_query, cursor=page.previous_cursor, direction="prev"),
        "export_formats": exports.FORMATS,
        "can_import": user_has_role(user, MANAGERS),
    }
    if request.htmx and request.htmx.target == "interaction-results":
        return render(request, "interactions/partials/_results.html", context)
    return render(request, "interactions/interaction_list.html", context)


# --- log from a dialog -----------------------------------------------------------------------------


def _form_template(request: HttpRequest) -> str:
    return "interactions/partials/_log_dialog.html" if request.htmx else "interactions/interaction_form.html"


def _followup_to_complete(request: HttpRequest, customer):
    """The open follow-up of this customer named by `?followup=` (the "Log the call" button of a row
    on My day), or None. One the user may not see answers 404, as everywhere."""
    from interactions.followups.models import FollowUp
    from interactions.followups.selectors import followup_get_for_user

    raw = request.GET.get("followup")
    if not raw:
        return None
    followup = followup_get_for_user(user=request.user, followup_id=raw)
    if followup.customer_id != customer.pk or followup.status != FollowUp.Status.OPEN:
        return None
    return followup


def _logged_response(request: HttpRequest, interaction, customer, followup) -> HttpResponse:
    context = {"interaction": interaction, "customer": customer}
    if followup is not None:
        # The follow-up's row on My day is replaced out of band (done, or still open).
        from interactions.followups.views import row_context

        followup.refresh_from_db()
        context["followup_row"] = row_context(request, followup, team=request.GET.get("team") == "1")
    response = render(request, "interactions/partials/_logged.html", context)
    response["HX-Trigger"] = json.dumps({"customer-updated": True, "interaction-logged": True})
    return response


@role_required()
@require_http_methods(["GET", "POST"])
def interaction_log(request: HttpRequest, customer_id: int) -> HttpResponse:
    """The log form: an htmx dialog (from the 360 page, a customer-list row or a follow-up's row on
    My day, which can complete that follow-up) or a page."""
    customer = customer_get_for_user(user=request.user, customer_id=customer_id)
    followup = _followup_to_complete(request, customer)
    if request.method == "POST":
        form = InteractionForm(request.POST, request.FILES, customer=customer, followup=followup)
        if form.is_valid():
            try:
                interaction, _followup = services.interaction_log_with_follow_up(
                    actor=request.user,
                    customer=customer,
                    follow_up_in_days=form.cleaned_data.get("follow_up_in_days"),
                    complete_followup=followup if form.cleaned_data.get("complete_followup") else None,
                    attachments=form.cleaned_data.get("attachments") or [],
                    **form.service_values(),
                )
            except (*SERVICE_ERRORS, PermissionDenied) as error:
                show_service_error(form, error)
            else:
                if request.htmx:
                    return _logged_response(request, interaction, customer, followup)
                messages.success(request, _("Interaction logged."))
                if followup is not None:
                    return redirect("followups:my_day")
                return redirect("customers:detail", pk=customer.pk)
    else:
        form = InteractionForm(customer=customer, followup=followup)
    action = reverse("interactions:log", args=[customer.pk])
    if followup is not None:
        action += "?" + urlencode({"followup": followup.pk, "team": request.GET.get("team", "0")})
    return render(request, _form_template(request), {"form": form, "customer": customer, "action": action})


# --- one interaction -------------------------------------------------------------------------------


@role_required()
@require_GET
def interaction_detail(request: HttpRequest, pk: int) -> HttpResponse:
    interaction = selectors.interaction_get_for_user(
        user=request.user, interaction_id=pk, include_deleted=True
    )
    attachments = list(interaction.attachments.select_related("removed_by"))
    return render(
        request,
        "interactions/interaction_detail.html",
        {
            "interaction": interaction,
            "attachments": [a for a in attachments if a.removed_at is None],
            "removed_attachments": [a for a in attachments if a.removed_at is not None],
            "can_change": services.can_change(request.user, interaction),
            "icon": CHANNEL_ICONS.get(interaction.channel, "chat-dots"),
        },
    )


@role_required()
@require_http_methods(["GET", "POST"])
def interaction_edit(request: HttpRequest, pk: int) -> HttpResponse:
    interaction = selectors.interaction_get_for_user(user=request.user, interaction_id=pk)
    if not services.can_change(request.user, interaction):
        raise PermissionDenied(_("Only the author, managers and admins can edit this interaction."))
    customer = interaction.customer
    if request.method == "POST":
        form = InteractionForm(request.POST, request.FILES, customer=customer, interaction=interaction)
        if form.is_valid():
            try:
                services.interaction_update(
                    actor=request.user,
                    interaction=interaction,
                    data=form.service_values(),
                    attachments=form.cleaned_data.get("attachments") or [],
                )
            except SERVICE_ERRORS as error:
                show_service_error(form, error)
            else:
                messages.success(request, _("Interaction saved."))
                return redirect("interactions:detail", pk=interaction.pk)
    else:
        form = InteractionForm(
            customer=customer,
            interaction=interaction,
            initial={
                "channel": interaction.channel,
                "direction": interaction.direction,
                "outcome": interaction.outcome_id,
                "occurred_at": interaction.occurred_at,
                "duration_minutes": interaction.duration_minutes,
                "subject": interaction.subject,
                "notes": interaction.notes,
                "order": interaction.order_id,
            },
        )
    return render(
        request,
        "interactions/interaction_form.html",
        {
            "form": form,
            "customer": customer,
            "interaction": interaction,
            "live_attachments": list(interaction.attachments.filter(removed_at__isnull=True)),
            "action": reverse("interactions:edit", args=[interaction.pk]),
        },
    )


@role_required()
@require_POST
def interaction_delete(request: HttpRequest, pk: int) -> HttpResponse:
    interaction = selectors.interaction_get_for_user(user=request.user, interaction_id=pk)
    services.interaction_delete(actor=request.user, interaction=interaction)
    messages.success(request, _("The interaction was moved to the recycle bin."))
    return redirect(f"{reverse('interactions:index')}?binned=on")


@role_required()
@require_POST
def interaction_restore(request: HttpRequest, pk: int) -> HttpResponse:
    interaction = selectors.interaction_get_for_user(
        user=request.user, interaction_id=pk, include_deleted=True
    )
    services.interaction_restore(actor=request.user, interaction=interaction)
    messages.success(request, _("The interaction was restored."))
    return redirect("interactions:detail", pk=interaction.pk)


@role_required()
@require_GET
def attachment_download(request: HttpRequest, pk: int) -> HttpResponse:
    attachment = selectors.attachment_get_for_user(user=request.user, attachment_id=pk)
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404
    return FileResponse(handle, as_attachment=True, filename=attachment.original_name)


@role_required()
@require_POST
def attachment_remove(request: HttpRequest, pk: int) -> HttpResponse:
    """Take one attachment off its interaction (kept, restorable; see services.attachment_remove)."""
    attachment = selectors.attachment_get_for_user(user=request.user, attachment_id=pk)
    try:
        services.attachment_remove(actor=request.user, attachment=attachment)
    except (*SERVICE_ERRORS, PermissionDenied) as error:
        show_service_error(request, error)
    else:
        messages.success(request, _("The attachment was removed. You can restore it below."))
    return redirect("interactions:detail", pk=attachment.interaction_id)


@role_required()
@require_POST
def attachment_restore(request: HttpRequest, pk: int) -> HttpResponse:
    attachment = selectors.attachment_get_for_user(user=request.user, attachment_id=pk, include_removed=True)
    try:
        services.attachment_restore(actor=request.user, attachment=attachment)
    except (*SERVICE_ERRORS, PermissionDenied) as error:
        show_service_error(request, error)
    else:
        messages.success(request, _("The attachment was restored."))
    return redirect("interactions:detail", pk=attachment.interaction_id)


# --- export ----------------------------------------------------------------------------------------


@role_required()
@require_POST
def interaction_export(request: HttpRequest) -> HttpResponse:
    """Start the export of the filtered log (the page's querystring) as a background job."""
    query = request.GET.copy()
    for key in ("cursor", "direction"):
        query.pop(key, None)
    job = exports.export_start(actor=request.user, query=query, file_format=request.POST.get("format", "csv"))
    return redirect("interactions:export_job", job_id=job.pk)


@role_required()
@require_GET
def interaction_export_job(request: HttpRequest, job_id: int) -> HttpResponse:
    job = job_get_for_user(user=request.user, job_id=job_id)
    if job.kind != exports.EXPORT_KIND:
        raise Http404
    recent = job_list_for_user(user=request.user, kind_prefix=exports.EXPORT_KIND).exclude(pk=job.pk)[:5]
    return render(request, "interactions/export_job.html", {"job": job, "recent": recent})


# --- outcomes (settings) ---------------------------------------------------------------------------


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def outcome_list(request: HttpRequest) -> HttpResponse:
    form = OutcomeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.outcome_create(actor=request.user, name=form.cleaned_data["name"])
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Outcome added."))
            return redirect("interactions:outcomes")
    return render(
        request,
        "interactions/outcome_list.html",
        {"outcomes": list(selectors.outcome_list(active_only=False)), "form": form},
    )


OUTCOME_ACTIONS = ("rename", "activate", "deactivate", "up", "down")


@role_required(*ADMINS)
@require_POST
def outcome_change(request: HttpRequest, pk: int) -> HttpResponse:
    outcome = selectors.outcome_get(outcome_id=pk)
    action = request.POST.get("action", "")
    if action not in OUTCOME_ACTIONS:
        messages.error(request, _("Unknown action."))
        return redirect("interactions:outcomes")
    try:
        if action == "rename":
            form = OutcomeForm(request.POST)
            if not form.is_valid():
                for errors in form.errors.values():
                    for error in errors:
                        messages.error(request, error)
                return redirect("interactions:outcomes")
            services.outcome_rename(actor=request.user, outcome=outcome, name=form.cleaned_data["name"])
        elif action in ("activate", "deactivate"):
            services.outcome_set_active(actor=request.user, outcome=outcome, active=action == "activate")
        else:
            services.outcome_move(actor=request.user, outcome=outcome, up=action == "up")
    except SERVICE_ERRORS as error:
        show_service_error(request, error)
    else:
        messages.success(request, _("Outcomes saved."))
    return redirect("interactions:outcomes")


# --- import ----------------------------------------------------------------------------------------


@role_required(*MANAGERS)
@require_http_methods(["GET", "POST"])
def interaction_import(request: HttpRequest) -> HttpResponse:
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = imports.import_upload(actor=request.user, uploaded_file=form.cleaned_data["file"])
        except SERVICE_ERRORS as error:
            show_service_error(form, error, field="file")
        else:
            return redirect("interactions:import_job", job_id=job.pk)
    recent = job_list_for_user(user=request.user, kind_prefix=imports.JOB_KIND)[:5]
    return render(request, "interactions/import_start.html", {"form": form, "recent": recent})


@role_required(*MANAGERS)
@require_http_methods(["GET", "POST"])
def interaction_import_job(request: HttpRequest, job_id: int) -> HttpResponse:
    job = job_get_for_user(user=request.user, job_id=job_id)
    if job.kind != imports.JOB_KIND:
        raise Http404
    params = job.params
    form = None
    if params.get("stage") == imports.STAGE_MAPPING:
        form = ImportMappingForm(
            request.POST or None,
            headers=params.get("headers", []),
            mapping=params.get("mapping", []),
            samples=params.get("sample", []),
        )
        if request.method == "POST" and form.is_valid():
            try:
                imports.import_start(actor=request.user, job=job, mapping=form.mapping())
            except SERVICE_ERRORS as error:
                show_service_error(form, error)
            else:
                return redirect("interactions:import_job", job_id=job.pk)
    elif request.method == "POST" and params.get("stage") == imports.STAGE_PREVIEW:
        try:
            imports.import_confirm(actor=request.user, job=job)
        except SERVICE_ERRORS as error:
            show_service_error(request, error)
        return redirect("interactions:import_job", job_id=job.pk)
    elif request.method == "POST":
        return redirect("interactions:import_job", job_id=job.pk)
    return render(
        request, "interactions/import_job.html", {"job": job, "form": form, "stage": params.get("stage")}
    )
