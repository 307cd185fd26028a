"""Pages of the service desk. Thin: check the role, parse with a form, call one service or selector.

Every ticket comes through `selectors.ticket_get_for_user` (Http404 alike for missing and forbidden).
Queues and the ticket page are for every role (sales see their scope); settings are for admins;
deleting tickets for managers and admins. The contact form is public (no sign-in) on the tenant's site.
"""

from __future__ import annotations

import csv
import hashlib
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.accounts.permissions import ADMINS, ALL_ROLES, MANAGERS, role_required, user_has_role
from crm.errors import SERVICE_ERRORS, show_service_error
from crm.spreadsheets import escape_formula
from customers.selectors import assignable_users, customer_get_for_user

from . import forms, selectors, services
from .models import SlaPolicy, Status, TicketMessage

EXPORT_LIMIT = 50_000


def _can_assign(user) -> bool:
    return user_has_role(user, MANAGERS)


# --- queues -----------------------------------------------------------------------------------------


def _queue_filters(request: HttpRequest) -> tuple[forms.QueueFilterForm, dict]:
    form = forms.QueueFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    return form, {k: v for k, v in filters.items() if v}


@role_required(*ALL_ROLES)
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    name = request.GET.get("queue", "mine")
    if name not in selectors.QUEUES:
        name = "mine"
    form, filters = _queue_filters(request)
    qs = selectors.ticket_queue(user=request.user, queue=name, filters=filters)
    page = selectors.ticket_page(qs=qs, cursor=request.GET.get("cursor"))
    now = timezone.now()
    rows = [
        {"ticket": t, "state": selectors.clock_state(t, now), "due": selectors.next_due(t)}
        for t in page.tickets
    ]
    params = {k: v for k, v in request.GET.items() if k != "cursor" and v}
    context = {
        "queue": name,
        "queues": [
            ("mine", _("Mine")),
            ("team", _("My teams")),
            ("unassigned", _("Unassigned")),
            ("breaching", _("Breaching soon")),
            ("all", _("All")),
        ],
        "rows": rows,
        "page": page,
        "form": form,
        "next_url": f"?{urlencode({**params, 'cursor': page.next_cursor})}" if page.has_next else "",
        "first_url": f"?{urlencode(params)}" if request.GET.get("cursor") else "",
        "export_url": f"{reverse('service:export')}?{urlencode(params)}",
        "can_assign": _can_assign(request.user),
        "assign_form": _bulk_form(request.user),
        "alerts": selectors.sla_events_for(user=request.user, limit=5),
    }
    return render(request, "service/ticket_queue.html", context)


def _bulk_form(user):
    if not _can_assign(user):
        return None
    form = forms.BulkAssignForm(users=assignable_users())
    forms.small_controls(form)
    return form


@role_required(*ALL_ROLES)
@require_POST
def bulk_assign(request: HttpRequest) -> HttpResponse:
    users = assignable_users()
    form = forms.BulkAssignForm(request.POST, users=users)
    if not _can_assign(request.user):
        # sales may take tickets: only themselves as assignee
        form = forms.BulkAssignForm(request.POST, users=users.filter(pk=request.user.pk))
    back = request.POST.get("next") or reverse("service:queue")
    if not back.startswith("/") or back.startswith("//"):
        back = reverse("service:queue")
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect(back)
    try:
        changed = services.tickets_assign(
            actor=request.user,
            ticket_ids=form.cleaned_data["ids"],
            assignee=form.cleaned_data.get("assignee"),
            team=form.cleaned_data.get("team"),
        )
    except PermissionDenied as error:
        show_service_error(request, error)
        return redirect(back)
    except SERVICE_ERRORS as error:
        show_service_error(request, error)
        return redirect(back)
    messages.success(request, _("%(count)d tickets assigned.") % {"count": changed})
    return redirect(back)


def _csv_line(values) -> str:
    class Echo:
        def write(self, value):
            return value

    return csv.writer(Echo()).writerow([escape_formula(v) for v in values])


