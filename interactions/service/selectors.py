"""Reads of the service desk, always within the user's scope.

Who sees a ticket (`ticket_scope`): managers and admins every ticket; sales staff the tickets assigned
to them, the tickets of the customers they own or that are shared with them, and the tickets of the
teams they belong to (so a team works its unassigned queue). Another ticket answers like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Aggregate, Count, F, FloatField, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from crm.accounts.models import User
from crm.accounts.permissions import MANAGERS, user_has_role
from customers.selectors import decode_cursor, encode_cursor

from .models import (
    OPEN_STATUSES,
    RUNNING_STATUSES,
    Channel,
    Holiday,
    Priority,
    SlaEvent,
    SlaPolicy,
    Status,
    Team,
    Ticket,
    TicketAttachment,
    TicketCategory,
    TicketMessage,
)


class Percentile(Aggregate):
    """PostgreSQL's percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, fraction: float, expression, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


def ticket_scope(qs: QuerySet[Ticket], user: User) -> QuerySet[Ticket]:
    if not user_has_role(user, ("admin", "manager", "sales")):
        return qs.none()
    if user_has_role(user, MANAGERS):
        return qs
    return qs.filter(
        Q(assignee=user)
        | Q(customer__owner=user)
        | Q(customer__in=user.shared_customers.values("pk"))
        | Q(team__in=user.service_teams.values("pk"))
    )


