"""The notifications page, marking read, and the user's notification preferences.

Role decisions: every signed-in role uses these pages, and each user only ever sees and changes their
own notifications: another user's notification answers 404, exactly like a missing one (a manager or
admin included).
"""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from crm.accounts.permissions import role_required
from crm.errors import SERVICE_ERRORS, show_service_error

from . import selectors, services
from .forms import PreferencesForm


@role_required()
@require_GET
def notification_list(request):
    unread_only = request.GET.get("show") == "unread"
    page = selectors.notification_page(
        user=request.user, unread_only=unread_only, cursor=request.GET.get("after", "")[:32]
    )
    return render(
        request,
        "notifications/notification_list.html",
        {
            "page": page,
            "unread_only": unread_only,
            "first_page": not request.GET.get("after"),
            "unread_count": selectors.unread_count(user=request.user),
        },
    )


@role_required()
@require_GET
def notification_open(request, notification_id: int):
    """Follow the notification's link (marking it read); without a link, back to the list."""
    notification = selectors.notification_get_for_user(user=request.user, notification_id=notification_id)
    services.notification_mark_read(user=request.user, notification=notification)
    url = notification.url
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}, require_https=False):
        return redirect(url)
    return redirect("notifications:list")


@role_required()
@require_POST
def notification_read(request, notification_id: int):
    notification = selectors.notification_get_for_user(user=request.user, notification_id=notification_id)
    services.notification_mark_read(user=request.user, notification=notification)
    if request.htmx:
        response = render(
            request,
            "notifications/partials/_notification_row.html",
            {"notification": notification, "oob_bell": True},
        )
        response["HX-Trigger"] = "notifications-changed"
        return response
    return redirect("notifications:list")


@role_required()
@require_POST
def notification_read_all(request):
    count = services.notifications_mark_all_read(user=request.user)
    if count:
        messages.success(request, _("All notifications are marked read."))
    return redirect("notifications:list")


@role_required()
def preferences(request):
    # every box cleared is an empty POST, and still a submitted form
    data = request.POST if request.method == "POST" else None
    form = PreferencesForm(data, rows=selectors.preference_rows(user=request.user))
    if request.method == "POST" and form.is_valid():
        try:
            services.preferences_update(actor=request.user, user=request.user, choices=form.choices())
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Your notification preferences have been saved."))
            return redirect("notifications:preferences")
    return render(request, "notifications/preferences.html", {"form": form})
