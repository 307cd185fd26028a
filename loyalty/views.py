"""Pages of the loyalty app. Thin: parse input with a form, call one selector or service, render.

Every signed-in role sees the overview, looks up members and opens the members whose customers they
may see (sales: their own and shared); adjustments above the programme's limit need a manager (the
service checks); the programme and tiers are for admins.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm import reportcache
from crm.accounts.permissions import ADMINS, ALL_ROLES, MANAGERS, role_required
from crm.errors import SERVICE_ERRORS, show_service_error
from crm.jobs.selectors import job_get_for_user, job_list_for_user
from crm.numbers import parse_id
from customers.selectors import customer_get_for_user

from . import imports, selectors, services
from . import reports as report_selectors
from .forms import AdjustForm, LookupForm, OpeningMappingForm, OpeningUploadForm, ProgrammeForm, TierForm
from .models import Tier


@role_required(*ALL_ROLES)
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    shown = reportcache.cached("loyalty-overview", request.user, {})
    if (answer := reportcache.poll_answer(request, shown)) is not None:
        return answer
    figures = shown.value
    list_url = reverse("customers:list")
    for row in figures.tiers:
        row.url = f"{list_url}?{urlencode({'tier': row.tier.pk})}" if row.tier else ""
    context = {
        "tab": "overview",
        "figures": figures,
        "programme": selectors.programme_or_none(),
        "lookup_form": LookupForm(),
        **reportcache.as_of(request, shown),
    }
    return render(request, "loyalty/overview.html", context)


@role_required(*ALL_ROLES)
@require_GET
def members(request: HttpRequest) -> HttpResponse:
    form = LookupForm(request.GET or None)
    results, searched = [], False
    if form.is_valid() and form.cleaned_data["q"].strip():
        searched = True
        results = selectors.member_lookup(user=request.user, query=form.cleaned_data["q"])
    context = {"tab": "members", "form": form, "results": results, "searched": searched}
    template = "loyalty/partials/_lookup_results.html" if request.htmx else "loyalty/member_lookup.html"
    return render(request, template, context)


def _member_page(request: HttpRequest, member, *, adjust_form=None, status: int = 200) -> HttpResponse:
    before = parse_id(request.GET.get("before"))
    statement = selectors.member_statement(member=member, before=before)
    context = {
        "tab": "members",
        "member": member,
        "summary": selectors.member_summary(member=member),
        "statement": statement,
        "paged": before is not None,
        "adjust_form": adjust_form or AdjustForm(),
        "adjust_limit": services.programme_get().adjust_limit,
    }
    return render(request, "loyalty/member_detail.html", context, status=status)


@role_required(*ALL_ROLES)
@require_GET
def member(request: HttpRequest, member_id: int) -> HttpResponse:
    found = selectors.member_get_for_user(user=request.user, member_id=member_id)
    if request.htmx and request.GET.get("before"):
        before = parse_id(request.GET.get("before"))
        statement = selectors.member_statement(member=found, before=before)
        return render(
            request, "loyalty/partials/_statement_rows.html", {"statement": statement, "member": found}
        )
    return _member_page(request, found)


@role_required(*ALL_ROLES)
@require_POST
def member_adjust(request: HttpRequest, member_id: int) -> HttpResponse:
    found = selectors.member_get_for_user(user=request.user, member_id=member_id)
    form = AdjustForm(request.POST)
    if form.is_valid():
        try:
            services.points_adjust(
                actor=request.user,
                member=found,
                points=form.cleaned_data["points"],
                reason=form.cleaned_data["reason"],
            )
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(
                request,
                _("Points adjusted by %(points)+d. New balance: %(balance)s.")
                % {"points": form.cleaned_data["points"], "balance": found.balance},
            )
            return redirect("loyalty:member", member_id=found.pk)
    found.refresh_from_db()
    return _member_page(request, found, adjust_form=form, status=400)


@role_required(*ALL_ROLES)
@require_POST
def enrol(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = customer_get_for_user(user=request.user, customer_id=customer_id)
    try:
        created = services.member_enrol(actor=request.user, customer=customer)
    except SERVICE_ERRORS as error:
        show_service_error(request, error)
        return redirect("customers:detail", pk=customer.pk)
    messages.success(
        request,
        _("%(name)s is a member now: %(number)s.") % {"name": customer.name, "number": created.number},
    )
    return redirect("loyalty:member", member_id=created.pk)


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def settings_edit(request: HttpRequest) -> HttpResponse:
    programme = services.programme_get()
    form = ProgrammeForm(request.POST or None, instance=programme)
    if request.method == "POST" and form.is_valid():
        try:
            services.programme_update(actor=request.user, data=form.programme_values())
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Programme settings saved."))
            return redirect("loyalty:settings")
    programme.refresh_from_db()
    context = {"tab": "settings", "form": form, "tiers": Tier.objects.order_by("rank")}
    return render(
        request, "loyalty/settings_form.html", context, status=400 if request.method == "POST" else 200
    )


def _tier_page(request: HttpRequest, tier: Tier | None) -> HttpResponse:
    form = TierForm(request.POST or None, instance=tier or Tier())
    if request.method == "POST" and form.is_valid():
        try:
            services.tier_save(actor=request.user, tier=tier, data=form.tier_values())
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Tier saved. Members move at the next evaluation."))
            return redirect("loyalty:settings")
    context = {"tab": "settings", "form": form, "tier": tier}
    return render(request, "loyalty/tier_form.html", context, status=400 if request.method == "POST" else 200)


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def tier_new(request: HttpRequest) -> HttpResponse:
    return _tier_page(request, None)


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def tier_edit(request: HttpRequest, tier_id: int) -> HttpResponse:
    tier = selectors.tier_get(tier_id=tier_id)
    return _tier_page(request, tier)


@role_required(*MANAGERS)
@require_GET
def reports(request: HttpRequest) -> HttpResponse:
    """The programme's figures over 12 or 24 months; each links to its members."""
    period = report_selectors.clean_period(request.GET.get("period"))
    shown = reportcache.cached("loyalty-report", request.user, {"period": period})
    if (answer := reportcache.poll_answer(request, shown)) is not None:
        return answer
    context = {
        "tab": "reports",
        "report": shown.value,
        "periods": report_selectors.PERIODS,
        **reportcache.as_of(request, shown),
    }
    return render(request, "loyalty/report_overview.html", context)


