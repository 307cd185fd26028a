"""Reads of the referral programme. The ambassador report is for managers and admins (who see every
customer); the referral panel follows the customer page's own scope."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce

from customers.models import Order
from loyalty.models import Member

from .models import Referral, ReferralCode

TOP_AMBASSADORS = 50
REFEREES_LIMIT = 200


@dataclass
class AmbassadorRow:
    member: Member
    referrals: int
    rewarded: int
    revenue: Decimal


def _tables() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {
        "referral": quote(Referral._meta.db_table),
        "member": quote(Member._meta.db_table),
        "order": quote(Order._meta.db_table),
    }


def ambassadors(*, limit: int = TOP_AMBASSADORS) -> list[AmbassadorRow]:
    """The top `limit` referrers by referrals, then by the revenue their referees brought since they
    were referred (paid orders net of refunds): one aggregate, then one query for the members."""
    sql = """
        SELECT r.referrer_id, COUNT(DISTINCT r.id),
               COUNT(DISTINCT r.id) FILTER (WHERE r.rewarded_at IS NOT NULL),
               COALESCE(SUM(o.total - o.refunded_total), 0)
        FROM {referral} AS r
        JOIN {member} AS m ON m.id = r.referee_id
        LEFT JOIN {order} AS o ON o.customer_id = m.customer_id AND o.status = ANY(%s)
             AND o.placed_at >= r.created_at
        GROUP BY r.referrer_id
        ORDER BY 2 DESC, 4 DESC, r.referrer_id
        LIMIT %s
    """.format(**_tables())  # noqa: S608 - table names from model metadata
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(Order.PURCHASE_STATUSES), limit])
        rows = cursor.fetchall()
    members = Member.objects.select_related("customer", "tier").in_bulk([row[0] for row in rows])
    return [
        AmbassadorRow(members[pk], count, rewarded, Decimal(revenue)) for pk, count, rewarded, revenue in rows
    ]


@dataclass
class RefereeRow:
    referral: Referral
    revenue: Decimal
    orders: int


def referees_of(*, member: Member, limit: int = REFEREES_LIMIT) -> list[RefereeRow]:
    """The members `member` referred, newest first, with the revenue each brought (one aggregate)."""
    sql = """
        SELECT r.id, COALESCE(SUM(o.total - o.refunded_total), 0), COUNT(o.id)
        FROM {referral} AS r
        JOIN {member} AS m ON m.id = r.referee_id
        LEFT JOIN {order} AS o ON o.customer_id = m.customer_id AND o.status = ANY(%s)
             AND o.placed_at >= r.created_at
        WHERE r.referrer_id = %s
        GROUP BY r.id
        ORDER BY r.id DESC
        LIMIT %s
    """.format(**_tables())  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(Order.PURCHASE_STATUSES), member.pk, limit])
        rows = cursor.fetchall()
    referrals = Referral.objects.select_related("referee__customer", "referee__tier").in_bulk(
        [r[0] for r in rows]
    )
    return [RefereeRow(referrals[pk], Decimal(revenue), orders) for pk, revenue, orders in rows]


def referral_of(member: Member) -> Referral | None:
    return Referral.objects.select_related("referrer__customer").filter(referee=member).first()


def referrals_count(member: Member) -> int:
    return Referral.objects.filter(referrer=member).count()


@dataclass(frozen=True)
class PanelFacts:
    code: str | None  # None: the member has no code yet
    referred_by_name: str | None
    count: int


def referral_panel_facts(member: Member) -> PanelFacts:
    """What the 360 page's referral panel shows, in one query: the member's code, who referred them,
    and how many people they referred (a count on the (referrer) index)."""
    referral = Referral.objects.filter(referee=OuterRef("pk"))
    made = (
        Referral.objects.filter(referrer=OuterRef("pk"))
        .order_by()
        .values("referrer")
        .annotate(n=Count("pk"))
        .values("n")
    )
    row = (
        Member.objects.filter(pk=member.pk)
        .annotate(
            code=Subquery(ReferralCode.objects.filter(member=OuterRef("pk")).values("code")[:1]),
            referrer_name=Subquery(referral.values("referrer__customer__name")[:1]),
            made=Coalesce(Subquery(made), 0),
        )
        .values("code", "referrer_name", "made")
        .first()
    )
    if row is None:
        return PanelFacts(None, None, 0)
    return PanelFacts(row["code"], row["referrer_name"], row["made"])
