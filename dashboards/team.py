"""The team report: one row per rep over a period, from each app's own selectors.

    interactions      interactions the rep logged in the period, by channel
    follow-ups        completed in the period (and how many by their due time); open and overdue now
    revenue, CLV      purchases in the period of the customers the rep owns; predicted CLV of their book
    tickets           tickets resolved by the rep in the period; open tickets assigned to them now
    churn alerts      alerts on their customers raised in the period, and alerts they acted on in it

A sales user gets their own row only; managers and admins get every active user who owns customers
or did any of the above (or the rep picked in the owner filter).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from customers.selectors import assignable_users
from interactions.followups.selectors import followup_visible
from interactions.selectors import interaction_list
from interactions.service.selectors import tickets_visible
from segmentation.selectors import alert_list

from .periods import Period
from .scope import Scope

OPEN_TICKET_STATUSES = ("new", "open", "waiting")


@dataclass
class RepRow:
    user_id: int
    name: str
    interactions: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    followups_done: int = 0
    followups_on_time: int = 0
    followups_overdue: int = 0
    revenue: Decimal = Decimal("0")
    customers: int = 0
    clv: Decimal | None = None
    tickets_resolved: int = 0
    tickets_open: int = 0
    alerts_raised: int = 0
    alerts_acted: int = 0

    @property
    def on_time_share(self) -> float | None:
        return round(self.followups_on_time / self.followups_done * 100, 1) if self.followups_done else None

    @property
    def active(self) -> bool:
        return bool(
            self.interactions
            or self.followups_done
            or self.followups_overdue
            or self.revenue
            or self.customers
            or self.tickets_resolved
            or self.tickets_open
            or self.alerts_raised
            or self.alerts_acted
        )


def team_rows(scope: Scope, period: Period) -> list[RepRow]:
    """Seven grouped queries whatever the team's size."""
    viewer = scope.user
    start, end = period.bounds(scope.zone)
    now = timezone.now()
    if viewer.sees_all_customers:
        people = assignable_users()
        if scope.filters.owner:
            people = people.filter(pk=scope.filters.owner)
        reps = {u.pk: RepRow(u.pk, u.full_name or u.email) for u in people}
    else:
        reps = {viewer.pk: RepRow(viewer.pk, viewer.full_name or viewer.email)}
    ids = list(reps)

    channels: dict[int, dict[str, int]] = defaultdict(dict)
    for row in (
        interaction_list(user=viewer, filters={"date_from": period.first, "date_to": period.last})
        .filter(author_id__in=ids)
        .order_by()
        .values("author_id", "channel")
        .annotate(n=Count("pk"))
    ):
        channels[row["author_id"]][row["channel"]] = row["n"]
    for pk, by_channel in channels.items():
        reps[pk].by_channel = by_channel
        reps[pk].interactions = sum(by_channel.values())

    followups = followup_visible(user=viewer).filter(assignee_id__in=ids).order_by()
    for row in (
        followups.filter(status="done", completed_at__gte=start, completed_at__lt=end)
        .values("assignee_id")
        .annotate(done=Count("pk"), on_time=Count("pk", filter=Q(completed_at__lte=F("due_at"))))
    ):
        reps[row["assignee_id"]].followups_done = row["done"]
        reps[row["assignee_id"]].followups_on_time = row["on_time"]
    for row in followups.filter(status="open", due_at__lt=now).values("assignee_id").annotate(n=Count("pk")):
        reps[row["assignee_id"]].followups_overdue = row["n"]

    for row in (
        scope.orders_between(start, end)
        .filter(customer__owner_id__in=ids)
        .order_by()
        .values("customer__owner_id")
        .annotate(total=Sum("total"), refunded=Sum("refunded_total"))
    ):
        reps[row["customer__owner_id"]].revenue = (row["total"] or 0) - (row["refunded"] or 0)
    for row in (
        scope.customers()
        .filter(owner_id__in=ids)
        .order_by()
        .values("owner_id")
        .annotate(n=Count("pk"), clv=Sum("score__predicted_clv"))
    ):
        reps[row["owner_id"]].customers = row["n"]
        reps[row["owner_id"]].clv = row["clv"]

    tickets = tickets_visible(user=viewer).filter(assignee_id__in=ids).order_by()
    for row in tickets.values("assignee_id").annotate(
        resolved=Count("pk", filter=Q(resolved_at__gte=start, resolved_at__lt=end)),
        open=Count("pk", filter=Q(status__in=OPEN_TICKET_STATUSES)),
    ):
        reps[row["assignee_id"]].tickets_resolved = row["resolved"]
        reps[row["assignee_id"]].tickets_open = row["open"]

    alerts = alert_list(user=viewer, status=None).order_by()
    for row in (
        alerts.filter(customer__owner_id__in=ids, created_at__gte=start, created_at__lt=end)
        .values("customer__owner_id")
        .annotate(n=Count("pk"))
    ):
        reps[row["customer__owner_id"]].alerts_raised = row["n"]
    for row in (
        alerts.filter(acted_by_id__in=ids, acted_at__gte=start, acted_at__lt=end)
        .values("acted_by_id")
        .annotate(n=Count("pk"))
    ):
        reps[row["acted_by_id"]].alerts_acted = row["n"]

    rows = list(reps.values())
    if viewer.sees_all_customers and not scope.filters.owner:
        rows = [r for r in rows if r.active]
    return sorted(rows, key=lambda r: (-r.revenue, r.name))