def ticket_get_for_user(*, user: User, ticket_id: Any, include_deleted: bool = False) -> Ticket:
    """One ticket the user may see; Http404 alike for missing, forbidden and (by default) deleted."""
    qs = Ticket.objects.select_related("customer", "assignee", "team", "team__manager", "category", "order")
    if not include_deleted:
        qs = qs.filter(deleted_at__isnull=True)
    try:
        return ticket_scope(qs, user).get(pk=int(ticket_id))
    except (Ticket.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def ticket_thread(*, ticket: Ticket) -> QuerySet[TicketMessage]:
    return (
        ticket.messages.select_related("author").prefetch_related("attachments").order_by("created_at", "id")
    )


def customer_open_tickets(*, customer, user: User, limit: int = 5) -> list[Ticket]:
    qs = Ticket.objects.filter(customer=customer, deleted_at__isnull=True, status__in=OPEN_STATUSES)
    return list(ticket_scope(qs, user).select_related("assignee").order_by("-created_at", "-id")[:limit])


def category_list(*, active_only: bool = False) -> QuerySet[TicketCategory]:
    qs = TicketCategory.objects.all()
    return qs.filter(is_active=True) if active_only else qs


def category_get(*, category_id: Any) -> TicketCategory:
    try:
        return TicketCategory.objects.get(pk=int(category_id))
    except (TicketCategory.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def team_list() -> QuerySet[Team]:
    return Team.objects.select_related("manager").prefetch_related("members")


def team_get(*, team_id: Any) -> Team:
    try:
        return Team.objects.get(pk=int(team_id))
    except (Team.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def sla_policy_list() -> QuerySet[SlaPolicy]:
    return SlaPolicy.objects.select_related("category")


def sla_policy_get(*, policy_id: Any) -> SlaPolicy:
    try:
        return SlaPolicy.objects.get(pk=int(policy_id))
    except (SlaPolicy.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def holiday_list() -> QuerySet[Holiday]:
    return Holiday.objects.order_by("day")


def holiday_get(*, holiday_id: Any) -> Holiday:
    try:
        return Holiday.objects.get(pk=int(holiday_id))
    except (Holiday.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def sla_events_for(*, user: User, limit: int = 10) -> list[SlaEvent]:
    """The warnings and escalations raised to this user, newest first."""
    return list(
        SlaEvent.objects.filter(recipient=user, ticket__deleted_at__isnull=True)
        .select_related("ticket")
        .order_by("-created_at", "-id")[:limit]
    )


# --- queues -----------------------------------------------------------------------------------------

QUEUES = ("mine", "team", "unassigned", "breaching", "all")
PAGE_SIZE = 50


@dataclass
class QueuePage:
    tickets: list[Ticket]
    next_cursor: str | None
    has_next: bool


def ticket_queue(*, user: User, queue: str, filters: dict | None = None, now=None) -> QuerySet[Ticket]:
    """The tickets of one queue the user may see, filtered, newest first (keyset order)."""
    filters = filters or {}
    now = now or timezone.now()
    qs = ticket_scope(Ticket.objects.filter(deleted_at__isnull=True), user)
    if queue == "mine":
        qs = qs.filter(assignee=user)
    elif queue == "team":
        qs = qs.filter(team__in=user.service_teams.values("pk"))
    elif queue == "unassigned":
        qs = qs.filter(assignee__isnull=True)
    elif queue == "breaching":
        # running tickets past 80% (or past due) of a target not yet met
        qs = qs.filter(status__in=RUNNING_STATUSES).filter(
            Q(first_response_at__isnull=True, first_response_warn_at__lte=now)
            | Q(resolution_warn_at__lte=now)
        )
    status = filters.get("status")
    if status == "open_all" or (not status and queue != "all"):
        qs = qs.filter(status__in=OPEN_STATUSES)
    elif status in Status.values:
        qs = qs.filter(status=status)
    if filters.get("priority") in Priority.values:
        qs = qs.filter(priority=filters["priority"])
    if filters.get("category"):
        qs = qs.filter(category_id=filters["category"])
    if filters.get("channel") in Channel.values:
        qs = qs.filter(channel=filters["channel"])
    if filters.get("assignee"):
        qs = qs.filter(assignee_id=filters["assignee"])
    query = (filters.get("q") or "").strip()
    if query:
        number = query.lstrip("#")
        condition = Q(subject__icontains=query) | Q(requester_email__iexact=query.lower())
        if number.isdigit() and len(number) < 18:
            condition |= Q(pk=int(number))
        qs = qs.filter(condition)
    return qs.select_related("customer", "assignee", "team", "category").order_by("-created_at", "-id")


def ticket_page(*, qs: QuerySet[Ticket], cursor: str | None, size: int = PAGE_SIZE) -> QueuePage:
    """One keyset page: the rows after `cursor` (an encoded (created_at, id) pair)."""
    position = decode_cursor(cursor)
    if position is not None and isinstance(position[0], datetime):
        created_at, pk = position
        qs = qs.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=pk))
    rows = list(qs[: size + 1])
    has_next = len(rows) > size
    rows = rows[:size]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].pk) if has_next else None
    return QueuePage(rows, next_cursor, has_next)


def queue_counts(*, user: User) -> dict[str, int]:
    """How many open tickets each queue holds (capped by the database's counting, one query each)."""
    return {
        queue: ticket_queue(user=user, queue=queue).count()
        for queue in ("mine", "team", "unassigned", "breaching")
    }


def clock_state(ticket: Ticket, now=None) -> str:
    """A cheap state for a queue row: "breached", "warning", "paused", "ok", "met" or "none"."""
    now = now or timezone.now()
    if ticket.status == Status.WAITING:
        return "paused"
    if ticket.status not in RUNNING_STATUSES:
        return "met" if ticket.resolved_at else "none"
    pairs = []
    if ticket.first_response_at is None and ticket.first_response_due_at:
        pairs.append((ticket.first_response_warn_at, ticket.first_response_due_at))
    if ticket.resolution_due_at:
        pairs.append((ticket.resolution_warn_at, ticket.resolution_due_at))
    if not pairs:
        return "none"
    if any(now >= due for _warn, due in pairs):
        return "breached"
    if any(warn and now >= warn for warn, _due in pairs):
        return "warning"
    return "ok"


def next_due(ticket: Ticket):
    dues = []
    if ticket.first_response_at is None and ticket.first_response_due_at:
        dues.append(ticket.first_response_due_at)
    if ticket.resolved_at is None and ticket.resolution_due_at:
        dues.append(ticket.resolution_due_at)
    return min(dues) if dues else None


def attachment_get_for_user(*, user: User, attachment_id: Any) -> TicketAttachment:
    try:
        attachment = TicketAttachment.objects.select_related("ticket").get(pk=int(attachment_id))
    except (TicketAttachment.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404
    ticket_get_for_user(user=user, ticket_id=attachment.ticket_id)
    return attachment


# --- service figures ----------------------------------------------------------------------------------

AGE_BUCKETS = ("under_1d", "1_3d", "3_7d", "over_7d")


def service_figures(*, user: User, days: int = 30, now=None) -> dict:
    """First-response and resolution times (median, p90, business hours), SLA compliance, backlog by
    age and tickets per agent, over the tickets the user may see opened in the last `days` days. For
    the service page and the dashboards (scoped like every selector)."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    scoped = ticket_scope(Ticket.objects.filter(deleted_at__isnull=True), user)
    recent = scoped.filter(created_at__gte=since)
    times = recent.aggregate(
        opened=Count("pk"),
        fr_median=Percentile(0.5, "first_response_seconds"),
        fr_p90=Percentile(0.9, "first_response_seconds"),
        res_median=Percentile(0.5, "resolution_seconds"),
        res_p90=Percentile(0.9, "resolution_seconds"),
        fr_with_target=Count(
            "pk", filter=Q(first_response_at__isnull=False, first_response_due_at__isnull=False)
        ),
        fr_met=Count("pk", filter=Q(first_response_at__lte=F("first_response_due_at"))),
        res_with_target=Count("pk", filter=Q(resolved_at__isnull=False, resolution_due_at__isnull=False)),
        res_met=Count("pk", filter=Q(resolved_at__lte=F("resolution_due_at"))),
        resolved=Count("pk", filter=Q(resolved_at__isnull=False)),
    )

    def hours(seconds):
        return None if seconds is None else round(seconds / 3600, 1)

    def share(met, total):
        return None if not total else round(100 * met / total, 1)

    open_qs = scoped.filter(status__in=OPEN_STATUSES)
    day = timedelta(days=1)
    backlog_row = open_qs.aggregate(
        under_1d=Count("pk", filter=Q(created_at__gt=now - day)),
        **{"1_3d": Count("pk", filter=Q(created_at__gt=now - 3 * day, created_at__lte=now - day))},
        **{"3_7d": Count("pk", filter=Q(created_at__gt=now - 7 * day, created_at__lte=now - 3 * day))},
        over_7d=Count("pk", filter=Q(created_at__lte=now - 7 * day)),
    )
    per_agent = list(
        scoped.filter(Q(status__in=OPEN_STATUSES) | Q(resolved_at__gte=since))
        .values("assignee_id", "assignee__full_name", "assignee__email")
        .annotate(
            open=Count("pk", filter=Q(status__in=OPEN_STATUSES)),
            resolved=Count("pk", filter=Q(resolved_at__gte=since)),
            res_median=Percentile(0.5, "resolution_seconds", filter=Q(resolved_at__gte=since)),
        )
        .order_by("-open", "assignee__full_name")[:50]
    )
    from interactions.surveys.selectors import csat_by_agent

    csat = csat_by_agent(user=user, since=since)
    agents = [
        {
            "csat": csat.get(row["assignee_id"], {}).get("csat"),
            "csat_answers": csat.get(row["assignee_id"], {}).get("n", 0),
            "name": row["assignee__full_name"] or row["assignee__email"] or "",
            "unassigned": row["assignee_id"] is None,
            "open": row["open"],
            "resolved": row["resolved"],
            "resolution_median_hours": hours(row["res_median"]),
        }
        for row in per_agent
    ]
    return {
        "days": days,
        "opened": times["opened"],
        "resolved": times["resolved"],
        "first_response_median_hours": hours(times["fr_median"]),
        "first_response_p90_hours": hours(times["fr_p90"]),
        "resolution_median_hours": hours(times["res_median"]),
        "resolution_p90_hours": hours(times["res_p90"]),
        "first_response_compliance": share(times["fr_met"], times["fr_with_target"]),
        "resolution_compliance": share(times["res_met"], times["res_with_target"]),
        "backlog": [(key, backlog_row[key]) for key in AGE_BUCKETS],
        "backlog_total": sum(backlog_row.values()),
        "agents": agents,
    }


def tickets_visible(*, user: User) -> QuerySet[Ticket]:
    """Tickets the user may see, not deleted (the base of the dashboards' service figures)."""
    return ticket_scope(Ticket.objects.filter(deleted_at__isnull=True), user)


def ticket_for_survey(*, ticket_id: int) -> Ticket | None:
    """One live ticket with its customer, for the surveys app working in the background (a trigger or
    an answer on the public page): no user scope, the caller decides what the customer is sent."""
    return Ticket.objects.select_related("customer").filter(pk=ticket_id, deleted_at__isnull=True).first()


def ticket_bin(*, user: User) -> QuerySet[Ticket]:
    """Deleted tickets, newest deletion first (the recycle bin; the view admits managers and admins)."""
    return (
        ticket_scope(Ticket.objects.filter(deleted_at__isnull=False), user)
        .select_related("customer", "assignee", "deleted_by", "category")
        .order_by("-deleted_at", "-id")
    )


def ticket_bin_page(*, qs: QuerySet[Ticket], cursor: str | None, size: int = PAGE_SIZE) -> QueuePage:
    """One keyset page of the bin: the rows after `cursor` (an encoded (deleted_at, id) pair)."""
    position = decode_cursor(cursor)
    if position is not None and isinstance(position[0], datetime):
        deleted_at, pk = position
        qs = qs.filter(Q(deleted_at__lt=deleted_at) | Q(deleted_at=deleted_at, pk__lt=pk))
    rows = list(qs[: size + 1])
    has_next = len(rows) > size
    rows = rows[:size]
    next_cursor = encode_cursor(rows[-1].deleted_at, rows[-1].pk) if has_next else None
    return QueuePage(rows, next_cursor, has_next)
