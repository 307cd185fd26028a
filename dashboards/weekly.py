"""The weekly e-mail to managers: last week's overview figures and their change on the week before.

Once Monday 08:00 has passed in the tenant's time zone, every active manager and admin gets one
notification for the week that just ended (key `reports-weekly:<monday>`, so a rerun or a late beat
sends nothing twice), e-mailed through the notifications pipeline (crash-safe delivery, stable
Message-ID). A user who switches "Weekly report" e-mail off on their notification preferences still
finds it in the bell. Figures are computed once (managers see every customer) and written in each
user's language.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db import connection
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.accounts.models import User
from crm.notifications.emails import user_language
from crm.notifications.services import NotificationSpec, notify_many
from crm.templatetags.crm_format import money, number

from .figures import FigureValue, overview_values
from .periods import Period
from .scope import Filters, Scope

KIND = "reports.weekly"
KIND_LABEL = gettext_lazy("Weekly report")
SEND_HOUR = 8


def last_week(today: date) -> Period:
    monday = today - timedelta(days=today.weekday())
    return Period(monday - timedelta(days=7), monday - timedelta(days=1))


def is_due(now_local: datetime) -> bool:
    return not (now_local.weekday() == 0 and now_local.hour < SEND_HOUR)


def _shown(value: FigureValue, amount) -> str:
    if amount is None:
        return "–"
    if value.definition.unit == "money":
        return money(amount)
    if value.definition.unit == "percent":
        return f"{number(amount, 1)}%"
    if value.definition.unit == "score":
        return number(amount, 1)
    return number(amount)


def _body(values: list[FigureValue]) -> str:
    lines = []
    for value in values:
        if not value.definition.per_period:
            continue
        change = value.change
        trend = "" if change is None else f" ({'+' if change >= 0 else ''}{number(change, 1)}%)"
        lines.append(
            _("%(label)s: %(value)s%(trend)s")
            % {"label": value.definition.label, "value": _shown(value, value.value), "trend": trend}
        )
    return "\n".join(lines)


def weekly_summary_send(now: datetime | None = None) -> int:
    """Notify this tenant's managers and admins about last week, once; returns how many were new."""
    now_local = timezone.localtime(now or timezone.now(), timezone.get_current_timezone())
    if not is_due(now_local):
        return 0
    recipients = list(User.objects.filter(is_active=True, role__in=("manager", "admin")).order_by("pk"))
    if not recipients:
        return 0
    week = last_week(now_local.date())
    values = overview_values(Scope(user=recipients[0], filters=Filters()), week, week.previous())
    tenant = getattr(connection, "tenant", None)
    query = urlencode({"range": "custom", "from": week.first.isoformat(), "to": week.last.isoformat()})
    url = f"{reverse('dashboards:overview')}?{query}"
    items = []
    for user in recipients:
        with translation.override(user_language(user, tenant)):
            title = _("Weekly report: %(first)s to %(last)s") % {
                "first": week.first.isoformat(),
                "last": week.last.isoformat(),
            }
            items.append(
                NotificationSpec(
                    recipient=user,
                    key=f"reports-weekly:{week.first.isoformat()}",
                    title=title,
                    body=_body(values),
                    url=url,
                )
            )
    return len(notify_many(kind=KIND, items=items))
