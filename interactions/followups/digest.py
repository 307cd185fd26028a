"""The follow-ups' sections of the daily digest (registered in `FollowupsConfig.ready()` through
`crm.notifications.digest.register_section`): each `provider(user, day)` runs in the tenant's schema
and the user's language, `day` being the user's local date, and returns a bounded list of items."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, time, timedelta

from django.db import connection
from django.urls import reverse
from django.utils import formats
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.accounts.permissions import MANAGERS, user_has_role

DIGEST_LIMIT = 50


def _zone(user):
    name = getattr(user, "time_zone", "") or getattr(connection.tenant, "time_zone", "") or "UTC"
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _start_of(day: date, zone) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def due_followups(user, day: date) -> list:
    """Overdue and today's open follow-ups assigned to the user, oldest first."""
    from crm.notifications.digest import DigestItem

    from .selectors import open_followups_of

    zone = _zone(user)
    end = _start_of(day, zone) + timedelta(days=1)
    start = _start_of(day, zone)
    rows = (
        open_followups_of(viewer=user, rep=user)
        .filter(due_at__lt=end)
        .order_by("due_at", "id")[:DIGEST_LIMIT]
    )
    items = []
    for followup in rows:
        local = followup.due_at.astimezone(zone)
        when = (
            formats.date_format(local, "H:i")
            if followup.due_at >= start
            else formats.date_format(local, "Y-m-d")
        )
        label = _("overdue since %(when)s") % {"when": when} if followup.due_at < start else when
        items.append(
            DigestItem(
                text=f"{followup.title} · {followup.customer.name} · {label}",
                url=reverse("customers:detail", args=[followup.customer_id]),
            )
        )
    return items


def new_churn_alerts(user, day: date) -> list:
    """Churn alerts raised since the start of the previous day that the user sees and are still open."""
    from crm.notifications.digest import DigestItem
    from segmentation.selectors import alert_list

    since = _start_of(day, _zone(user)) - timedelta(days=1)
    alerts = alert_list(user=user).filter(created_at__gte=since)
    if not user_has_role(user, MANAGERS):
        alerts = alerts.filter(owner=user)
    return [
        DigestItem(
            text=f"{alert.customer.name} · {alert.get_reason_display()}",
            url=reverse("customers:detail", args=[alert.customer_id]),
        )
        for alert in alerts[:DIGEST_LIMIT]
    ]


def birthdays(user, day: date) -> list:
    """Customers of the user (a manager: of the team) whose birthday is in the 7 days from `day`."""
    from crm.notifications.digest import DigestItem

    from .selectors import birthdays_this_week

    rep = None if user_has_role(user, MANAGERS) else user
    return [
        DigestItem(
            text=f"{row['customer'].name} · {formats.date_format(row['day'], 'm-d')}",
            url=reverse("customers:detail", args=[row["customer"].pk]),
        )
        for row in birthdays_this_week(viewer=user, rep=rep, today=day, limit=DIGEST_LIMIT)
    ]


def register() -> None:
    from crm.notifications.digest import register_section

    register_section("followups.due", gettext_lazy("Overdue and today's follow-ups"), due_followups, order=10)
    register_section("followups.churn_alerts", gettext_lazy("New churn alerts"), new_churn_alerts, order=20)
    register_section("followups.birthdays", gettext_lazy("Birthdays this week"), birthdays, order=30)
