"""Loyalty reports (reads only): earn and burn per month, tier distribution and movements, redemption
rate, members' repeat-purchase rate against non-members, liability over time, and the members behind
each figure.

Every figure is one aggregate in SQL over a bounded period (12 or 24 months, `PERIODS`), grouped by
`date_trunc('month', ...)` in the active (tenant's) time zone; nothing is computed per member in
Python. The report pages are for managers and admins (who see every member); the drill-down list of
members is scoped by `visible_to` like every other members list, so sales staff who follow a link see
only the members among their own and shared customers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, Exists, OuterRef, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from crm.accounts.models import User
from customers.models import Customer, Order

from .models import Member, PointsEntry, Programme, Tier, TierChange
from .selectors import member_queryset, overview_figures, programme_or_none

PERIODS = (12, 24)
DEFAULT_PERIOD = 12
MEMBERS_PAGE = 50

# Ledger kinds per report column; "opening" balances brought from another system are their own
# column, so they count neither as earned in the period nor in the redemption rate.
EARNED_KINDS = (PointsEntry.Kind.EARN, PointsEntry.Kind.BONUS)
FLOW_COLUMNS = {
    "earned": EARNED_KINDS,
    "redeemed": (PointsEntry.Kind.REDEEM,),
    "expired": (PointsEntry.Kind.EXPIRE,),
    "adjusted": (PointsEntry.Kind.ADJUST,),
    "reversed": (PointsEntry.Kind.REVERSE,),
    "opening": (PointsEntry.Kind.OPENING,),
}
MOVEMENTS = (TierChange.Reason.UPGRADE, TierChange.Reason.DOWNGRADE, TierChange.Reason.JOINED)


def clean_period(raw: Any) -> int:
    """12 or 24 months; anything else is the default (a bounded period, never open-ended)."""
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return DEFAULT_PERIOD
    return value if value in PERIODS else DEFAULT_PERIOD


def clean_month(raw: Any) -> date | None:
    """ "YYYY-MM" to the month's first day; None for anything else."""
    text = str(raw or "")[:7]
    try:
        return datetime.strptime(text, "%Y-%m").date() if len(text) == 7 else None
    except ValueError:
        return None


def _months(period: int, today: date | None = None) -> list[date]:
    """The first days of the last `period` months, oldest first, the current month last."""
    today = today or timezone.localdate()
    year, month = today.year, today.month
    out = []
    for _index in range(period):
        out.append(date(year, month, 1))
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return out[::-1]


