"""Reads of the loyalty programme, always within the user's scope (`visible_to`: sales staff see the
members whose customers they own or that are shared with them)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from crm.accounts.models import User
from crm.accounts.permissions import visible_to
from customers.models import Customer, Order
from customers.phone import try_normalise_phone
from customers.selectors import binned_customer_ids, customer_search

from . import rules
from .models import Member, PointsEntry, Programme, Tier, TierChange

LOOKUP_LIMIT = 25
LOOKUP_SCAN = 2_000  # matching customers a look-up reads before it finds their members
QUALIFYING_DAYS = 365
STATEMENT_PAGE = 25
_MEMBER_NUMBER = re.compile(r"^m\d{1,12}$", re.IGNORECASE)


def programme_or_none() -> Programme | None:
    return Programme.objects.filter(pk=1).first()


def member_queryset(user: User) -> QuerySet[Member]:
    """The members among the customers the user may see, not in the bin (left out by id: the counts
    and sums over the members then read the members alone, for a manager)."""
    members = Member.objects.select_related("customer", "tier")
    return visible_to(members.exclude(customer_id__in=binned_customer_ids()), user)


def _entries_of(members: QuerySet[Member], user: User) -> QuerySet[PointsEntry]:
    """The points entries of `members` (member_queryset(user)): for a user who sees every customer,
    every entry but those of binned customers' members (few, left out by id), not a semi-join of
    millions of entries with every member."""
    if user.sees_all_customers:
        binned = Member.objects.filter(customer_id__in=binned_customer_ids()).values("pk")
        return PointsEntry.objects.exclude(member_id__in=binned)
    return PointsEntry.objects.filter(member__in=members.values("pk"))


def points_outstanding(*, user: User) -> int | None:
    """Points held by the members among the customers `user` may see, not in the bin; summed on the
    members alone, the binned customers left out by id (see `segmentation.selectors.score_totals`)."""
    members = Member.objects.exclude(customer_id__in=binned_customer_ids())
    return visible_to(members, user).aggregate(points=Sum("balance"))["points"]


def member_get_for_user(*, user: User, member_id: Any) -> Member:
    """One member the user may see; Http404 alike for missing and forbidden."""
    try:
        return member_queryset(user).get(pk=int(member_id))
    except (Member.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def member_for_customer(customer: Customer) -> Member | None:
    return Member.objects.select_related("tier").filter(customer=customer).first()


def member_lookup(*, user: User, query: str) -> list[Member]:
    """Members by member number (exact), phone (E.164 exact) or name (the customer search), at most
    LOOKUP_LIMIT, newest members first."""
    query = (query or "").strip()[:100]
    if not query:
        return []
    qs = member_queryset(user)
    if _MEMBER_NUMBER.match(query):
        number = query.upper()
        if len(number) < 9:
            number = "M" + number[1:].zfill(8)
        found = list(qs.filter(number=number)[:1])
        if found:
            return found
    phone = try_normalise_phone(query)
    if phone:  # the phone index; numbers found only inside other text fall through to the search
        found = list(qs.filter(customer__phone=phone).order_by("-id")[:LOOKUP_LIMIT])
        if found:
            return found
    customers = customer_search(Customer.objects.filter(deleted_at__isnull=True), query)
    # The customers first, then their members: as one query PostgreSQL walked every member newest
    # first testing each customer against the search (300 ms at 100,000 members). A search broad
    # enough to match more than LOOKUP_SCAN customers keeps that form, which then finds 25 matches
    # quickly.
    customer_ids = list(customers.values_list("pk", flat=True)[: LOOKUP_SCAN + 1])
    if len(customer_ids) <= LOOKUP_SCAN:
        return list(qs.filter(customer_id__in=customer_ids).order_by("-id")[:LOOKUP_LIMIT])
    return list(qs.filter(customer__in=customers.values("pk")).order_by("-id")[:LOOKUP_LIMIT])


def _qualifying_sql(programme: Programme, member_filter: str) -> str:
    if programme.tier_basis == Programme.TierBasis.POINTS:
        return f"""
            SELECT m.id, COALESCE(SUM(e.points), 0)
            FROM {Member._meta.db_table} AS m
            LEFT JOIN {PointsEntry._meta.db_table} AS e ON e.member_id = m.id
                 AND e.kind IN ('earn', 'bonus', 'reverse') AND e.occurred_at >= %s
            WHERE {member_filter}
            GROUP BY m.id
        """  # noqa: S608
    return f"""
        SELECT m.id, COALESCE(SUM(o.total - o.refunded_total), 0)
        FROM {Member._meta.db_table} AS m
        LEFT JOIN {Order._meta.db_table} AS o ON o.customer_id = m.customer_id
             AND o.status IN ('paid', 'partially_refunded') AND o.placed_at >= %s
        WHERE {member_filter}
        GROUP BY m.id
    """  # noqa: S608


def qualifying_values_sql(
    member_filter: str = "TRUE",
    params: Sequence[Any] = (),
    *,
    today: date | None = None,
    programme: Programme | None = None,
) -> tuple[str, list]:
    """The query of `qualifying_values` (columns: member id, value) for the members matching
    `member_filter` (SQL on the member alias m, with its `params`), to embed in a larger statement."""
    programme = programme or programme_or_none() or Programme()
    today = today or timezone.localdate()
    since = timezone.make_aware(
        datetime.combine(today - timedelta(days=QUALIFYING_DAYS), datetime.min.time())
    )
    return _qualifying_sql(programme, member_filter), [since, *params]


def qualifying_values(
    member_ids: Sequence[int] | None = None,
    *,
    today: date | None = None,
    programme: Programme | None = None,
) -> dict[int, Decimal]:
    """Rolling 12-month spend (net of refunds) or points earned, per member. `programme`: the
    programme when the caller has read it already (read here otherwise)."""
    member_filter, params = "TRUE", []
    if member_ids is not None:
        member_filter = "m.id = ANY(%s)"
        params.append(list(member_ids))
    sql, params = qualifying_values_sql(member_filter, params, today=today, programme=programme)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {pk: Decimal(value) for pk, value in cursor.fetchall()}


@dataclass
class Statement:
    entries: list[PointsEntry]
    next_before: int | None  # the id to pass as `before` for the next (older) page


def member_statement(*, member: Member, before: int | None = None, limit: int = STATEMENT_PAGE) -> Statement:
    """The member's ledger, newest first, keyset-paginated on id (index member, -id)."""
    qs = PointsEntry.objects.filter(member=member).select_related("actor", "order").order_by("-id")
    if before:
        qs = qs.filter(id__lt=before)
    rows = list(qs[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return Statement(rows, rows[-1].pk if more and rows else None)


@dataclass
class MemberSummary:
    member: Member
    tier: Tier | None
    next_tier: Tier | None
    qualifying_value: Decimal
    needed: Decimal
    progress_percent: int
    expiring_30d: int
    point_value: Decimal
    balance_value: Decimal
    basis: str
    tiers: list[Tier] = field(default_factory=list)


def member_summary(
    *, member: Member, today: date | None = None, programme: Programme | None = None
) -> MemberSummary:
    """Balance, tier, progress to the next tier and points expiring in the next 30 days.
    `programme`: the programme when the caller has read it already (read here otherwise)."""
    today = today or timezone.localdate()
    programme = programme or programme_or_none() or Programme()
    tiers = list(Tier.objects.order_by("rank"))
    value = qualifying_values([member.pk], today=today, programme=programme).get(member.pk, Decimal("0"))
    current = member.tier.rank if member.tier_id else None
    progress = rules.progress(value, [(t.rank, t.threshold) for t in tiers], current)
    lots = PointsEntry.objects.filter(member=member, remaining__gt=0, expires_on__isnull=False).values_list(
        "id", "remaining", "expires_on"
    )
    expiring = rules.expiring_between((rules.Lot(*row) for row in lots), today, today + timedelta(days=30))
    next_tier = next((t for t in tiers if t.rank == progress.next_rank), None)
    return MemberSummary(
        member=member,
        tier=member.tier,
        next_tier=next_tier,
        qualifying_value=value,
        needed=progress.needed,
        progress_percent=round(progress.fraction * 100),
        expiring_30d=expiring,
        point_value=programme.point_value,
        balance_value=(programme.point_value * member.balance).quantize(Decimal("0.01")),
        basis=programme.tier_basis,
        tiers=tiers,
    )


@dataclass
class TierRow:
    tier: Tier | None
    members: int
    points: int


@dataclass
class Overview:
    members: int
    active: int
    points: int
    liability: Decimal
    point_value: Decimal
    expiring_30d: int
    tiers: list[TierRow]
    earned_30d: int
    redeemed_30d: int


def overview_figures(*, user: User) -> Overview:
    """Members, outstanding points and their value, tier distribution: in the user's scope."""
    programme = programme_or_none() or Programme()
    members = member_queryset(user)
    by_tier = {
        row["tier"]: row
        for row in members.order_by()
        .values("tier")
        .annotate(members=Count("id"), active=Count("id", filter=Q(status="active")), points=Sum("balance"))
    }  # one pass: the totals are the tiers' sums
    totals = {
        "count": sum(row["members"] for row in by_tier.values()),
        "active": sum(row["active"] for row in by_tier.values()),
        "points": sum(row["points"] or 0 for row in by_tier.values()),
    }
    tier_rows = [
        TierRow(tier, by_tier.get(tier.pk, {}).get("members", 0), by_tier.get(tier.pk, {}).get("points") or 0)
        for tier in Tier.objects.order_by("rank")
    ]
    if None in by_tier:
        tier_rows.insert(0, TierRow(None, by_tier[None]["members"], by_tier[None]["points"] or 0))
    today = timezone.localdate()
    since = timezone.now() - timedelta(days=30)
    entries = _entries_of(members, user)
    flows = entries.filter(occurred_at__gte=since).aggregate(
        earned=Sum("points", filter=Q(kind__in=["earn", "bonus"])),
        redeemed=Sum("points", filter=Q(kind="redeem")),
    )
    expiring = entries.filter(
        remaining__gt=0, expires_on__gte=today, expires_on__lte=today + timedelta(days=30)
    ).aggregate(points=Sum("remaining"))["points"]
    points = totals["points"] or 0
    return Overview(
        members=totals["count"],
        active=totals["active"],
        points=points,
        liability=(programme.point_value * points).quantize(Decimal("0.01")),
        point_value=programme.point_value,
        expiring_30d=expiring or 0,
        tiers=tier_rows,
        earned_30d=flows["earned"] or 0,
        redeemed_30d=-(flows["redeemed"] or 0),
    )


def overview_report(user: User, params: dict[str, Any]) -> Overview:
    """`overview_figures` as the report "loyalty-overview" computes it (crm.reportcache)."""
    return overview_figures(user=user)


def member_entries_for_timeline(*, customer: Customer, before=None, limit: int = 20) -> list[PointsEntry]:
    qs = (
        PointsEntry.objects.filter(member__customer=customer)
        .select_related("actor")
        .order_by("-created_at", "-id")
    )
    if before is not None:
        qs = qs.filter(created_at__lt=before)
    return list(qs[:limit])


def tier_changes_for_timeline(*, customer: Customer, before=None, limit: int = 20) -> list[TierChange]:
    qs = TierChange.objects.filter(member__customer=customer).select_related("from_tier", "to_tier")
    if before is not None:
        qs = qs.filter(at__lt=before)
    return list(qs.order_by("-at", "-id")[:limit])


def tier_get(*, tier_id: Any) -> Tier:
    """A tier of this tenant (the settings pages are for admins only, checked by the view)."""
    try:
        return Tier.objects.get(pk=int(tier_id))
    except (Tier.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def tier_choices() -> list[tuple[int, str]]:
    """The programme's tiers, lowest first, as (id, name): what reports filter by."""
    return list(Tier.objects.order_by("rank", "pk").values_list("pk", "name"))


def tier_member_customers(*, tier_id: int) -> QuerySet:
    """The ids of the customers who are members in tier `tier_id` (a subquery for other apps' filters)."""
    return Member.objects.filter(tier_id=tier_id).values("customer_id")
