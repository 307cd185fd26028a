"""Pages of the segmentation app. Thin: parse input, call one selector or service, render.

Every page checks the role on the server. Managers and admins see the whole tenant; sales staff see
the figures of their own (and shared) customers. Settings are for admins; starting a recompute and
the history are for managers and admins.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm import reportcache
from crm.accounts.permissions import ADMINS, ALL_ROLES, MANAGERS, role_required
from crm.errors import SERVICE_ERRORS, service_error_messages, service_error_text, show_service_error

from . import builder, selectors, services
from .analytics.lifecycle import DEFAULT_AT_RISK_QUIET_PROBABILITY
from .forms import AlertBulkForm, AlertQueueFilterForm, SegmentForm, SettingsForm
from .labels import ClvModel
from .registry import alert_action_links
from .rules import RuleError, count_conditions, validate_rules

PREVIEW_CUSTOMERS = 10


def _customer_list_url(**params) -> str:
    return f"{reverse('customers:list')}?{urlencode(params)}"


def _status_context(request: HttpRequest) -> dict:
    run = selectors.latest_run()
    used = run.settings_used if run and isinstance(run.settings_used, dict) else {}
    return {
        "latest_run": run,
        "job": selectors.active_recompute_job(),
        "can_recompute": request.user.is_manager_or_admin,
        # What the figures on these pages were computed over, said in words on the pages.
        "rfm_window_days": used.get("window_days"),
        "horizon_days": used.get("horizon_days"),
    }


# --------------------------------------------------------------------------------------------------
# Overview, heatmap, recompute
# --------------------------------------------------------------------------------------------------
@role_required(*ALL_ROLES)
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    shown = reportcache.cached("segments-rfm", request.user, {})
    if (answer := reportcache.poll_answer(request, shown)) is not None:
        return answer
    rows, totals = selectors.segment_rows(shown.value["segments"])
    for row in rows:
        row.url = _customer_list_url(rfm_segment=row.key) if row.key else ""
    context = {
        "tab": "overview",
        "rows": rows,
        "totals": totals,
        "heatmap": selectors.heatmap_rows(shown.value["heatmap"]),
        **_status_context(request),
        **reportcache.as_of(request, shown),
    }
    return render(request, "segmentation/segment_overview.html", context)


@role_required(*MANAGERS)
@require_POST
def recompute(request: HttpRequest) -> HttpResponse:
    """Start a recompute, or join the one already running; htmx gets the progress bar back."""
    job = services.recompute_request(user=request.user)
    if request.htmx:
        return render(
            request, "segmentation/partials/_recompute_status.html", {"job": job, "can_recompute": True}
        )
    messages.info(request, _("The recompute has started; the page updates when it finishes."))
    return redirect("segmentation:index")


# --------------------------------------------------------------------------------------------------
# CLV and lifecycle
# --------------------------------------------------------------------------------------------------
@role_required(*ALL_ROLES)
@require_GET
def clv(request: HttpRequest) -> HttpResponse:
    shown = reportcache.cached("segments-clv", request.user, {})
    if (answer := reportcache.poll_answer(request, shown)) is not None:
        return answer
    run = selectors.latest_run()
    report = run.model_report if run else {}
    distribution = shown.value
    holdout = run.holdout if run else {}
    context = {
        "tab": "clv",
        "run": run,
        "report": report,
        "is_historical": bool(run and run.clv_model == ClvModel.HISTORICAL),
        "distribution": distribution,
        "chart": {
            "labels": distribution["labels"],
            "counts": distribution["counts"],
            "links": distribution["links"],
            "holdout": holdout.get("by_frequency", []) if isinstance(holdout, dict) else [],
        },
        "holdout": holdout,
        "top": selectors.top_customers_by_clv(user=request.user),
        **_status_context(request),
        **reportcache.as_of(request, shown),
    }
    return render(request, "segmentation/clv_overview.html", context)


@role_required(*ALL_ROLES)
@require_GET
def lifecycle(request: HttpRequest) -> HttpResponse:
    shown = reportcache.cached("segments-lifecycle", request.user, {})
    if (answer := reportcache.poll_answer(request, shown)) is not None:
        return answer
    funnel = selectors.funnel_rows(shown.value)
    for stage in funnel:
        stage["url"] = _customer_list_url(lifecycle_stage=stage["key"])
    context = {
        "tab": "lifecycle",
        "funnel": funnel,
        "evaluation": selectors.latest_alert_evaluation(),
        "quiet_probability": DEFAULT_AT_RISK_QUIET_PROBABILITY,
        "transitions": selectors.recent_stage_transitions(user=request.user),
        **_status_context(request),
        **reportcache.as_of(request, shown),
    }
    return render(request, "segmentation/lifecycle_overview.html", context)


# --------------------------------------------------------------------------------------------------
# Alerts
# --------------------------------------------------------------------------------------------------
@role_required(*ALL_ROLES)
@require_GET
def alerts(request: HttpRequest) -> HttpResponse:
    """The alerts as a work queue: what is at stake first, filters, keyset pages, bulk actions."""
    owners = selectors.alert_queue_owners(user=request.user)
    form = AlertQueueFilterForm(request.GET or None, owners=owners)
    filters = form.filters()
    qs = selectors.alert_queue(user=request.user, **filters)
    page = selectors.alert_queue_page(qs, cursor=request.GET.get("after"))
    links = alert_action_links(page.rows, request.user)
    for alert in page.rows:
        alert.action_links = links.get(alert.pk, [])
    query = request.GET.copy()
    query.pop("after", None)
    services.alert_queue_seen(user=request.user)
    context = {
        "tab": "alerts",
        "form": form,
        "page": page,
        "alerts": page.rows,
        "querystring": query.urlencode(),
        "owners": owners,
        "can_assign": request.user.is_manager_or_admin,
    }
    return render(request, "segmentation/alert_list.html", context)


@role_required(*ALL_ROLES)
@require_POST
def alerts_bulk(request: HttpRequest) -> HttpResponse:
    """Acknowledge or assign the ticked alerts; only alerts the user sees are touched."""
    owners = selectors.alert_queue_owners(user=request.user)
    form = AlertBulkForm(request.POST, owners=owners)
    back = reverse("segmentation:alerts")
    next_query = request.POST.get("querystring", "")[:1000]
    if next_query:
        back = f"{back}?{next_query}"
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect(back)
    alerts = list(
        selectors.alert_list(user=request.user, status=None).filter(pk__in=form.cleaned_data["alert"])
    )
    try:
        if form.cleaned_data["action"] == "assign":
            count = services.alert_assign_many(
                actor=request.user, alerts=alerts, owner=form.cleaned_data["owner"]
            )
            messages.success(
                request,
                ngettext("%(count)s alert assigned.", "%(count)s alerts assigned.", count) % {"count": count},
            )
        else:
            count = services.alert_acknowledge_many(actor=request.user, alerts=alerts)
            messages.success(
                request,
                ngettext("%(count)s alert acknowledged.", "%(count)s alerts acknowledged.", count)
                % {"count": count},
            )
    except SERVICE_ERRORS as exc:
        show_service_error(request, exc)
    return redirect(back)


def _alert_action(request: HttpRequest, alert_id: int, service) -> HttpResponse:
    alert = selectors.alert_get_for_user(user=request.user, alert_id=alert_id)
    error = ""
    try:
        alert = service(actor=request.user, alert=alert)
    except SERVICE_ERRORS as exc:
        error = service_error_text(exc)
    if request.htmx:
        alert.action_links = alert_action_links([alert], request.user).get(alert.pk, [])
        return render(request, "segmentation/partials/_alert_row.html", {"alert": alert, "error": error})
    if error:
        messages.error(request, error)
    return redirect("segmentation:alerts")


@role_required(*ALL_ROLES)
@require_POST
def alert_acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    return _alert_action(request, alert_id, services.alert_acknowledge)


@role_required(*ALL_ROLES)
@require_POST
def alert_dismiss(request: HttpRequest, alert_id: int) -> HttpResponse:
    return _alert_action(request, alert_id, services.alert_dismiss)


# --------------------------------------------------------------------------------------------------
# Saved segments and the builder
# --------------------------------------------------------------------------------------------------
@role_required(*ALL_ROLES)
@require_GET
def segment_list(request: HttpRequest) -> HttpResponse:
    segments = list(selectors.segment_list(user=request.user).order_by("name", "pk"))
    for segment in segments:
        segment.can_edit = request.user.is_manager_or_admin or segment.created_by_id == request.user.pk
        segment.conditions = count_conditions(segment.rules) if isinstance(segment.rules, dict) else 0
    return render(request, "segmentation/segment_list.html", {"tab": "saved", "segments": segments})


@role_required(*ALL_ROLES)
@require_GET
def segment_open(request: HttpRequest, pk: int) -> HttpResponse:
    """A saved segment is a customer-list filter: open the list filtered by it."""
    segment = selectors.segment_get_for_user(user=request.user, segment_id=pk)
    return redirect(_customer_list_url(segment=segment.pk))


@role_required(*ALL_ROLES)
@require_GET
def segment_count(request: HttpRequest, pk: int) -> HttpResponse:
    segment = selectors.segment_get_for_user(user=request.user, segment_id=pk)
    try:
        count = selectors.segment_customers(user=request.user, rules=segment.rules).count()
    except RuleError as exc:
        return render(request, "segmentation/partials/_count.html", {"count": None, "errors": exc.messages})
    return render(request, "segmentation/partials/_count.html", {"count": count})


@role_required(*ALL_ROLES)
@require_POST
def segment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    segment = selectors.segment_get_for_user(user=request.user, segment_id=pk)
    services.segment_delete(actor=request.user, segment=segment)
    messages.success(request, _("Segment “%(name)s” deleted.") % {"name": segment.name})
    return redirect("segmentation:segments")


def _builder_page(request, *, rules, form, segment=None, errors=None, status=200) -> HttpResponse:
    context = {
        "tab": "builder",
        "form": form,
        "segment": segment,
        "builder": builder.builder_context(rules),
        "rule_errors": errors or [],
        "rules_json": json.dumps(rules, ensure_ascii=False),
    }
    return render(request, "segmentation/segment_builder.html", context, status=status)


@role_required(*ALL_ROLES)
@require_http_methods(["GET", "POST"])
def builder_new(request: HttpRequest) -> HttpResponse:
    return _builder_save(request, segment=None)


@role_required(*ALL_ROLES)
@require_http_methods(["GET", "POST"])
def builder_edit(request: HttpRequest, pk: int) -> HttpResponse:
    segment = selectors.segment_get_for_user(user=request.user, segment_id=pk)
    if not (request.user.is_manager_or_admin or segment.created_by_id == request.user.pk):
        raise PermissionDenied
    return _builder_save(request, segment=segment)


def _builder_save(request: HttpRequest, *, segment) -> HttpResponse:
    if request.method == "GET":
        initial = (
            {"name": segment.name, "description": segment.description, "is_shared": segment.is_shared}
            if segment
            else None
        )
        rules = builder.for_builder(segment.rules if segment else None)
        return _builder_page(request, rules=rules, form=SegmentForm(initial=initial), segment=segment)

    rules = builder.rules_from_post(request.POST)
    form = SegmentForm(request.POST)
    if not form.is_valid():
        return _builder_page(request, rules=rules, form=form, segment=segment, status=400)
    data = form.cleaned_data
    try:
        if segment is None:
            segment = services.segment_create(actor=request.user, rules=rules, **data)
        else:
            segment = services.segment_update(actor=request.user, segment=segment, rules=rules, **data)
    except SERVICE_ERRORS as exc:
        # Problems with the rules are listed in the builder, beside the conditions; the rest on the form.
        by_field = service_error_messages(exc)
        rule_errors = [*by_field.pop("rules", []), *by_field.pop(None, [])]
        if by_field:
            show_service_error(form, ValidationError(by_field))
        return _builder_page(request, rules=rules, form=form, segment=segment, errors=rule_errors, status=400)
    messages.success(request, _("Segment “%(name)s” saved.") % {"name": segment.name})
    return redirect("segmentation:segments")


@role_required(*ALL_ROLES)
@require_POST
def builder_refresh(request: HttpRequest) -> HttpResponse:
    """htmx: re-render the conditions after adding/removing one or choosing another field."""
    rules = builder.apply_action(builder.rules_from_post(request.POST), request.POST.get("action", ""))
    return render(request, "segmentation/partials/_builder.html", {"builder": builder.builder_context(rules)})


@role_required(*ALL_ROLES)
@require_POST
def builder_preview(request: HttpRequest) -> HttpResponse:
    """htmx: how many customers (that the user may see) match the rules as they stand, the first of
    them, and what can be done with them. Rows without a field yet are left out (nothing has been
    asked of them); an unfinished condition is a hint, not an error, until the user saves."""
    rules = builder.without_blank_conditions(builder.rules_from_post(request.POST))
    segment = None
    segment_id = request.POST.get("segment", "")[:12]
    if segment_id:
        segment = selectors.segment_get_for_user(user=request.user, segment_id=segment_id)
    if not rules["rules"]:
        rules = {"op": "and", "rules": []}
    try:
        clean = validate_rules(rules) if rules["rules"] else rules
    except RuleError as exc:
        return render(request, "segmentation/partials/_preview.html", {"count": None, "errors": exc.messages})
    matching = selectors.segment_customers(user=request.user, rules=clean)
    count = matching.count()
    first = list(matching.select_related("owner").order_by("-total_spent", "-id")[:PREVIEW_CUSTOMERS])
    return render(
        request,
        "segmentation/partials/_preview.html",
        {
            "count": count,
            "errors": [],
            "conditions": count_conditions(clean) if clean["rules"] else 0,
            "first": first,
            "segment": segment,
            # the saved segment's actions apply to its saved rules: offered when the form shows them
            "saved_rules_shown": segment is not None and _validated_or_none(segment.rules) == clean,
        },
    )


def _validated_or_none(rules) -> dict | None:
    try:
        return validate_rules(rules)
    except RuleError:
        return None


# --------------------------------------------------------------------------------------------------
# Settings and history
# --------------------------------------------------------------------------------------------------
@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def settings_edit(request: HttpRequest) -> HttpResponse:
    current = services.settings_get()
    form = SettingsForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        try:
            services.settings_update(actor=request.user, **form.settings_values())
        except SERVICE_ERRORS as exc:
            show_service_error(form, exc)
        else:
            messages.success(request, _("Settings saved. They apply from the next recompute."))
            return redirect("segmentation:settings")
    return render(
        request,
        "segmentation/settings_form.html",
        {"tab": "settings", "form": form},
        status=400 if request.method == "POST" else 200,
    )


@role_required(*MANAGERS)
@require_GET
def history(request: HttpRequest) -> HttpResponse:
    data = selectors.snapshot_history()
    chart = {
        "dates": [timezone.localtime(d).strftime("%Y-%m-%d %H:%M") for d in data["dates"]],
        # The x axis is time itself (milliseconds since 1970): a month apart looks a month apart.
        "times": [int(d.timestamp() * 1000) for d in data["dates"]],
        "segments": data["segments"],
        "stages": data["stages"],
    }
    context = {
        "tab": "history",
        "chart": chart,
        "has_history": bool(data["dates"]),
        "movement": selectors.segment_movement(),
        "runs": selectors.run_list(limit=15),
        **_status_context(request),
    }
    return render(request, "segmentation/history_overview.html", context)
