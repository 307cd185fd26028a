"""Reads of follow-ups, always within the viewer's scope.

Sales staff see the follow-ups assigned to them and those on customers they can see; managers and
admins see every follow-up. Follow-ups of customers in the recycle bin are hidden. Every list here is
bounded (a LIMIT, plus one row to know whether there is more), so My day costs the same at 10 or
100,000 follow-ups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.db.models.functions import ExtractDay, ExtractMonth
from django.http import Http404
from django.utils import timezone

from crm.accounts.models import User
from crm.accounts.permissions import ALL_ROLES, MANAGERS, user_has_role, visible_to
from crm.audit.models import AuditEvent
from customers.models import Customer
from customers.selectors import customer_list

from .models import FollowUp, FollowUpRule

SECTION_LIMIT = 25  # per section: a page of 75 rows at most (rendering is most of My day's time)
UPCOMING_DAYS = 7
SIDE_LIMIT = 10
RECENTLY_ASSIGNED_DAYS = 14


def followup_visible(*, user: User) -> QuerySet[FollowUp]:
    """Every follow-up the user may see (customers in the bin left out)."""
    qs = FollowUp.objects.filter(customer__deleted_at__isnull=True)
    if not user_has_role(user, ALL_ROLES):
        return qs.none()
    if user_has_role(user, MANAGERS):
        return qs
    # The follow-ups of the customers the rep sees (visible_to: the customer's owner by a join, the
    # few shared ones by a small subquery) and those assigned to them. Not `customer_id IN (every
    # customer the rep sees)`: PostgreSQL built that whole list (60,000 ids for a rep owning 30% of
    # 200,000 customers, 50 ms) for every follow-up query, a customer's panel included.
    return visible_to(qs, user) | qs.filter(assignee=user)


def followup_get_for_user(*, user: User, followup_id: Any) -> FollowUp:
    """One follow-up the user may see; Http404 alike for missing and forbidden."""
    try:
        return followup_visible(user=user).select_related("customer", "assignee").get(pk=int(followup_id))
    except (FollowUp.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def customer_open_followups(*, user: User, customer: Customer, limit: int = SIDE_LIMIT) -> list[FollowUp]:
    return list(
        followup_visible(user=user)
        .filter(customer=customer, status=FollowUp.Status.OPEN)
        .select_related("assignee")
        .order_by("due_at", "id")[:limit]
    )


def customer_followups_for_timeline(*, customer: Customer, before=None, limit: int = 20) -> list[FollowUp]:
    """The customer's follow-ups created (or closed) before `before`, newest first: the timeline shows
    one entry when one was created and one when it was done."""
    qs = FollowUp.objects.filter(customer=customer)
    if before is not None:
        qs = qs.filter(Q(created_at__lt=before) | Q(completed_at__lt=before))
    return list(qs.select_related("assignee", "completed_by").order_by("-created_at", "-id")[: limit * 2])


# --- My day ------------------------------------------------------------------------------------------


@dataclass
class Section:
    rows: list
    has_more: bool = False


@dataclass
class MyDay:
    rep: User | None  # None: the whole team (managers)
    today: date
    overdue: Section
    due_today: Section
    upcoming: Section
    slipping: Section
    birthdays: list[dict] = field(default_factory=list)
    recently_assigned: list = field(default_factory=list)


def _bounded(qs: QuerySet, limit: int) -> Section:
    rows = list(qs[: limit + 1])
    return Section(rows=rows[:limit], has_more=len(rows) > limit)


def day_bounds(today: date) -> tuple[datetime, datetime]:
    """Start and end of `today` in the active time zone (the user's, else the tenant's)."""
    start = timezone.make_aware(datetime.combine(today, time.min))
    return start, start + timedelta(days=1)


def open_followups_of(*, viewer: User, rep: User | None) -> QuerySet[FollowUp]:
    """The open follow-ups on the viewer's My day: assigned to `rep` (the viewer, or the rep a manager
    picked), or the whole team's when `rep` is None (managers)."""
    qs = followup_visible(user=viewer).filter(status=FollowUp.Status.OPEN)
    if rep is not None:
        qs = qs.filter(assignee=rep)
    # Only what a row shows: a customer row carries its search text and custom fields, and My day
    # loads up to 150 of them.
    return qs.select_related("customer", "assignee").only(*ROW_FIELDS)


ROW_FIELDS = (
    "id",
    "customer_id",
    "assignee_id",
    "due_at",
    "title",
    "notes",
    "status",
    "snooze_count",
    "source",
    "completed_at",
    "customer__id",
    "customer__name",
    "assignee__id",
    "assignee__full_name",
    "assignee__email",
)


def team_members() -> QuerySet[User]:
    """Whom a manager can pick on My day: every active user with a role."""
    return User.objects.filter(is_active=True, role__in=ALL_ROLES).order_by("full_name", "email")


def _week_days(today: date) -> list[date]:
    return [today + timedelta(days=n) for n in range(7)]


