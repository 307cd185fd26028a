from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.db import connection
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import translation
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.errors import SERVICE_ERRORS, show_service_error
from crm.numbers import parse_id
from crm.settings_registry import entries_for
from crm.tenancy.profile import logo_name_version, logo_open, tenant_update_profile
from crm.tenancy.profile_forms import CompanyProfileForm

from . import selectors, services
from .forms import (
    AuditFilterForm,
    EmailAuthenticationForm,
    InvitationAcceptForm,
    InvitationForm,
    ProfileForm,
    RoleForm,
    UserFilterForm,
)
from .permissions import ADMINS, MANAGERS, role_required
from .services import user_update_profile
from .views_lockout import lockout  # noqa: F401  (AXES_LOCKOUT_CALLABLE names it here)


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True

    def get_default_redirect_url(self):
        # The public site has no "home": platform admins land on the console.
        if connection.schema_name == "public":
            return reverse("tenancy:list")
        return super().get_default_redirect_url()

    def form_valid(self, form):
        """A right password signs in only those without two-factor; the others go on to the code step."""
        from .views_two_factor import start_pending_sign_in

        user = form.get_user()
        if services.two_factor_enabled(user=user) or services.two_factor_required(user=user):
            return start_pending_sign_in(self.request, user=user, next_url=self.get_success_url())
        return super().form_valid(form)


@role_required(*MANAGERS)
def settings_index(request):
    """The settings pages each app registered (crm.settings_registry) that this user may open."""
    return render(request, "accounts/settings_index.html", {"entries": entries_for(request.user)})


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def company_profile(request):
    form = CompanyProfileForm(request.POST or None, request.FILES or None, tenant=request.tenant)
    if request.method == "POST" and form.is_valid():
        try:
            tenant_update_profile(actor=request.user, tenant=request.tenant, **form.service_arguments())
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("The company profile has been saved."))
            return redirect("accounts:company_profile")
    return render(request, "accounts/company_profile.html", {"form": form, "tenant": request.tenant})


@require_GET
def company_logo(request, version: str):
    """The company's logo (shown in the navigation bar, the sign-in page's too): this tenant's file only.
    The file name carries its content hash, so a response can be cached for good."""
    tenant = request.tenant
    if not tenant.logo or logo_name_version(tenant.logo) != version:
        raise Http404
    handle = logo_open(tenant)
    if handle is None:
        raise Http404
    response = FileResponse(handle, content_type="image/png")
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@role_required()
def profile(request):
    user = request.user
    form = ProfileForm(
        request.POST or None,
        initial={"full_name": user.full_name, "language": user.language, "time_zone": user.time_zone},
    )
    if request.method == "POST" and form.is_valid():
        user_update_profile(actor=user, user=user, **form.cleaned_data)
        if user.language:
            translation.activate(user.language)
        messages.success(request, _("Your profile has been saved."))
        return redirect("accounts:profile")
    return render(request, "accounts/profile.html", {"form": form})


class PasswordResetView(auth_views.PasswordResetView):
    """The e-mailed link is built from the configured site address (SITE_SCHEME, the tenant's domain,
    SITE_PORT), never from the Host header the requester sent."""

    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form):
        from urllib.parse import urlsplit

        from django.conf import settings
        from django.http import HttpResponseRedirect

        site = urlsplit(self.request.tenant.url("/"))
        form.save(
            domain_override=site.netloc,
            use_https=settings.SITE_SCHEME == "https",
            token_generator=self.token_generator,
            from_email=self.from_email,
            email_template_name=self.email_template_name,
            subject_template_name=self.subject_template_name,
            request=self.request,
            html_email_template_name=self.html_email_template_name,
            extra_email_context={**(self.extra_email_context or {}), "site_name": self.request.tenant.name},
        )
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"


# --- Settings -> Users (tenant admins) ------------------------------------------------------------

USERS_PAGE_SIZE = 50


@role_required(*ADMINS)
def user_list(request):
    from django.core.paginator import Paginator

    filters = UserFilterForm(request.GET or None)
    cleaned = filters.cleaned_data if filters.is_valid() else {}
    users = selectors.user_list(
        search=cleaned.get("q", ""), role=cleaned.get("role", ""), status=cleaned.get("status", "")
    )
    page = Paginator(users, USERS_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "accounts/user_list.html",
        {
            "filters": filters,
            "page_obj": page,
            "users": page.object_list,
            "querystring": query.urlencode(),
            "invitations": list(selectors.invitation_list_pending()),
        },
    )


@role_required(*ADMINS)
def user_invite(request):
    form = InvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            invitation = services.invitation_create(
                actor=request.user, tenant=request.tenant, **form.cleaned_data
            )
        except SERVICE_ERRORS as exc:
            show_service_error(form, exc)
        else:
            messages.success(request, _("Invitation sent to %(email)s.") % {"email": invitation.email})
            return redirect("accounts:user_list")
    return render(request, "accounts/invitation_form.html", {"form": form})


