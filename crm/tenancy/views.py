"""The platform console, on the public site, for platform admins (public-schema superusers)."""

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from crm.accounts.permissions import platform_admin_required
from crm.errors import SERVICE_ERRORS, show_service_error

from . import deletion, editing, selectors, services
from .forms import TenantCreateForm, TenantDeleteForm, TenantEditForm, TenantFilterForm

TENANTS_PAGE_SIZE = 50


def public_home(request):
    if request.user.is_authenticated and request.user.is_superuser:
        return redirect("tenancy:list")
    return render(request, "tenancy/public_home.html")


@platform_admin_required
def tenant_list(request):
    filters = TenantFilterForm(request.GET or None)
    cleaned = filters.cleaned_data if filters.is_valid() else {}
    tenants = selectors.tenant_list(search=cleaned.get("q", ""), status=cleaned.get("status", ""))
    summary = selectors.tenant_summary(tenants=tenants)
    page = Paginator(selectors.with_latest_usage(tenants), TENANTS_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    stats = selectors.tenant_stats(tenants=page.object_list)
    rows = [{"tenant": tenant, "stats": stats[tenant.pk]} for tenant in page.object_list]
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "tenancy/tenant_list.html",
        {
            "filters": filters,
            "page_obj": page,
            "rows": rows,
            "summary": summary,
            "querystring": query.urlencode(),
        },
    )


@platform_admin_required
def tenant_create(request):
    form = TenantCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tenant = services.tenant_open(actor=request.user, **form.cleaned_data)
        except SERVICE_ERRORS as exc:
            show_service_error(form, exc)
        else:
            messages.success(request, _("%(name)s is being set up.") % {"name": tenant.name})
            return redirect("tenancy:detail", tenant_id=tenant.pk)
    return render(request, "tenancy/tenant_form.html", {"form": form})


@platform_admin_required
def tenant_detail(request, tenant_id: int):
    tenant = selectors.tenant_get(tenant_id=tenant_id)
    stats = selectors.tenant_stats(tenants=[tenant], fresh=True)[tenant.pk]
    usage = selectors.tenant_usage_history(tenant=tenant)
    return render(
        request,
        "tenancy/tenant_detail.html",
        {
            "tenant": tenant,
            "stats": stats,
            "domains": list(tenant.domains.order_by("-is_primary", "domain")),
            "events": selectors.tenant_audit_events(tenant=tenant),
            "first_admin": editing.first_admin_state(tenant=tenant),
            "resend_wait": editing.resend_wait_seconds(tenant=tenant),
            "usage_latest": usage[-1] if usage else None,
            "usage_chart": selectors.tenant_usage_chart(usage),
            "usage_days": selectors.USAGE_CHART_DAYS,
            "exact_below": selectors.EXACT_COUNT_BELOW,
        },
    )


@platform_admin_required
def tenant_edit(request, tenant_id: int):
    tenant = selectors.tenant_get(tenant_id=tenant_id)
    editable_email = editing.first_admin_state(tenant=tenant) != editing.FirstAdmin.ACCEPTED
    initial = {field: getattr(tenant, field) for field in editing.EDITABLE_FIELDS}
    form = TenantEditForm(request.POST or None, initial=initial, admin_email_editable=editable_email)
    if request.method == "POST" and form.is_valid():
        try:
            editing.tenant_update(actor=request.user, tenant=tenant, **form.cleaned_data)
        except SERVICE_ERRORS as exc:
            show_service_error(form, exc)
        else:
            selectors.tenant_stats_forget(tenant=tenant)
            messages.success(request, _("%(name)s is saved.") % {"name": form.cleaned_data["name"]})
            return redirect("tenancy:detail", tenant_id=tenant.pk)
    return render(request, "tenancy/tenant_edit.html", {"tenant": tenant, "form": form})


@platform_admin_required
@require_POST
def tenant_invitation_resend(request, tenant_id: int):
    tenant = selectors.tenant_get(tenant_id=tenant_id)
    try:
        email = editing.tenant_admin_invitation_resend(actor=request.user, tenant=tenant)
    except SERVICE_ERRORS as exc:
        show_service_error(request, exc)
    else:
        messages.success(
            request,
            _("A new invitation is on its way to %(email)s. Links sent before no longer work.")
            % {"email": email},
        )
    return redirect("tenancy:detail", tenant_id=tenant.pk)


@platform_admin_required
def tenant_progress(request, tenant_id: int):
    """The provisioning status fragment; htmx polls it every second until the tenant is ready."""
    tenant = selectors.tenant_get(tenant_id=tenant_id)
    return render(request, "tenancy/partials/_provisioning.html", {"tenant": tenant})


def _run_action(request, action, success_message: str, tenant_id: int):
    tenant = selectors.tenant_get(tenant_id=tenant_id)
    try:
        action(actor=request.user, tenant=tenant)
    except SERVICE_ERRORS as exc:
        show_service_error(request, exc)
    else:
        selectors.tenant_stats_forget(tenant=tenant)
        messages.success(request, success_message % {"name": tenant.name})
    return redirect("tenancy:detail", tenant_id=tenant.pk)


@platform_admin_required
@require_POST
def tenant_suspend(request, tenant_id: int):
    return _run_action(
        request, services.tenant_suspend, _("%(name)s is suspended. Its users cannot sign in."), tenant_id
    )


@platform_admin_required
@require_POST
def tenant_reactivate(request, tenant_id: int):
    return _run_action(request, services.tenant_reactivate, _("%(name)s is active again."), tenant_id)


@platform_admin_required
@require_POST
def tenant_retry(request, tenant_id: int):
    return _run_action(
        request, services.tenant_retry_provisioning, _("Setting up %(name)s again."), tenant_id
    )


@platform_admin_required
def tenant_delete(request, tenant_id: int):
    """Typed-slug confirmation; the company stops being served now and is purged after the grace period."""
    tenant = selectors.tenant_get(tenant_id=tenant_id)
    form = TenantDeleteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            deletion.tenant_delete(
                actor=request.user, tenant=tenant, confirm_slug=form.cleaned_data["confirm_slug"]
            )
        except SERVICE_ERRORS as exc:
            show_service_error(form, exc)
        else:
            selectors.tenant_stats_forget(tenant=tenant)
            days = settings.TENANT_DELETE_GRACE_DAYS
            message = ngettext(
                "%(name)s is deleted. A final backup is being written; its data is purged in %(days)d day.",
                "%(name)s is deleted. A final backup is being written; its data is purged in %(days)d days.",
                days,
            )
            messages.success(request, message % {"name": tenant.name, "days": days})
            return redirect("tenancy:detail", tenant_id=tenant.pk)
    return render(
        request,
        "tenancy/tenant_delete.html",
        {"tenant": tenant, "form": form, "grace_days": settings.TENANT_DELETE_GRACE_DAYS},
    )