def _aware(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def period_bounds(period: int, today: date | None = None) -> tuple[datetime, datetime]:
    months = _months(period, today)
    return _aware(months[0]), _aware(_next_month(months[-1]))


def _month_of(value) -> date:
    if isinstance(value, datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
        return value.date().replace(day=1)
    return value.replace(day=1)


@dataclass
class FlowMonth:
    month: date
    earned: int = 0
    redeemed: int = 0
    expired: int = 0
    adjusted: int = 0
    reversed: int = 0
    opening: int = 0
    outstanding: int = 0  # points outstanding at the month's end (the ledger's running sum)
    liability: Decimal = Decimal("0")


@dataclass
class MovementMonth:
    month: date
    upgrade: int = 0
    downgrade: int = 0
    joined: int = 0


@dataclass
class RepeatRow:
    buyers: int
    repeaters: int

    @property
    def rate(self) -> float | None:
        return self.repeaters / self.buyers if self.buyers else None

    @property
    def percent(self) -> float | None:
        return _percent(self.rate)


@dataclass
class LoyaltyReport:
    period: int
    start: datetime
    end: datetime
    point_value: Decimal
    flows: list[FlowMonth]
    movements: list[MovementMonth]
    tiers: list  # selectors.TierRow
    earned: int
    redeemed: int
    redemption_rate: float | None
    members: int
    redeemers: int
    redeemer_share: float | None
    repeat_members: RepeatRow
    repeat_others: RepeatRow
    chart: dict = field(default_factory=dict)

    @property
    def redemption_percent(self) -> float | None:
        return _percent(self.redemption_rate)

    @property
    def redeemer_percent(self) -> float | None:
        return _percent(self.redeemer_share)

    @property
    def liability(self) -> Decimal:
        return self.flows[-1].liability if self.flows else Decimal("0")


def _flows(period: int, start: datetime, end: datetime, point_value: Decimal) -> list[FlowMonth]:
    """Points per month and kind (one GROUP BY date_trunc), and the outstanding points at each
    month's end: the ledger's sum before the period plus the running sum of the months."""
    months = {month: FlowMonth(month) for month in _months(period)}
    kind_column = {kind: column for column, kinds in FLOW_COLUMNS.items() for kind in kinds}
    rows = (
        PointsEntry.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
        .annotate(month=TruncMonth("occurred_at"))
        .values("month", "kind")
        .annotate(points=Sum("points"))
        .order_by()
    )
    net: dict[date, int] = {}
    for row in rows:
        month = _month_of(row["month"])
        if month not in months:
            continue
        points = row["points"] or 0
        net[month] = net.get(month, 0) + points
        column = kind_column.get(row["kind"])
        if column is None:
            continue
        # Debits are shown as positive amounts taken away; adjustments keep their sign.
        value = -points if column in ("redeemed", "expired", "reversed") else points
        setattr(months[month], column, getattr(months[month], column) + value)
    before = PointsEntry.objects.filter(occurred_at__lt=start).aggregate(points=Sum("points"))["points"] or 0
    running = before
    for month, row in months.items():
        running += net.get(month, 0)
        row.outstanding = running
        row.liability = (point_value * running).quantize(Decimal("0.01"))
    return list(months.values())


def _movements(period: int, start: datetime, end: datetime) -> list[MovementMonth]:
    months = {month: MovementMonth(month) for month in _months(period)}
    rows = (
        TierChange.objects.filter(at__gte=start, at__lt=end, reason__in=MOVEMENTS)
        .annotate(month=TruncMonth("at"))
        .values("month", "reason")
        .annotate(count=Count("id"))
        .order_by()
    )
    for row in rows:
        month = _month_of(row["month"])
        if month in months:
            setattr(months[month], row["reason"], row["count"])
    return list(months.values())


def _repeat_rates(start: datetime, end: datetime) -> tuple[RepeatRow, RepeatRow]:
    """Among the customers who bought in the period (>= 1 paid order), the share with >= 2 paid
    orders, members against everyone else, in one statement."""
    sql = f"""
        SELECT m.id IS NOT NULL, COUNT(*), COUNT(*) FILTER (WHERE o.orders >= 2)
        FROM (
            SELECT customer_id, COUNT(*) AS orders FROM {Order._meta.db_table}
            WHERE status = ANY(%s) AND placed_at >= %s AND placed_at < %s
            GROUP BY customer_id
        ) AS o
        JOIN {Customer._meta.db_table} AS c ON c.id = o.customer_id AND c.deleted_at IS NULL
        LEFT JOIN {Member._meta.db_table} AS m ON m.customer_id = o.customer_id
        GROUP BY 1
    """  # noqa: S608 - table names from model metadata, values are parameters
    statuses = [str(s) for s in Order.PURCHASE_STATUSES]
    rows = {True: RepeatRow(0, 0), False: RepeatRow(0, 0)}
    with connection.cursor() as cursor:
        cursor.execute(sql, [statuses, start, end])
        for is_member, buyers, repeaters in cursor.fetchall():
            rows[bool(is_member)] = RepeatRow(buyers, repeaters)
    return rows[True], rows[False]


def _percent(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 1)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def report_for_cache(user: User, params: dict[str, Any]) -> LoyaltyReport:
    """`loyalty_report` as the report "loyalty-report" computes it (crm.reportcache)."""
    return loyalty_report(user=user, period=params["period"])


def loyalty_report(*, user: User, period: int = DEFAULT_PERIOD) -> LoyaltyReport:
    """Every figure of the report page (managers and admins: the whole programme). A fixed number
    of queries whatever the number of members, entries or months."""
    period = clean_period(period)
    start, end = period_bounds(period)
    programme = programme_or_none() or Programme()
    point_value = programme.point_value
    flows = _flows(period, start, end, point_value)
    movements = _movements(period, start, end)
    earned = sum(row.earned for row in flows)
    redeemed = sum(row.redeemed for row in flows)
    members = Member.objects.filter(joined_at__lt=end).count()
    redeemers = (
        PointsEntry.objects.filter(kind=PointsEntry.Kind.REDEEM, occurred_at__gte=start, occurred_at__lt=end)
        .values("member_id")
        .distinct()
        .count()
    )
    repeat_members, repeat_others = _repeat_rates(start, end)
    report = LoyaltyReport(
        period=period,
        start=start,
        end=end,
        point_value=point_value,
        flows=flows,
        movements=movements,
        tiers=overview_figures(user=user).tiers,
        earned=earned,
        redeemed=redeemed,
        redemption_rate=_share(redeemed, earned),
        members=members,
        redeemers=redeemers,
        redeemer_share=_share(redeemers, members),
        repeat_members=repeat_members,
        repeat_others=repeat_others,
    )
    report.chart = {
        "months": [row.month.strftime("%Y-%m") for row in flows],
        "earned": [row.earned for row in flows],
        "redeemed": [row.redeemed for row in flows],
        "expired": [row.expired for row in flows],
        "adjusted": [row.adjusted for row in flows],
        "liability": [float(row.liability) for row in flows],
        "upgrades": [row.upgrade for row in movements],
        "downgrades": [row.downgrade for row in movements],
    }
    return report


# --------------------------------------------------------------------------------------------------
# Drill-down: the members behind a figure
# --------------------------------------------------------------------------------------------------
FIGURES = (
    *FLOW_COLUMNS,  # with a month: members with such an entry that month
    "redeemers",  # members who redeemed in the period
    "tier",  # members now in a tier ("none": without one)
    *MOVEMENTS,  # with a month: members whose tier changed that way that month
    "buyers",  # members with >= 1 paid order in the period
    "repeaters",  # members with >= 2 paid orders in the period
    "outstanding",  # members holding points (the liability)
)


@dataclass(frozen=True)
class Drill:
    figure: str
    period: int = DEFAULT_PERIOD
    month: date | None = None
    tier: str = ""  # a tier id or "none"

    def bounds(self) -> tuple[datetime, datetime]:
        if self.month is not None:
            return _aware(self.month), _aware(_next_month(self.month))
        return period_bounds(self.period)


def clean_drill(params) -> Drill | None:
    """The drill-down from query parameters (no figure: the members holding points); None when they
    name an unknown figure, a bad month or tier (the view answers 404)."""
    figure = str(params.get("figure", "") or "outstanding")[:20]
    if figure not in FIGURES:
        return None
    month = clean_month(params.get("month"))
    if (figure in FLOW_COLUMNS or figure in MOVEMENTS) and month is None:
        return None
    tier = str(params.get("tier", ""))[:12]
    if figure == "tier" and not (tier == "none" or tier.isdigit()):
        return None
    return Drill(figure=figure, period=clean_period(params.get("period")), month=month, tier=tier)


def _paid_orders(start: datetime, end: datetime, at_least: int):
    return (
        Order.objects.filter(status__in=Order.PURCHASE_STATUSES, placed_at__gte=start, placed_at__lt=end)
        .values("customer_id")
        .annotate(orders=Count("id"))
        .filter(orders__gte=at_least)
        .values("customer_id")
    )


def drill_members(*, user: User, drill: Drill) -> QuerySet[Member]:
    """The members behind the figure, in the user's scope, newest first (keyset on id)."""
    qs = member_queryset(user)
    start, end = drill.bounds()
    if drill.figure in FLOW_COLUMNS or drill.figure == "redeemers":
        kinds = FLOW_COLUMNS.get(drill.figure, (PointsEntry.Kind.REDEEM,))
        qs = qs.filter(
            Exists(
                PointsEntry.objects.filter(
                    member=OuterRef("pk"), kind__in=kinds, occurred_at__gte=start, occurred_at__lt=end
                )
            )
        )
    elif drill.figure in MOVEMENTS:
        qs = qs.filter(
            Exists(
                TierChange.objects.filter(
                    member=OuterRef("pk"), reason=drill.figure, at__gte=start, at__lt=end
                )
            )
        )
    elif drill.figure == "tier":
        qs = qs.filter(tier__isnull=True) if drill.tier == "none" else qs.filter(tier_id=int(drill.tier))
    elif drill.figure in ("buyers", "repeaters"):
        at_least = 2 if drill.figure == "repeaters" else 1
        qs = qs.filter(customer_id__in=_paid_orders(start, end, at_least))
    elif drill.figure == "outstanding":
        qs = qs.filter(balance__gt=0)
    return qs.order_by("-id")


@dataclass
class MembersPage:
    members: list[Member]
    next_after: int | None


def drill_page(
    *, user: User, drill: Drill, after: int | None = None, limit: int = MEMBERS_PAGE
) -> MembersPage:
    """One page of the drill-down by keyset (`after`: the last id of the previous page)."""
    qs = drill_members(user=user, drill=drill)
    if after:
        qs = qs.filter(id__lt=after)
    rows = list(qs[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return MembersPage(rows, rows[-1].pk if more and rows else None)


def drill_title_tier(drill: Drill) -> Tier | None:
    if drill.figure == "tier" and drill.tier.isdigit():
        return Tier.objects.filter(pk=int(drill.tier)).first()
    return None