def birthday_key():
    """month * 100 + day of a customer's birthday (1204 for 4 December): the expression of the index
    `customer_birthday_key_idx` (followups migration 0002), so "birthdays this week" is an index scan
    over about 7/365 of the customers rather than a scan of them all."""
    return ExtractMonth("birthday") * 100 + ExtractDay("birthday")


def birthdays_this_week(
    *, viewer: User, rep: User | None, today: date, limit: int = SIDE_LIMIT
) -> list[dict]:
    """Customers (of `rep`, or the whole team) whose birthday falls in the 7 days from today, soonest
    first, as {"customer", "day"}."""
    days = _week_days(today)
    keys = [day.month * 100 + day.day for day in days]
    qs = customer_list(user=viewer).filter(birthday__isnull=False)
    if rep is not None:
        qs = qs.filter(owner=rep)
    # Soonest first in SQL (the week may run over New Year: 1230, 1231, 101...), so only `limit` rows
    # come back; ordering by the primary key made PostgreSQL walk the whole table for a manager.
    soon = Case(
        *[When(bday_key=key, then=Value(n)) for n, key in enumerate(keys)], output_field=IntegerField()
    )
    qs = (
        qs.annotate(bday_key=birthday_key())
        .filter(bday_key__in=keys)
        .annotate(soon=soon)
        .only("pk", "name", "birthday", "owner_id")
        .order_by("soon", "name", "pk")
    )
    return [{"customer": c, "day": days[c.soon]} for c in qs[:limit]]


def recently_assigned_customers(*, viewer: User, rep: User | None, limit: int = SIDE_LIMIT) -> list[Customer]:
    """Customers given to `rep` (created for or assigned to them) in the last two weeks, newest first,
    read from the customers' audit trail; only those the rep still owns."""
    if rep is None:
        return []
    since = timezone.now() - timedelta(days=RECENTLY_ASSIGNED_DAYS)
    events = (
        AuditEvent.objects.filter(
            target_type=Customer._meta.label_lower,
            created_at__gte=since,
            action__in=("customer.created", "customer.updated"),
            changes__owner__new=rep.get_full_name(),
        )
        .order_by("-created_at", "-id")
        .values_list("target_id", flat=True)[:200]
    )
    ids: list[int] = []
    for target_id in events:
        if target_id.isdigit() and int(target_id) not in ids:
            ids.append(int(target_id))
    if not ids:
        return []
    customers = {c.pk: c for c in customer_list(user=viewer).filter(pk__in=ids[:100], owner=rep)}
    return [customers[pk] for pk in ids if pk in customers][:limit]


def my_day(*, viewer: User, rep: User | None, today: date | None = None) -> MyDay:
    from segmentation.selectors import alert_list

    today = today or timezone.localdate()
    start, end = day_bounds(today)
    mine = open_followups_of(viewer=viewer, rep=rep)
    alerts = alert_list(user=viewer)
    if rep is not None:
        alerts = alerts.filter(owner=rep)
    return MyDay(
        rep=rep,
        today=today,
        overdue=_bounded(mine.filter(due_at__lt=start).order_by("due_at", "id"), SECTION_LIMIT),
        due_today=_bounded(
            mine.filter(due_at__gte=start, due_at__lt=end).order_by("due_at", "id"), SECTION_LIMIT
        ),
        upcoming=_bounded(
            mine.filter(due_at__gte=end, due_at__lt=end + timedelta(days=UPCOMING_DAYS)).order_by(
                "due_at", "id"
            ),
            SECTION_LIMIT,
        ),
        slipping=_bounded(alerts, SIDE_LIMIT),
        birthdays=birthdays_this_week(viewer=viewer, rep=rep, today=today),
        recently_assigned=recently_assigned_customers(viewer=viewer, rep=rep),
    )


# --- reminders ---------------------------------------------------------------------------------------


def due_unreminded(*, now: datetime) -> QuerySet[FollowUp]:
    """Open follow-ups that fell due and whose reminder was not handed over yet (oldest first)."""
    return FollowUp.objects.filter(
        status=FollowUp.Status.OPEN,
        reminded_at__isnull=True,
        due_at__lte=now,
        customer__deleted_at__isnull=True,
    ).order_by("due_at", "id")


# --- rules -------------------------------------------------------------------------------------------


def rule_list() -> QuerySet[FollowUpRule]:
    return FollowUpRule.objects.select_related("segment", "fallback_assignee").order_by("name", "id")


def rule_get(*, rule_id: Any) -> FollowUpRule:
    try:
        return rule_list().get(pk=int(rule_id))
    except (FollowUpRule.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def active_rules(*, triggers: tuple[str, ...]) -> QuerySet[FollowUpRule]:
    return FollowUpRule.objects.filter(is_active=True, trigger__in=triggers).order_by("pk")


def any_active_rule(*, triggers: tuple[str, ...]) -> bool:
    return active_rules(triggers=triggers).exists()