@role_required(*ALL_ROLES)
@require_GET
def report_members(request: HttpRequest) -> HttpResponse:
    """The members behind one figure of the report, in the user's scope, by keyset pages."""
    drill = report_selectors.clean_drill(request.GET)
    if drill is None:
        raise Http404
    after = parse_id(request.GET.get("after"))
    page = report_selectors.drill_page(user=request.user, drill=drill, after=after)
    query = request.GET.copy()
    query.pop("after", None)
    context = {
        "tab": "reports",
        "drill": drill,
        "page": page,
        "tier": report_selectors.drill_title_tier(drill),
        "base_query": query.urlencode(),
        "paged": after is not None,
    }
    return render(request, "loyalty/report_members.html", context)


@role_required(*MANAGERS)
@require_http_methods(["GET", "POST"])
def opening_import(request: HttpRequest) -> HttpResponse:
    """Upload a file of opening balances (migration from another system)."""
    form = OpeningUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = imports.import_upload(actor=request.user, uploaded_file=form.cleaned_data["file"])
        except SERVICE_ERRORS as error:
            show_service_error(form, error, field="file")
        else:
            return redirect("loyalty:opening_import_job", job_id=job.pk)
    recent = job_list_for_user(user=request.user, kind_prefix=imports.JOB_KIND)[:5]
    context = {"tab": "import", "form": form, "recent": recent}
    return render(request, "loyalty/opening_import_start.html", context, status=400 if form.errors else 200)


@role_required(*MANAGERS)
@require_http_methods(["GET", "POST"])
def opening_import_job(request: HttpRequest, job_id: int) -> HttpResponse:
    """The mapping step, then the check's progress, the preview to confirm, and the result."""
    job = job_get_for_user(user=request.user, job_id=job_id)
    if job.kind != imports.JOB_KIND:
        raise Http404
    params = job.params
    stage = params.get("stage")
    form = None
    if stage == imports.STAGE_MAPPING:
        form = OpeningMappingForm(
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
                return redirect("loyalty:opening_import_job", job_id=job.pk)
    elif request.method == "POST":
        if stage == imports.STAGE_PREVIEW and request.POST.get("confirm") == "1":
            try:
                imports.import_confirm(actor=request.user, job=job)
            except SERVICE_ERRORS as error:
                show_service_error(request, error)
        return redirect("loyalty:opening_import_job", job_id=job.pk)
    context = {"tab": "import", "job": job, "form": form, "stage": stage}
    return render(request, "loyalty/opening_import_job.html", context)