@role_required(*ALL_ROLES)
@require_GET
def export(request: HttpRequest) -> HttpResponse:
    """The queue as CSV (the same filters, at most EXPORT_LIMIT rows), streamed."""
    name = request.GET.get("queue", "mine")
    if name not in selectors.QUEUES:
        name = "mine"
    _form, filters = _queue_filters(request)
    qs = selectors.ticket_queue(user=request.user, queue=name, filters=filters)
    header = [
        _("Number"),
        _("Subject"),
        _("Customer"),
        _("Status"),
        _("Priority"),
        _("Channel"),
        _("Category"),
        _("Assignee"),
        _("Team"),
        _("Opened"),
        _("First response"),
        _("Resolved"),
    ]

    def rows():
        yield "\ufeff" + _csv_line(header)
        for t in qs[:EXPORT_LIMIT].iterator(chunk_size=2000):
            yield _csv_line(
                [
                    t.pk,
                    t.subject,
                    t.customer.name,
                    t.get_status_display(),
                    t.get_priority_display(),
                    t.get_channel_display(),
                    t.category.name if t.category else "",
                    t.assignee.get_full_name() if t.assignee else "",
                    t.team.name if t.team else "",
                    timezone.localtime(t.created_at).strftime("%Y-%m-%d %H:%M"),
                    timezone.localtime(t.first_response_at).strftime("%Y-%m-%d %H:%M")
                    if t.first_response_at
                    else "",
                    timezone.localtime(t.resolved_at).strftime("%Y-%m-%d %H:%M") if t.resolved_at else "",
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="tickets.csv"'
    return response


# --- one ticket ---------------------------------------------------------------------------------------


@role_required(*ALL_ROLES)
@require_http_methods(["GET", "POST"])
def ticket_create(request: HttpRequest) -> HttpResponse:
    users = assignable_users()
    can_assign = _can_assign(request.user)
    customer = None
    customer_id = request.GET.get("customer") or request.POST.get("customer")
    if customer_id:
        customer = customer_get_for_user(user=request.user, customer_id=customer_id)
    form = forms.TicketForm(request.POST or None, request.FILES or None, users=users, can_assign=can_assign)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            ticket = services.ticket_open(
                actor=request.user,
                customer=customer,
                subject=data["subject"],
                description=data["description"],
                channel=data["channel"],
                priority=data["priority"],
                category=data.get("category"),
                email=data["email"],
                phone=data["phone"],
                name=data["name"],
                assignee=data.get("assignee"),
                team=data.get("team"),
                attachments=data.get("attachments") or [],
            )
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Ticket #%(number)s opened.") % {"number": ticket.pk})
            return redirect("service:ticket", ticket.pk)
    return render(request, "service/ticket_form.html", {"form": form, "customer": customer})


def _ticket_context(request, ticket, **extra) -> dict:
    calendar = services.calendar_get()
    users = assignable_users()
    context = {
        "ticket": ticket,
        "thread": list(selectors.ticket_thread(ticket=ticket)),
        "attachments": [a for a in ticket.attachments.all() if a.message_id is None],
        "clocks": services.ticket_clocks(ticket, calendar=calendar),
        "reply_form": forms.MessageForm(prefix="reply"),
        "note_form": forms.MessageForm(prefix="note"),
        "status_form": forms.StatusForm(initial={"status": ticket.status}),
        "assign_form": forms.AssignForm(
            users=users if _can_assign(request.user) else users.filter(pk=request.user.pk),
            initial={"assignee": ticket.assignee_id},
        ),
        "update_form": forms.TicketUpdateForm(
            initial={"priority": ticket.priority, "category": ticket.category_id}
        ),
        "can_assign": _can_assign(request.user),
        "can_delete": user_has_role(request.user, MANAGERS),
        "statuses": Status,
    }
    context.update(extra)
    return context


@role_required(*ALL_ROLES)
@require_GET
def ticket_detail(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = selectors.ticket_get_for_user(user=request.user, ticket_id=pk)
    return render(request, "service/ticket_detail.html", _ticket_context(request, ticket))


@role_required(*ALL_ROLES)
@require_GET
def ticket_clocks(request: HttpRequest, pk: int) -> HttpResponse:
    """The SLA clocks, server-computed; the ticket page polls this fragment with htmx."""
    ticket = selectors.ticket_get_for_user(user=request.user, ticket_id=pk)
    clocks = services.ticket_clocks(ticket, calendar=services.calendar_get())
    return render(request, "service/partials/_clocks.html", {"ticket": ticket, "clocks": clocks})


def _message_view(request: HttpRequest, pk: int, *, kind: str) -> HttpResponse:
    ticket = selectors.ticket_get_for_user(user=request.user, ticket_id=pk)
    prefix = "reply" if kind == TicketMessage.Kind.REPLY else "note"
    form = forms.MessageForm(request.POST, request.FILES or None, prefix=prefix)
    if form.is_valid():
        service = services.ticket_reply if kind == TicketMessage.Kind.REPLY else services.ticket_note
        try:
            service(
                actor=request.user,
                ticket=ticket,
                body=form.cleaned_data["body"],
                attachments=form.cleaned_data.get("attachments") or [],
            )
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Reply sent.") if prefix == "reply" else _("Note added."))
            return redirect("service:ticket", ticket.pk)
    context = _ticket_context(request, ticket, **{f"{prefix}_form": form})
    return render(request, "service/ticket_detail.html", context, status=200)


@role_required(*ALL_ROLES)
@require_POST
def ticket_reply(request: HttpRequest, pk: int) -> HttpResponse:
    return _message_view(request, pk, kind=TicketMessage.Kind.REPLY)


@role_required(*ALL_ROLES)
@require_POST
def ticket_note(request: HttpRequest, pk: int) -> HttpResponse:
    return _message_view(request, pk, kind=TicketMessage.Kind.NOTE)


@role_required(*ALL_ROLES)
@require_POST
def ticket_status(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = selectors.ticket_get_for_user(user=request.user, ticket_id=pk)
    form = forms.StatusForm(request.POST)
    if form.is_valid():
        try:
            services.ticket_change_status(
                actor=request.user, ticket=ticket, status=form.cleaned_data["status"]
            )
        except SERVICE_ERRORS as error:
            show_service_error(request, error)
        else:
            messages.success(request, _("Status changed."))
    else:
        messages.error(request, _("Choose a status."))
    return redirect("service:ticket", ticket.pk)


@role_required(*ALL_ROLES)
@require_POST
def ticket_assign(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = selectors.ticket_get_for_user(user=request.user, ticket_id=pk)
    users = assignable_users() if _can_assign(request.user) else assignable_users().filter(pk=request.user.pk)
    form = forms.AssignForm(request.POST, users=users)
    if form.is_valid():
        try:
            services.tickets_assign(
                actor=request.user,
                tickets=[ticket],
                assignee=form.cleaned_data.get("assignee"),
                team=form.cleaned_data.get("team"),
            )
        except (PermissionDenied, *SERVICE_ERRORS) as error:
            show_service_error(request, error)
        else:
            messages.success(request, _("Assignment saved."))
    else:
        messages.error(request, _("Choose someone you may assign."))
    return redirect("service:ticket", ticket.pk)


@role_required(*ALL_ROLES)
@require_POST
def ticket_update(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = selectors.ticket_get_for_user(user=request.user, ticket_id=pk)
    form = forms.TicketUpdateForm(request.POST)
    if form.is_valid():
        try:
            services.ticket_update(
                actor=request.user,
                ticket=ticket,
                priority=form.cleaned_data["priority"],
                category=form.cleaned_data.get("category"),
                order=ticket.order,
            )
        except SERVICE_ERRORS as error:
            show_service_error(request, error)
        else:
            messages.success(request, _("Ticket updated; the SLA targets follow the new priority."))
    else:
        messages.error(request, _("Choose a priority."))
    return redirect("service:ticket", ticket.pk)


@role_required(*MANAGERS, visible=lambda user, pk: selectors.ticket_get_for_user(user=user, ticket_id=pk))
@require_POST
def ticket_delete(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = selectors.ticket_get_for_user(user=request.user, ticket_id=pk)
    services.ticket_delete(actor=request.user, ticket=ticket)
    messages.success(request, _("Ticket #%(number)s deleted.") % {"number": ticket.pk})
    return redirect("service:queue")


@role_required(*MANAGERS)
@require_GET
def ticket_bin(request: HttpRequest) -> HttpResponse:
    """Deleted tickets, restorable by managers and admins."""
    page = selectors.ticket_bin_page(
        qs=selectors.ticket_bin(user=request.user), cursor=request.GET.get("cursor", "")[:200] or None
    )
    return render(request, "service/ticket_bin.html", {"page": page})


@role_required(*MANAGERS)
@require_POST
def ticket_restore(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = selectors.ticket_get_for_user(user=request.user, ticket_id=pk, include_deleted=True)
    if ticket.deleted_at is None:
        raise Http404
    services.ticket_restore(actor=request.user, ticket=ticket)
    messages.success(request, _("Ticket #%(number)s restored.") % {"number": ticket.pk})
    return redirect("service:ticket", ticket.pk)


@role_required(*ALL_ROLES)
@require_GET
def attachment_download(request: HttpRequest, pk: int) -> HttpResponse:
    attachment = selectors.attachment_get_for_user(user=request.user, attachment_id=pk)
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404
    response = FileResponse(handle, as_attachment=True, filename=attachment.original_name)
    response["Content-Type"] = "application/octet-stream"  # never rendered inline
    return response


# --- figures ---------------------------------------------------------------------------------------------


@role_required(*ALL_ROLES)
@require_GET
def figures(request: HttpRequest) -> HttpResponse:
    days = 90 if request.GET.get("days") == "90" else 30
    return render(
        request, "service/figures.html", {"figures": selectors.service_figures(user=request.user, days=days)}
    )


# --- settings (admins) ---------------------------------------------------------------------------------


def _settings_context(**forms_given) -> dict:
    desk = services.settings_get()
    users = assignable_users()
    context = {
        "categories": selectors.category_list(),
        "teams": selectors.team_list(),
        "policies": selectors.sla_policy_list(),
        "holidays": selectors.holiday_list(),
        "category_form": forms.CategoryForm(prefix="category"),
        "team_form": forms.TeamForm(prefix="team", users=users),
        "policy_form": forms.SlaPolicyForm(prefix="policy"),
        "hours_form": forms.WorkingHoursForm(
            prefix="hours", initial=forms.WorkingHoursForm.initial_from(desk)
        ),
        "holiday_form": forms.HolidayForm(prefix="holiday"),
        "time_zone": services.tenant_time_zone(),
    }
    context.update(forms_given)
    return context


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def settings_page(request: HttpRequest) -> HttpResponse:
    """One page, one form per section; the posted section is named by `section`."""
    if request.method == "GET":
        return render(request, "service/settings.html", _settings_context())
    section = request.POST.get("section", "")
    users = assignable_users()
    handlers = {
        "category": (forms.CategoryForm(request.POST, prefix="category"), _save_category),
        "team": (forms.TeamForm(request.POST, prefix="team", users=users), _save_team),
        "policy": (forms.SlaPolicyForm(request.POST, prefix="policy"), _save_policy),
        "hours": (forms.WorkingHoursForm(request.POST, prefix="hours"), _save_hours),
        "holiday": (forms.HolidayForm(request.POST, prefix="holiday"), _save_holiday),
    }
    if section not in handlers:
        messages.error(request, _("Nothing was saved."))
        return render(request, "service/settings.html", _settings_context())
    form, save = handlers[section]
    if form.is_valid():
        try:
            save(request.user, form.cleaned_data)
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Saved."))
            return redirect(f"{reverse('service:settings')}#{section}")
    return render(request, "service/settings.html", _settings_context(**{f"{section}_form": form}))


def _save_category(actor, data):
    services.category_save(actor=actor, name=data["name"], position=data.get("position") or 0, is_active=True)


def _save_team(actor, data):
    services.team_save(actor=actor, name=data["name"], manager=data.get("manager"), members=data["members"])


def _save_policy(actor, data):
    services.sla_policy_save(
        actor=actor,
        priority=data["priority"],
        category=data.get("category"),
        first_response_minutes=data["first_response_minutes"],
        resolution_minutes=data["resolution_minutes"],
    )


def _save_hours(actor, data):
    services.working_hours_save(
        actor=actor,
        working_hours=data["working_hours"],
        holiday_country=data.get("holiday_country") or "",
        acknowledge_contact_form=data.get("acknowledge_contact_form", False),
    )


def _save_holiday(actor, data):
    services.holiday_add(
        actor=actor, day=data["day"], name=data["name"], is_working_day=data["is_working_day"]
    )


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def category_edit(request: HttpRequest, pk: int) -> HttpResponse:
    category = selectors.category_get(category_id=pk)
    initial = {"name": category.name, "position": category.position, "is_active": category.is_active}
    form = forms.CategoryForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.category_save(
                actor=request.user,
                category=category,
                name=form.cleaned_data["name"],
                position=form.cleaned_data.get("position") or 0,
                is_active=form.cleaned_data["is_active"],
            )
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Saved."))
            return redirect(f"{reverse('service:settings')}#category")
    return render(request, "service/settings_edit.html", {"form": form, "title": _("Edit category")})


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def team_edit(request: HttpRequest, pk: int) -> HttpResponse:
    team = selectors.team_get(team_id=pk)
    users = assignable_users()
    initial = {
        "name": team.name,
        "manager": team.manager_id,
        "members": [str(m.pk) for m in team.members.all()],
    }
    form = forms.TeamForm(request.POST or None, initial=initial, users=users)
    if request.method == "POST" and form.is_valid():
        try:
            services.team_save(
                actor=request.user,
                team=team,
                name=form.cleaned_data["name"],
                manager=form.cleaned_data.get("manager"),
                members=form.cleaned_data["members"],
            )
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Saved."))
            return redirect(f"{reverse('service:settings')}#team")
    return render(request, "service/settings_edit.html", {"form": form, "title": _("Edit team")})


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def policy_edit(request: HttpRequest, pk: int) -> HttpResponse:
    policy = selectors.sla_policy_get(policy_id=pk)
    initial = {
        "priority": policy.priority,
        "category": policy.category_id,
        "first_response_minutes": policy.first_response_minutes,
        "resolution_minutes": policy.resolution_minutes,
    }
    form = forms.SlaPolicyForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.sla_policy_save(
                actor=request.user,
                policy=policy,
                priority=form.cleaned_data["priority"],
                category=form.cleaned_data.get("category"),
                first_response_minutes=form.cleaned_data["first_response_minutes"],
                resolution_minutes=form.cleaned_data["resolution_minutes"],
            )
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Saved."))
            return redirect(f"{reverse('service:settings')}#policy")
    return render(request, "service/settings_edit.html", {"form": form, "title": _("Edit SLA policy")})


@role_required(*ADMINS)
@require_POST
def policy_delete(request: HttpRequest, pk: int) -> HttpResponse:
    policy: SlaPolicy = selectors.sla_policy_get(policy_id=pk)
    services.sla_policy_delete(actor=request.user, policy=policy)
    messages.success(request, _("Policy removed. Open tickets keep their targets."))
    return redirect(f"{reverse('service:settings')}#policy")


@role_required(*ADMINS)
@require_POST
def holiday_delete(request: HttpRequest, pk: int) -> HttpResponse:
    holiday = selectors.holiday_get(holiday_id=pk)
    services.holiday_remove(actor=request.user, holiday=holiday)
    messages.success(request, _("Removed."))
    return redirect(f"{reverse('service:settings')}#holiday")


# --- the public contact form ---------------------------------------------------------------------------

CONTACT_LIMIT_PER_ADDRESS = getattr(settings, "SERVICE_CONTACT_LIMIT_PER_ADDRESS", 3)
CONTACT_LIMIT_PER_IP = getattr(settings, "SERVICE_CONTACT_LIMIT_PER_IP", 10)
CONTACT_WINDOW_SECONDS = 60 * 60


def _over_limit(key: str, limit: int) -> bool:
    """Count one use of `key` in the current window; True once more than `limit` uses were counted.
    The cache's key function puts the tenant's schema in front of every key."""
    added = cache.add(key, 1, CONTACT_WINDOW_SECONDS)
    if added:
        return False
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, CONTACT_WINDOW_SECONDS)
        return False
    return count > limit


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


@require_http_methods(["GET", "POST"])
def contact(request: HttpRequest) -> HttpResponse:
    """The tenant's public contact form: no sign-in; opens a ticket and acknowledges it by e-mail."""
    form = forms.ContactForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if data.get("website"):
            # a bot filled the hidden field: answer as if it worked, write nothing
            return redirect("service:contact_thanks")
        email = data["email"].strip().lower()
        ip = request.META.get("REMOTE_ADDR", "")
        over_ip = _over_limit(f"service:contact:ip:{_digest(ip)}", CONTACT_LIMIT_PER_IP)
        over_address = _over_limit(f"service:contact:email:{_digest(email)}", CONTACT_LIMIT_PER_ADDRESS)
        if over_ip or over_address:
            form.add_error(None, _("Too many requests from you in the last hour. Please try again later."))
            return render(request, "service/contact.html", {"form": form}, status=429)
        try:
            services.ticket_open_from_contact_form(
                name=data["name"],
                email=email,
                phone=data.get("phone") or "",
                subject=data["subject"],
                message=data["message"],
                language=translation.get_language() or "en",
            )
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            return redirect("service:contact_thanks")
    return render(request, "service/contact.html", {"form": form})


@require_GET
def contact_thanks(request: HttpRequest) -> HttpResponse:
    return render(request, "service/contact_thanks.html")