@role_required(*ADMINS)
def user_detail(request, user_id: int):
    from crm.audit.selectors import audit_events_for

    member = selectors.user_get(user_id=user_id)
    return render(
        request,
        "accounts/user_detail.html",
        {
            "member": member,
            "role_form": RoleForm(initial={"role": member.role}),
            "events": selectors.audit_with_display_changes(audit_events_for(target=member)[:20]),
            "is_self": member.pk == request.user.pk,
        },
    )


@role_required(*ADMINS)
@require_POST
def user_change_role(request, user_id: int):
    member = selectors.user_get(user_id=user_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a valid role."))
        return redirect("accounts:user_detail", user_id=member.pk)
    try:
        services.user_change_role(actor=request.user, user=member, role=form.cleaned_data["role"])
    except SERVICE_ERRORS as exc:
        show_service_error(request, exc)
    else:
        messages.success(
            request,
            _("%(name)s is now %(role)s.") % {"name": member, "role": member.get_role_display()},
        )
    return redirect("accounts:user_detail", user_id=member.pk)


@role_required(*ADMINS)
@require_POST
def user_deactivate(request, user_id: int):
    member = selectors.user_get(user_id=user_id)
    try:
        services.user_deactivate(actor=request.user, user=member)
    except SERVICE_ERRORS as exc:
        show_service_error(request, exc)
    else:
        messages.success(request, _("%(name)s has been deactivated and signed out.") % {"name": member})
    return redirect("accounts:user_detail", user_id=member.pk)


@role_required(*ADMINS)
@require_POST
def user_reactivate(request, user_id: int):
    member = selectors.user_get(user_id=user_id)
    services.user_reactivate(actor=request.user, user=member)
    messages.success(request, _("%(name)s can sign in again.") % {"name": member})
    return redirect("accounts:user_detail", user_id=member.pk)


@role_required(*ADMINS)
@require_POST
def invitation_resend(request, invitation_id: int):
    invitation = selectors.invitation_get(invitation_id=invitation_id)
    try:
        services.invitation_resend(actor=request.user, invitation=invitation, tenant=request.tenant)
    except SERVICE_ERRORS as exc:
        show_service_error(request, exc)
    else:
        messages.success(request, _("Invitation sent again to %(email)s.") % {"email": invitation.email})
    return redirect("accounts:user_list")


@role_required(*ADMINS)
@require_POST
def invitation_revoke(request, invitation_id: int):
    invitation = selectors.invitation_get(invitation_id=invitation_id)
    try:
        services.invitation_revoke(actor=request.user, invitation=invitation)
    except SERVICE_ERRORS as exc:
        show_service_error(request, exc)
    else:
        messages.success(
            request, _("The invitation to %(email)s has been revoked.") % {"email": invitation.email}
        )
    return redirect("accounts:user_list")


def invitation_accept(request, token: str):
    """The page an invitation link opens: choose a name and password, then you are signed in."""
    try:
        invitation = services.invitation_check_token(token=token)
    except services.InvitationTokenError as exc:
        return render(request, "accounts/invitation_invalid.html", {"reason": exc.reason}, status=400)
    form = InvitationAcceptForm(
        request.POST or None, invitation=invitation, initial={"full_name": invitation.full_name}
    )
    if request.method == "POST" and form.is_valid():
        try:
            user = services.invitation_accept(
                token=token, full_name=form.cleaned_data["full_name"], password=form.cleaned_data["password1"]
            )
        except services.InvitationTokenError as exc:
            return render(request, "accounts/invitation_invalid.html", {"reason": exc.reason}, status=400)
        except SERVICE_ERRORS as exc:
            show_service_error(form, exc)
        else:
            auth_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, _("Welcome, %(name)s! Your account is ready.") % {"name": user})
            return redirect("home")
    return render(request, "accounts/invitation_accept.html", {"form": form, "invitation": invitation})


@role_required(*ADMINS)
def audit_log(request):
    before_id = parse_id(request.GET.get("before", ""))
    form = AuditFilterForm(request.GET or None, users=selectors.audit_actor_choices())
    filters = form.cleaned_data if form.is_valid() else {}
    if form.is_bound and not form.is_valid():
        events = []  # a bad filter shows its message and no unfiltered log
    else:
        events = selectors.audit_event_list(
            before_id=before_id,
            action=filters.get("event") or "",
            actor_id=filters.get("user"),
            customer=(filters.get("customer") or "").strip(),
            date_from=filters.get("date_from"),
            date_to=filters.get("date_to"),
        )
    has_more = len(events) > selectors.AUDIT_PAGE_SIZE
    events = events[: selectors.AUDIT_PAGE_SIZE]
    query = urlencode({key: value for key, value in request.GET.items() if key in form.fields and value})
    return render(
        request,
        "accounts/audit_log.html",
        {
            "form": form,
            "events": selectors.audit_with_display_changes(events),
            "query": query,
            "next_before": events[-1].pk if has_more and events else None,
            "is_first_page": before_id is None,
        },
    )
