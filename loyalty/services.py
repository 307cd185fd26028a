"""Writes to the loyalty programme: enrolment, the points ledger, expiry, tiers, merges.

Every change of a balance happens with the member's row locked (`SELECT ... FOR UPDATE`, always in id
order when several are locked), so concurrent redemptions, adjustments and earning never lose an
update; the database refuses a negative balance whatever the code does (CheckConstraint).

Earning is a sweep, not a reaction to one path: "paid orders of active members that have no earn
entry yet" (an anti-join on the one-earn-per-order unique index), computed in bulk, written with COPY.
Whatever way an order arrived (form, import, re-import, retry), the next sweep earns it exactly once.
Refunds are followed the same way: an order's reversal is computed from its current refunded total
(`rules.reversal_due`), keyed by that total, so the same state never reverses twice.

Roles: any staff member who can see the customer may enrol, redeem and adjust up to the programme's
limit; larger adjustments need a manager or admin; the programme and tiers are the admins'.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.accounts.permissions import ADMINS, MANAGERS, user_has_role, visible_to
from crm.audit.services import audit_diff, audit_record
from crm.errors import ApplicationError
from crm.expressions import id_array
from customers.models import Customer, Order, OrderLine

from . import rules
from .models import Member, PointsEntry, Programme, Tier, TierChange
from .selectors import qualifying_values_sql
from .signals import points_swept

logger = logging.getLogger(__name__)

MAX_POINTS = 10_000_000  # one redemption or adjustment
EARN_BATCH = 50_000  # customers per earning transaction
EXPIRY_BATCH = 5_000  # members per expiry transaction
REVERSE_BATCH = 5_000  # members per refund-reversal transaction
# Serialises earning sweeps within a tenant (the lock is per database, the tables per schema: the
# key mixes in the schema name).
_EARN_LOCK = "loyalty.earn"


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _lock_key(name: str) -> int:
    import zlib

    return zlib.crc32(f"{connection.schema_name}:{name}".encode())


def _without_jit(cursor) -> None:
    """Turn PostgreSQL's JIT compilation off for the rest of the current transaction. The bulk
    statements of the sweeps are costed above `jit_above_cost` at a tenant's real size, and compiling
    them (with inlining and optimisation) took longer than running them: 1.8 s of a 3 s tier
    evaluation at 100,000 members. Must run inside `transaction.atomic()` (SET LOCAL)."""
    cursor.execute("SET LOCAL jit = off")


# --------------------------------------------------------------------------------------------------
# Programme and tiers
# --------------------------------------------------------------------------------------------------
def programme_get() -> Programme:
    programme = Programme.objects.filter(pk=1).first()
    if programme is None:
        programme, _created = Programme.objects.get_or_create(pk=1)
    return programme


PROGRAMME_FIELDS = (
    "name",
    "is_active",
    "auto_enrol",
    "points_per_unit",
    "rounding",
    "earning_channels",
    "excluded_categories",
    "signup_bonus",
    "first_purchase_bonus",
    "birthday_multiplier",
    "campaign_multiplier",
    "campaign_starts",
    "campaign_ends",
    "redemption_points",
    "redemption_value",
    "minimum_redeem_balance",
    "expiry_mode",
    "expiry_months",
    "tier_basis",
    "tier_grace_days",
    "adjust_limit",
)


def _programme_snapshot(programme: Programme) -> dict[str, Any]:
    out = {}
    for name in PROGRAMME_FIELDS:
        value = getattr(programme, name)
        out[name] = value if isinstance(value, bool | int | list | type(None)) else str(value)
    return out


@transaction.atomic
def programme_update(*, actor, data: Mapping[str, Any]) -> Programme:
    """Change the programme settings (admins only); audited with old and new values."""
    if not user_has_role(actor, ADMINS):
        raise PermissionDenied
    programme = Programme.objects.select_for_update().get(pk=programme_get().pk)
    before = _programme_snapshot(programme)
    for name, value in data.items():
        if name not in PROGRAMME_FIELDS:
            raise ValueError(f"unknown programme field {name!r}")
        setattr(programme, name, value)
    errors: dict[str, list] = {}
    if (programme.campaign_starts is None) != (programme.campaign_ends is None):
        errors.setdefault("campaign_ends", []).append(_("Give both campaign dates or neither."))
    elif programme.campaign_starts and programme.campaign_ends < programme.campaign_starts:
        errors.setdefault("campaign_ends", []).append(_("The campaign cannot end before it starts."))
    if errors:
        raise ValidationError(errors)
    programme.full_clean()
    programme.save()
    changes = audit_diff(before, _programme_snapshot(programme))
    if changes:
        audit_record(actor=actor, action="loyalty.programme_updated", target=programme, changes=changes)
    return programme


def _tier_snapshot(tier: Tier) -> dict[str, Any]:
    return {
        "name": tier.name,
        "rank": tier.rank,
        "threshold": str(tier.threshold),
        "multiplier": str(tier.multiplier),
        "benefits": tier.benefits,
    }


@transaction.atomic
def tier_save(*, actor, tier: Tier | None = None, data: Mapping[str, Any]) -> Tier:
    """Create (tier=None) or change a tier (admins only). Members move at the next evaluation
    (upgrades) or after the grace period (downgrades)."""
    if not user_has_role(actor, ADMINS):
        raise PermissionDenied
    creating = tier is None
    tier = tier or Tier()
    before = {} if creating else _tier_snapshot(tier)
    for name in ("name", "rank", "threshold", "multiplier", "benefits"):
        if name in data:
            setattr(tier, name, data[name])
    tier.name = (tier.name or "").strip()
    tier.full_clean()
    tier.save()
    audit_record(
        actor=actor,
        action="loyalty.tier_created" if creating else "loyalty.tier_updated",
        target=tier,
        changes=audit_diff(before, _tier_snapshot(tier)),
    )
    return tier


def _tiers() -> list[Tier]:
    return list(Tier.objects.order_by("rank"))


def _thresholds(tiers: Sequence[Tier]) -> list[tuple[int, Decimal]]:
    return [(tier.rank, tier.threshold) for tier in tiers]


# --------------------------------------------------------------------------------------------------
# Ledger primitives: the only functions that change a balance. The sub-apps (rewards, referrals) use
# them too, so the rules below hold for every row whoever writes it:
# - the caller holds the member's row lock (`lock_member`, in a transaction) while it credits or debits;
# - a credit adds a positive number of points (a new lot, with the programme's expiry);
# - `debit` is the one place that refuses to take more than the balance ("never negative"); the
#   database's CheckConstraint on the balance backs it up whatever the code does.
# --------------------------------------------------------------------------------------------------
CREDIT_KINDS = frozenset(
    {PointsEntry.Kind.EARN, PointsEntry.Kind.BONUS, PointsEntry.Kind.ADJUST, PointsEntry.Kind.OPENING}
)
DEBIT_KINDS = frozenset(
    {PointsEntry.Kind.REDEEM, PointsEntry.Kind.ADJUST, PointsEntry.Kind.REVERSE, PointsEntry.Kind.EXPIRE}
)


def lock_member(member: Member | int) -> Member:
    """Lock the member's row until the current transaction ends (`SELECT ... FOR UPDATE`) and return
    it as stored. Every balance change happens under this lock; code that locks several members locks
    them in id order (no deadlocks). Must be called inside `transaction.atomic()`: outside one the lock
    would end with the statement."""
    if not connection.in_atomic_block:
        raise RuntimeError("lock_member() needs a transaction (transaction.atomic)")
    pk = member.pk if isinstance(member, Member) else int(member)
    return Member.objects.select_for_update().get(pk=pk)


def _expires_on(programme: Programme, earned_on: date) -> date | None:
    return rules.lot_expiry(earned_on, mode=programme.expiry_mode, months=programme.expiry_months)


def credit(
    member: Member,
    *,
    kind: str,
    points: int,
    source: str,
    source_key: str = "",
    reason: str = "",
    actor=None,
    occurred_at: datetime | None = None,
    order_id: int | None = None,
    amount: Decimal | None = None,
    programme: Programme | None = None,
) -> PointsEntry:
    """Add `points` (> 0) to a member locked by `lock_member`: one ledger row that is also a new lot,
    and the stored balance raised. `member.balance` is kept current, so several credits to the same
    object in one transaction write the right running balance. The lot expires by the programme's
    rule from `occurred_at` (now by default).
    Keys (`source_key`) are unique per kind: a repeated key fails with IntegrityError, so callers that
    may repeat check first."""
    if kind not in CREDIT_KINDS:
        raise ValueError(f"credit() cannot write a {kind!r} entry")
    if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
        raise ValueError("credit() adds a positive whole number of points")
    programme = programme or programme_get()
    occurred_at = occurred_at or timezone.now()
    member.balance += points
    entry = PointsEntry.objects.create(
        member=member,
        kind=kind,
        points=points,
        balance_after=member.balance,
        remaining=points,
        expires_on=_expires_on(programme, timezone.localdate(occurred_at)),
        source=source,
        source_key=source_key,
        order_id=order_id,
        amount=amount,
        reason=reason,
        actor=actor if getattr(actor, "pk", None) else None,
        occurred_at=occurred_at,
    )
    Member.objects.filter(pk=member.pk).update(balance=member.balance, updated_at=timezone.now())
    return entry


def _open_lots(member: Member, today: date) -> list[rules.Lot]:
    rows = (
        PointsEntry.objects.select_for_update()
        .filter(member=member, remaining__gt=0)
        .values_list("id", "remaining", "expires_on")
    )
    return [rules.Lot(pk, remaining, expires) for pk, remaining, expires in rows]


def debit(
    member: Member,
    *,
    kind: str,
    points: int,
    source: str,
    source_key: str = "",
    reason: str = "",
    actor=None,
    occurred_at: datetime | None = None,
    order_id: int | None = None,
    amount: Decimal | None = None,
    allow_shortfall: bool = False,
    first_lot: int | None = None,
) -> PointsEntry:
    """Take `points` (> 0) from a member locked by `lock_member`, from their lots (FIFO by expiry,
    `first_lot` first). This is where "a balance never goes negative" is decided: more than the
    balance is refused with a ValidationError on "points" (nothing written), unless `allow_shortfall`
    (a refund taking back points already spent), when what the lots cannot cover is recorded as the
    entry's shortfall instead."""
    if kind not in DEBIT_KINDS:
        raise ValueError(f"debit() cannot write a {kind!r} entry")
    if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
        raise ValueError("debit() takes a positive whole number of points")
    if points > member.balance and not allow_shortfall:
        raise ValidationError(
            {"points": [_("Only %(balance)s points are available.") % {"balance": member.balance}]}
        )
    lots = _open_lots(member, timezone.localdate())
    taken, shortfall = rules.consume(lots, points, first=first_lot)
    if shortfall and not allow_shortfall:  # the lots disagree with the balance: never write
        raise ApplicationError(_("Not enough points."), code="insufficient")
    _take_from_lots(taken)
    debited = points - shortfall
    member.balance -= debited
    entry = PointsEntry.objects.create(
        member=member,
        kind=kind,
        points=-debited,
        balance_after=member.balance,
        shortfall=shortfall,
        source=source,
        source_key=source_key,
        order_id=order_id,
        amount=amount,
        reason=reason,
        actor=actor if getattr(actor, "pk", None) else None,
        occurred_at=occurred_at or timezone.now(),
    )
    Member.objects.filter(pk=member.pk).update(balance=member.balance, updated_at=timezone.now())
    return entry


def _take_from_lots(taken: Sequence[tuple[int, int]]) -> None:
    if not taken:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_table(PointsEntry)} AS e SET remaining = e.remaining - t.take "  # noqa: S608
            "FROM unnest(%s::bigint[], %s::int[]) AS t(id, take) WHERE e.id = t.id",
            [[lot for lot, _take in taken], [take for _lot, take in taken]],
        )


def _bounded_points(value: Any, *, field: str = "points", allow_negative: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({field: [_("Enter a whole number of points.")]})
    if value == 0 or (value < 0 and not allow_negative):
        raise ValidationError(
            {
                field: [
                    _("Enter a number of points other than zero.")
                    if allow_negative
                    else _("Enter a number of points above zero.")
                ]
            }
        )
    if abs(value) > MAX_POINTS:
        raise ValidationError({field: [_("At most %(max)s points at once.") % {"max": f"{MAX_POINTS:,}"}]})
    return value


def _clean_reason(reason: str, *, required: bool) -> str:
    reason = " ".join((reason or "").split())
    if required and not reason:
        raise ValidationError({"reason": [_("Give a reason.")]})
    if len(reason) > 300:
        raise ValidationError({"reason": [_("Use at most 300 characters.")]})
    return reason


def _check_visible(actor, member: Member) -> None:
    """A staff actor must be able to see the member's customer (sales: their own and shared)."""
    if actor is None:
        return
    if not visible_to(Member.objects.filter(pk=member.pk), actor).exists():
        raise PermissionDenied


def _existing(kind: str, source_key: str, member: Member) -> PointsEntry | None:
    if not source_key:
        return None
    entry = PointsEntry.objects.filter(kind=kind, source_key=source_key).first()
    if entry is not None and entry.member_id != member.pk:
        raise ApplicationError(_("This reference was already used for another member."), code="key_used")
    return entry


# --------------------------------------------------------------------------------------------------
# Enrolment
# --------------------------------------------------------------------------------------------------
def member_number_for(customer_id: int) -> str:
    return f"M{customer_id:08d}"


def _entry_tier(tiers: Sequence[Tier]) -> Tier | None:
    rank = rules.qualify(Decimal("0"), _thresholds(tiers))
    return next((tier for tier in tiers if tier.rank == rank), None)


@transaction.atomic
def member_enrol(*, actor, customer: Customer, joined_at: datetime | None = None) -> Member:
    """Make the customer a member (idempotent: an existing member is returned unchanged). The
    sign-up bonus, when the programme gives one, is credited once."""
    locked = Customer.objects.select_for_update().get(pk=customer.pk)
    if locked.deleted_at is not None or locked.merged_into_id is not None:
        raise ApplicationError(_("This customer is in the recycle bin or was merged."), code="deleted")
    if actor is not None and not visible_to(Customer.objects.filter(pk=locked.pk), actor).exists():
        raise PermissionDenied
    existing = Member.objects.filter(customer=locked).first()
    if existing is not None:
        return existing
    programme = programme_get()
    now = timezone.now()
    tier = _entry_tier(_tiers())
    member = Member.objects.create(
        customer=locked,
        number=member_number_for(locked.pk),
        joined_at=joined_at or now,
        tier=tier,
        tier_since=timezone.localdate() if tier else None,
    )
    TierChange.objects.create(
        member=member, from_tier=None, to_tier=tier, reason=TierChange.Reason.JOINED, at=now
    )
    if programme.signup_bonus:
        credit(
            member,
            kind=PointsEntry.Kind.BONUS,
            points=programme.signup_bonus,
            source=PointsEntry.Source.RULE,
            source_key=f"signup:{member.pk}",
            reason="signup",
            programme=programme,
        )
    audit_record(
        actor=actor,
        action="loyalty.member_enrolled",
        target=locked,
        changes={"member": {"old": None, "new": member.number}},
    )
    return member


@transaction.atomic
def member_set_status(*, actor, member: Member, status: str) -> Member:
    if not user_has_role(actor, MANAGERS):
        raise PermissionDenied
    if status not in Member.Status.values:
        raise ValidationError({"status": [_("Choose a valid status.")]})
    locked = lock_member(member)
    old = locked.status
    if old != status:
        locked.status = status
        locked.save(update_fields=["status", "updated_at"])
        audit_record(
            actor=actor,
            action="loyalty.member_status",
            target=locked,
            changes={"status": {"old": old, "new": status}},
        )
    return locked


# --------------------------------------------------------------------------------------------------
# Earning
# --------------------------------------------------------------------------------------------------
def _order_conditions(programme: Programme, *, alias: str) -> tuple[str, list]:
    where = f"{alias}.status = ANY(%s)"
    params: list[Any] = [list(Order.PURCHASE_STATUSES)]
    if programme.earning_channels:
        where += f" AND {alias}.channel = ANY(%s)"
        params.append(list(programme.earning_channels))
    return where, params


@dataclass
class EarnResult:
    enrolled: int = 0
    orders: int = 0
    points: int = 0
    bonuses: int = 0
    upgrades: int = 0
    reversals: int = 0


def points_earn_for_orders(
    *, customer_ids: Iterable[int] | None = None, actor=None, batch_size: int = EARN_BATCH
) -> EarnResult:
    """Earn points for every paid order of an active member that has not earned yet, enrolling first
    when the programme enrols automatically; then reverse what refunds took back. Idempotent and safe
    to run concurrently (sweeps take turns).

    With `customer_ids` (what customers_changed names: the customers of a new or refunded order, an
    import's customers, a merge's two) every step - enrolment, earning, reversals, referral bonuses -
    looks at those customers' orders only, so the cost follows the change, not the tenant's history.
    Without it the sweep covers every customer: the nightly catch-up, for an order whose sweep was
    lost (a task that never ran) or an import too big to name its customers.

    The customers are taken `batch_size` at a time, one transaction each (their members locked in
    id order for that transaction only); each batch is a handful of set-based statements whatever
    its size (see `_earn_customers`)."""
    programme = programme_get()
    result = EarnResult()
    if not programme.is_active:
        return result
    ids = None if customer_ids is None else sorted({int(pk) for pk in customer_ids})
    if ids is not None and not ids:
        return result
    tiers = _tiers()
    todo = ids if ids is not None else _customers_with_earnings_due(programme)
    for start in range(0, len(todo), batch_size):
        with transaction.atomic():
            with connection.cursor() as cursor:
                _without_jit(cursor)
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(_EARN_LOCK)])
            _earn_customers(programme, tiers, todo[start : start + batch_size], result)
    result.reversals = points_reverse_for_orders(customer_ids=ids)
    wrote = bool(result.enrolled or result.orders or result.upgrades or result.reversals)
    points_swept.send(sender=EarnResult, customer_ids=ids, wrote=wrote)  # referral bonuses, the reports
    return result


# An order earns when it is a purchase (status, channel), has no earn entry yet (the anti-join on
# loyalty_one_earn_per_order) and its customer is an active member who had joined when it was placed,
# or a live customer with no membership yet when the programme enrols automatically (they join at
# their first such order, so all of their orders qualify).
_DUE = """
    FROM {order} AS o
    {scope}
    JOIN {customer} AS c ON c.id = o.customer_id
    LEFT JOIN {member} AS m ON m.customer_id = o.customer_id
    WHERE {where}
      AND CASE WHEN m.id IS NULL THEN %s AND c.deleted_at IS NULL AND c.merged_into_id IS NULL
               ELSE m.status = 'active' AND o.placed_at >= m.joined_at END
      AND NOT EXISTS (SELECT 1 FROM {entry} AS e WHERE e.order_id = o.id AND e.kind = 'earn')
"""


def _due_sql(programme: Programme, scope: str) -> tuple[str, list]:
    where, params = _order_conditions(programme, alias="o")
    sql = _DUE.format(
        order=_table(Order),
        customer=_table(Customer),
        member=_table(Member),
        entry=_table(PointsEntry),
        scope=scope,
        where=where,
    )
    return sql, [*params, programme.auto_enrol]


def _customers_with_earnings_due(programme: Programme) -> list[int]:
    """The catch-up sweep's customers: those with an order that would earn now, in id order."""
    sql, params = _due_sql(programme, scope="")
    with transaction.atomic(), connection.cursor() as cursor:
        _without_jit(cursor)
        cursor.execute(f"SELECT DISTINCT o.customer_id {sql} ORDER BY 1", params)
        return [row[0] for row in cursor.fetchall()]


ROUNDING_SQL = {"down": "floor", "up": "ceil", "nearest": "round"}  # round(numeric): half away from 0


def _expiry_sql(programme: Programme, local_date: str) -> tuple[str, list]:
    """SQL of `rules.lot_expiry` for a date expression (date + interval clamps to the month's end,
    like `rules.add_months`)."""
    if programme.expiry_mode == Programme.ExpiryMode.MONTHS:
        return f"({local_date} + make_interval(months => %s))::date", [programme.expiry_months]
    if programme.expiry_mode == Programme.ExpiryMode.END_OF_NEXT_YEAR:
        return f"make_date(EXTRACT(YEAR FROM {local_date})::int + 2, 1, 1)", []
    return "NULL::date", []


_SWEEP = "pg_temp.loyalty_earn_sweep"  # this batch's due orders, dropped when the batch ends


def _earn_customers(
    programme: Programme, tiers: Sequence[Tier], customer_ids: list[int], result: EarnResult
) -> None:
    """One batch of the sweep, in the caller's transaction (which holds the sweep lock):

    1. the members of these customers locked, in id order;
    2. their due orders with the points each earns, into a temporary table (one pass over the
       orders; the points by PostgreSQL's exact numeric arithmetic with the formula of
       `rules.points_for_amount` / `rules.earn_multiplier` / `rules.lot_expiry`, which
       `tests/loyalty/test_services.py` holds to the same results);
    3. customers without a membership enrolled with their final balance (sign-up bonus, earnings,
       first-purchase bonus) in one INSERT, so a new member's row is written once, not updated;
    4. every earn entry in one INSERT (running balances by a window), the existing members'
       balances raised in one UPDATE ... FROM;
    5. first-purchase bonuses, then upgrades for whoever now qualifies for a higher tier."""
    entry_tier = _entry_tier(tiers)
    entry_multiplier = entry_tier.multiplier if entry_tier else Decimal("1")
    today = timezone.localdate()
    member, entry = _table(Member), _table(PointsEntry)
    signup = programme.signup_bonus
    first_bonus = programme.first_purchase_bonus
    customers = id_array(customer_ids)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_SWEEP}")
        cursor.execute(
            f"SELECT m.id FROM {member} AS m JOIN unnest(%s::bigint[]) AS s(id) ON s.id = m.customer_id "  # noqa: S608
            "ORDER BY m.id FOR UPDATE OF m",
            [customers],
        )
        due_sql, due_params = _due_sql(
            programme, scope="JOIN unnest(%s::bigint[]) AS s(id) ON s.id = o.customer_id"
        )
        excluded = [c for c in programme.excluded_categories if c]
        excluded_sql, excluded_params = "0", []
        if excluded:
            excluded_sql = (
                f"COALESCE((SELECT SUM(l.quantity * l.unit_price) FROM {_table(OrderLine)} AS l "  # noqa: S608
                "WHERE l.order_id = o.id AND l.category = ANY(%s)), 0)"
            )
            excluded_params = [excluded]
        campaign_sql, campaign_params = "1", []
        if programme.campaign_starts and programme.campaign_ends:
            campaign_sql = "CASE WHEN local_date BETWEEN %s AND %s THEN %s::numeric ELSE 1 END"
            campaign_params = [
                programme.campaign_starts,
                programme.campaign_ends,
                programme.campaign_multiplier,
            ]
        expiry_sql, expiry_params = _expiry_sql(programme, "local_date")
        rounding = ROUNDING_SQL[programme.rounding]
        cursor.execute(
            f"""CREATE TEMPORARY TABLE {_SWEEP} AS
            SELECT order_id, customer_id, member_id, member_id IS NULL AS new_member, tier_id, total_spent,
                   placed_at, amount,
                   GREATEST(0, {rounding}(
                       amount * %s::numeric * tier_multiplier
                       * CASE WHEN birthday_month = EXTRACT(MONTH FROM local_date) THEN %s::numeric ELSE 1 END
                       * {campaign_sql}))::int AS points,
                   {expiry_sql} AS expires_on
            FROM (
                SELECT o.id AS order_id, o.customer_id, m.id AS member_id, o.placed_at, c.total_spent,
                       CASE WHEN m.id IS NULL THEN %s::bigint ELSE m.tier_id END AS tier_id,
                       (o.placed_at AT TIME ZONE %s)::date AS local_date,
                       GREATEST(o.total - {excluded_sql}, 0) AS amount,
                       CASE WHEN m.id IS NULL THEN %s::numeric
                            ELSE COALESCE((SELECT t.multiplier FROM {_table(Tier)} AS t
                                           WHERE t.id = m.tier_id), 1)
                       END AS tier_multiplier,
                       EXTRACT(MONTH FROM c.birthday) AS birthday_month
                {due_sql}
            ) AS due""",  # noqa: S608 - table names from model metadata, values are parameters
            [
                programme.points_per_unit,
                programme.birthday_multiplier,
                *campaign_params,
                *expiry_params,
                entry_tier.pk if entry_tier else None,
                timezone.get_current_timezone_name(),
                *excluded_params,
                entry_multiplier,
                customers,
                *due_params,
            ],
        )
        if not cursor.rowcount:
            cursor.execute(f"DROP TABLE {_SWEEP}")
            return
        # Autovacuum never analyses a temporary table: without statistics PostgreSQL guesses 200
        # members and probes indexes once per row where a hash join over the table is cheaper.
        cursor.execute(f"ANALYZE {_SWEEP}")
        enrolled = 0
        if programme.auto_enrol:
            # New members, each with the balance the rest of this batch gives it.
            cursor.execute(
                f"""WITH joining AS (
                    SELECT customer_id, MIN(placed_at) AS joined_at,
                           COALESCE(SUM(points) FILTER (WHERE points > 0), 0) AS earned,
                           COUNT(*) FILTER (WHERE points > 0) AS earning
                    FROM {_SWEEP} WHERE new_member GROUP BY customer_id
                ), joined AS (
                    INSERT INTO {member}
                        (customer_id, number, status, joined_at, balance, tier_id, tier_since,
                         below_tier_since, created_at, updated_at)
                    SELECT customer_id, 'M' || lpad(customer_id::text, 8, '0'), 'active', joined_at,
                           %s + earned + CASE WHEN earning > 0 THEN %s ELSE 0 END, %s, %s, NULL, now(), now()
                    FROM joining ORDER BY customer_id
                    ON CONFLICT (customer_id) DO NOTHING
                    RETURNING id, customer_id
                ), recorded AS (
                    INSERT INTO {_table(TierChange)} (member_id, from_tier_id, to_tier_id, reason, at)
                    SELECT id, NULL, %s, 'joined', now() FROM joined ORDER BY id
                )
                UPDATE {_SWEEP} AS s SET member_id = joined.id FROM joined
                WHERE s.customer_id = joined.customer_id AND s.new_member""",  # noqa: S608
                [
                    signup,
                    first_bonus,
                    entry_tier.pk if entry_tier else None,
                    today if entry_tier else None,
                    entry_tier.pk if entry_tier else None,
                ],
            )
            # A customer enrolled by someone else meanwhile (ON CONFLICT): the next sweep earns it.
            cursor.execute(f"DELETE FROM {_SWEEP} WHERE member_id IS NULL")
            cursor.execute(f"SELECT COUNT(DISTINCT member_id) FROM {_SWEEP} WHERE new_member")
            enrolled = cursor.fetchone()[0]
            if enrolled and signup:
                cursor.execute(
                    f"""INSERT INTO {entry}
                            (member_id, kind, points, balance_after, remaining, expires_on, shortfall,
                             source, source_key, reason, occurred_at, created_at)
                        SELECT DISTINCT member_id, 'bonus', %s, %s, %s, %s::date, 0, 'rule',
                               'signup:' || member_id, 'signup', now(), now()
                        FROM {_SWEEP} WHERE new_member ORDER BY member_id""",  # noqa: S608
                    [signup, signup, signup, _expires_on(programme, today)],
                )
        else:
            cursor.execute(f"DELETE FROM {_SWEEP} WHERE member_id IS NULL")
        cursor.execute(
            f"""WITH written AS (
                INSERT INTO {entry}
                    (member_id, kind, points, balance_after, remaining, expires_on, shortfall, source,
                     source_key, order_id, amount, reason, occurred_at, created_at)
                SELECT s.member_id, 'earn', s.points,
                       CASE WHEN s.new_member THEN %s ELSE m.balance END
                       + SUM(s.points) OVER (PARTITION BY s.member_id ORDER BY s.placed_at, s.order_id),
                       s.points, s.expires_on, 0, 'order', '', s.order_id, s.amount, '', s.placed_at, now()
                FROM {_SWEEP} AS s JOIN {member} AS m ON m.id = s.member_id
                WHERE s.points > 0
                ORDER BY s.member_id, s.placed_at, s.order_id
                RETURNING points
            ), raised AS (
                UPDATE {member} AS m SET balance = m.balance + s.points, updated_at = now()
                FROM (SELECT member_id, SUM(points) AS points FROM {_SWEEP}
                      WHERE points > 0 AND NOT new_member GROUP BY member_id) AS s
                WHERE m.id = s.member_id
            )
            SELECT COUNT(*), COALESCE(SUM(points), 0) FROM written""",  # noqa: S608
            [signup],
        )
        orders, points = cursor.fetchone()
        bonuses = _first_purchase_bonuses(cursor, programme) if first_bonus and orders else 0
    result.enrolled += enrolled
    result.orders += int(orders)
    result.points += int(points)
    result.bonuses += bonuses
    if programme.tier_basis == Programme.TierBasis.SPEND:
        result.upgrades += _upgrade_tiers(_may_move_up(tiers), tiers)
    else:
        swept = f"m.id IN (SELECT member_id FROM {_SWEEP})"
        result.upgrades += _upgrade_tiers_in(swept, [], tiers, reason=TierChange.Reason.UPGRADE)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {_SWEEP}")


def _may_move_up(tiers: Sequence[Tier]) -> list[int]:
    """Of this batch's members, those whose customer's total spent reaches the least threshold above
    their tier (both read with the due orders, while the members were locked). The total spent (net
    of refunds, all time; kept by customers in the transaction of every order write, import and
    merge) bounds the 12-month spend from above, so the others cannot move up and are not aggregated
    (most of an import's members). Were it ever stale, the nightly evaluation still upgrades from
    the orders."""
    next_threshold = {}  # tier id (0: no tier) -> least threshold above it
    for current in [None, *tiers]:
        above = [t.threshold for t in tiers if current is None or t.rank > current.rank]
        if above:
            next_threshold[current.pk if current else 0] = min(above)
    if not next_threshold:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT DISTINCT s.member_id
            FROM {_SWEEP} AS s
            JOIN unnest(%s::bigint[], %s::numeric[]) AS n(tier_id, threshold)
                 ON n.tier_id = COALESCE(s.tier_id, 0)
            WHERE s.total_spent >= n.threshold""",  # noqa: S608
            [list(next_threshold), list(next_threshold.values())],
        )
        return [row[0] for row in cursor.fetchall()]


def _first_purchase_bonuses(cursor, programme: Programme) -> int:
    """The first-purchase bonus for the members whose first earnings are in this batch (keyed by the
    member: once, even if a later batch or sweep looks again). A member enrolled by this batch has it
    in the balance it was created with already; an existing member's balance is raised.

    One set-based statement whatever the batch size: "first earnings" is "no earn entry of the member
    outside this batch's orders", i.e. the member has no more earn entries than the batch just wrote
    for it (every sweep row with points wrote one). Only the batch's existing members are looked up,
    each by its own ledger index (at most `earned + 1` entries read); "once" is the unique (kind,
    source_key) index itself (ON CONFLICT DO NOTHING, only the rows written raise a balance).

    Both earlier forms were quadratic when the ledger's statistics lagged (a bulk load in one
    transaction, where autovacuum cannot analyse): a NOT EXISTS on the key compared every member of
    the batch with every bonus entry (3.4 s for 3,000 new members), and a join of the ledger with
    the batch's orders, estimated at a few rows, rescanned the batch's members once per earlier
    earn entry (minutes per 50,000-customer batch from 200,000 customers on). The per-member
    subquery has one plan whatever the estimates: an index probe per existing member, and no CTE is
    joined with another (the batch table's member ids are set after it was analysed, so PostgreSQL
    takes the batch for 200 members, and a join of two CTEs becomes a nested loop: quadratic). An
    existing member's balance becomes the one its bonus entry records; a new member's entry records
    the balance it was created with."""
    bonus = programme.first_purchase_bonus
    entry, member = _table(PointsEntry), _table(Member)
    sql = f"""
        WITH earning AS (
            SELECT member_id, bool_or(new_member) AS new_member, COUNT(*) AS earned
            FROM {_SWEEP} WHERE points > 0 GROUP BY member_id
        ), due AS (
            SELECT g.member_id, g.new_member FROM earning AS g
            WHERE g.new_member
               OR (SELECT COUNT(*) FROM (
                       SELECT 1 FROM {entry} AS e WHERE e.member_id = g.member_id AND e.kind = 'earn'
                       LIMIT g.earned + 1) AS seen) <= g.earned
        ), written AS (
            INSERT INTO {entry}
                (member_id, kind, points, balance_after, remaining, expires_on, shortfall, source,
                 source_key, reason, occurred_at, created_at)
            SELECT d.member_id, 'bonus', %s, CASE WHEN d.new_member THEN m.balance ELSE m.balance + %s END,
                   %s, %s::date, 0, 'rule', 'first_purchase:' || d.member_id, 'first_purchase', now(), now()
            FROM due AS d JOIN {member} AS m ON m.id = d.member_id
            ORDER BY d.member_id
            ON CONFLICT (kind, source_key) WHERE source_key <> '' DO NOTHING
            RETURNING member_id, balance_after
        ), raised AS (
            UPDATE {member} AS m SET balance = w.balance_after
            FROM written AS w
            WHERE m.id = w.member_id AND m.balance <> w.balance_after
        )
        SELECT COUNT(*) FROM written
    """  # noqa: S608
    expires_on = _expires_on(programme, timezone.localdate())
    cursor.execute(sql, [bonus, bonus, bonus, expires_on])
    return int(cursor.fetchone()[0])


# --------------------------------------------------------------------------------------------------
# Redeem, adjust, reverse
# --------------------------------------------------------------------------------------------------
@transaction.atomic
def points_redeem(
    *,
    actor,
    member: Member,
    points: int,
    source: str = PointsEntry.Source.REDEMPTION,
    source_key: str = "",
    reason: str = "",
) -> PointsEntry:
    """Spend `points` of an active member's balance (oldest-expiring first). A repeated `source_key`
    returns the entry already written (a retried request spends once). Raises ValidationError on
    `points` when the balance does not cover it."""
    points = _bounded_points(points)
    reason = _clean_reason(reason, required=False)
    if len(source_key) > 100:
        raise ValidationError({"source_key": [_("Use at most 100 characters.")]})
    locked = lock_member(member)
    _check_visible(actor, locked)
    existing = _existing(PointsEntry.Kind.REDEEM, source_key, locked)
    if existing is not None:
        return existing
    if locked.status != Member.Status.ACTIVE:
        raise ApplicationError(_("This membership is not active."), code="inactive")
    _expire_due_for([locked.pk], timezone.localdate())
    locked.refresh_from_db(fields=["balance"])
    programme = programme_get()
    if locked.balance < programme.minimum_redeem_balance:
        raise ValidationError(
            {
                "points": [
                    _("A member needs at least %(min)s points to redeem.")
                    % {"min": programme.minimum_redeem_balance}
                ]
            }
        )
    entry = debit(
        locked,
        kind=PointsEntry.Kind.REDEEM,
        points=points,
        source=source,
        source_key=source_key,
        reason=reason,
        actor=actor,
    )
    member.balance = locked.balance
    audit_record(
        actor=actor,
        action="loyalty.points_redeemed",
        target=locked,
        changes={"balance": {"old": locked.balance + points, "new": locked.balance}, "reason": reason},
    )
    return entry


def can_adjust(actor, points: int) -> bool:
    return user_has_role(actor, MANAGERS) or abs(points) <= programme_get().adjust_limit


@transaction.atomic
def points_adjust(*, actor, member: Member, points: int, reason: str) -> PointsEntry:
    """A manual correction with a reason, audited. Above the programme's limit only managers and
    admins may adjust; a deduction cannot exceed the balance."""
    points = _bounded_points(points, allow_negative=True)
    reason = _clean_reason(reason, required=True)
    locked = lock_member(member)
    _check_visible(actor, locked)
    programme = programme_get()
    if abs(points) > programme.adjust_limit and not user_has_role(actor, MANAGERS):
        raise ValidationError(
            {
                "points": [
                    _("Adjustments of more than %(limit)s points need a manager.")
                    % {"limit": programme.adjust_limit}
                ]
            }
        )
    old_balance = locked.balance
    if points > 0:
        entry = credit(
            locked,
            kind=PointsEntry.Kind.ADJUST,
            points=points,
            source=PointsEntry.Source.USER,
            reason=reason,
            actor=actor,
            programme=programme,
        )
    else:
        _expire_due_for([locked.pk], timezone.localdate())
        locked.refresh_from_db(fields=["balance"])
        old_balance = locked.balance
        entry = debit(
            locked,
            kind=PointsEntry.Kind.ADJUST,
            points=-points,
            source=PointsEntry.Source.USER,
            reason=reason,
            actor=actor,
        )
    member.balance = locked.balance
    audit_record(
        actor=actor,
        action="loyalty.points_adjusted",
        target=locked,
        changes={"balance": {"old": old_balance, "new": locked.balance}, "points": points, "reason": reason},
    )
    return entry


@transaction.atomic
def points_reverse(
    *,
    actor,
    member: Member,
    points: int,
    source: str,
    source_key: str,
    reason: str = "",
    order_id: int | None = None,
    amount: Decimal | None = None,
) -> PointsEntry:
    """Take back `points` (e.g. a refund): from the order's own lot first, then FIFO; what was already
    spent is recorded as the entry's shortfall, never as a negative balance. Keyed: once per key."""
    points = _bounded_points(points)
    locked = lock_member(member)
    existing = _existing(PointsEntry.Kind.REVERSE, source_key, locked)
    if existing is not None:
        return existing
    first_lot = None
    if order_id is not None:
        first_lot = (
            PointsEntry.objects.filter(order_id=order_id, kind=PointsEntry.Kind.EARN, member=locked)
            .values_list("pk", flat=True)
            .first()
        )
    return debit(
        locked,
        kind=PointsEntry.Kind.REVERSE,
        points=points,
        source=source,
        source_key=source_key,
        reason=_clean_reason(reason, required=False),
        actor=actor,
        order_id=order_id,
        amount=amount,
        allow_shortfall=True,
        first_lot=first_lot,
    )


def points_reverse_for_orders(*, customer_ids: Iterable[int] | None = None) -> int:
    """Reverse, in proportion, the points of earned orders that were refunded since (or before) they
    earned. Keyed by the order and its refunded total: the same state never reverses twice.
    Driven from the refunded orders (few) of the customers, each joined to its earn entry by the
    one-earn-per-order index, rather than from every earn entry.

    What is due is `rules.reversal_due` per order; the members are then taken `REVERSE_BATCH` at a
    time (one transaction each, locked in id order) and each reversal is `points_reverse`'s debit
    (the order's own lot first, then FIFO by `rules.consume`, the rest recorded as shortfall) worked
    out in memory and written with one INSERT, one lot UPDATE and one balance UPDATE per batch. One
    `points_reverse` call per order (a dozen statements and a commit each) took 25 ms a reversal:
    the first catch-up after loading a tenant with 10,000,000 orders would have run for hours."""
    scope = ""
    params: list[Any] = []
    if customer_ids is not None:
        # = ANY: PostgreSQL may scan the orders testing each against a hash of the ids (no index
        # covers refunds) rather than probe the customer index once per named customer.
        scope = "AND o.customer_id = ANY(%s::bigint[])"
        params.append(id_array(customer_ids))
    sql = f"""
        SELECT e.member_id, o.id, e.id, e.points, o.total, o.refunded_total,
               COALESCE((SELECT SUM(-r.points + r.shortfall) FROM {_table(PointsEntry)} AS r
                         WHERE r.order_id = o.id AND r.kind = 'reverse'), 0)
        FROM {_table(Order)} AS o
        JOIN {_table(PointsEntry)} AS e ON e.order_id = o.id AND e.kind = 'earn'
        WHERE o.refunded_total > 0 {scope}
        ORDER BY e.member_id, o.id
    """  # noqa: S608 - table names from model metadata, values are parameters
    with transaction.atomic(), connection.cursor() as cursor:
        _without_jit(cursor)
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    due_by_member: dict[int, list[tuple[int, int, int, Decimal]]] = {}
    for member_id, order_id, earn_id, earned, total, refunded, reversed_already in rows:
        due = rules.reversal_due(
            earned=earned, total=total, refunded=refunded, already_reversed=reversed_already
        )
        if due > 0:
            due_by_member.setdefault(member_id, []).append((order_id, earn_id, due, refunded))
    member_ids = sorted(due_by_member)
    count = 0
    for start in range(0, len(member_ids), REVERSE_BATCH):
        with transaction.atomic():
            count += _reverse_for_members(
                {pk: due_by_member[pk] for pk in member_ids[start : start + REVERSE_BATCH]}
            )
    return count


def _reverse_for_members(due_by_member: Mapping[int, list[tuple[int, int, int, Decimal]]]) -> int:
    """One batch of `points_reverse_for_orders`, in the caller's transaction: the members and their
    open lots locked, the reversals already written (same key) skipped, the rest debited."""
    entry, member = _table(PointsEntry), _table(Member)
    ids = id_array(due_by_member)
    keys = {
        f"order:{order_id}:refunded:{refunded}": member_id
        for member_id, dues in due_by_member.items()
        for order_id, _earn, _due, refunded in dues
    }
    with connection.cursor() as cursor:
        _without_jit(cursor)
        cursor.execute(
            f"SELECT id, balance FROM {member} WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE",  # noqa: S608
            [ids],
        )
        balances = dict(cursor.fetchall())
        cursor.execute(
            f"SELECT source_key, member_id FROM {entry} "  # noqa: S608
            "WHERE kind = 'reverse' AND source_key <> '' AND source_key = ANY(%s::text[])",
            [list(keys)],
        )
        written = dict(cursor.fetchall())
        if any(keys[key] != member_id for key, member_id in written.items()):
            raise ApplicationError(_("This reference was already used for another member."), code="key_used")
        cursor.execute(
            f"SELECT id, member_id, remaining, expires_on FROM {entry} "  # noqa: S608
            "WHERE member_id = ANY(%s::bigint[]) AND remaining > 0 ORDER BY id FOR UPDATE",
            [ids],
        )
        lots: dict[int, list[rules.Lot]] = {}
        for lot_id, member_id, remaining, expires_on in cursor.fetchall():
            lots.setdefault(member_id, []).append(rules.Lot(lot_id, remaining, expires_on))
    new_rows: list[tuple] = []
    taken_from: dict[int, int] = {}
    new_balances: dict[int, int] = {}
    for member_id, dues in due_by_member.items():
        if member_id not in balances:  # the member was deleted meanwhile
            continue
        balance = balances[member_id]
        open_lots = {lot.id: lot for lot in lots.get(member_id, [])}
        for order_id, earn_id, due, refunded in dues:
            key = f"order:{order_id}:refunded:{refunded}"
            if key in written:
                continue
            points = _bounded_points(due)
            taken, shortfall = rules.consume(list(open_lots.values()), points, first=earn_id)
            for lot_id, take in taken:
                lot = open_lots[lot_id]
                open_lots[lot_id] = rules.Lot(lot.id, lot.remaining - take, lot.expires_on)
                taken_from[lot_id] = taken_from.get(lot_id, 0) + take
            balance -= points - shortfall
            new_rows.append((member_id, shortfall - points, balance, shortfall, key, order_id, refunded))
        new_balances[member_id] = balance
    if not new_rows:
        return 0
    columns = list(zip(*new_rows, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {entry}
                    (member_id, kind, points, balance_after, remaining, expires_on, shortfall, source,
                     source_key, order_id, amount, reason, occurred_at, created_at)
                SELECT r.member_id, 'reverse', r.points, r.balance_after, 0, NULL, r.shortfall, %s,
                       r.source_key, r.order_id, r.amount, 'refund', now(), now()
                FROM unnest(%s::bigint[], %s::int[], %s::int[], %s::int[], %s::text[], %s::bigint[],
                            %s::numeric[]) WITH ORDINALITY
                     AS r(member_id, points, balance_after, shortfall, source_key, order_id, amount, n)
                ORDER BY r.n""",  # noqa: S608
            [PointsEntry.Source.REFUND, *[list(column) for column in columns]],
        )
        if taken_from:
            cursor.execute(
                f"UPDATE {entry} AS e SET remaining = e.remaining - t.take "  # noqa: S608
                "FROM unnest(%s::bigint[], %s::int[]) AS t(id, take) WHERE e.id = t.id",
                [list(taken_from), list(taken_from.values())],
            )
        cursor.execute(
            f"UPDATE {member} AS m SET balance = t.balance, updated_at = now() "  # noqa: S608
            "FROM unnest(%s::bigint[], %s::int[]) AS t(id, balance) WHERE m.id = t.id",
            [list(new_balances), list(new_balances.values())],
        )
    return len(new_rows)


# --------------------------------------------------------------------------------------------------
# Expiry
# --------------------------------------------------------------------------------------------------
def _expire_due_for(
    member_ids: Sequence[int], today: date, *, lot_ids: Sequence[int] | None = None
) -> tuple[int, int]:
    """Expire every lot of these (already locked) members whose day has come, in one statement:
    an expire entry per lot (keyed by the lot: never twice), the lot emptied, the balance lowered.
    `lot_ids`: the due lots when the caller has listed them already (the nightly run), read by
    primary key instead of searched among every due lot of the tenant; each is checked again here
    (still due, still open) under the members' locks. Returns (entries, points)."""
    entry, member = _table(PointsEntry), _table(Member)
    if lot_ids is None:
        lots_sql = "member_id = ANY(%s::bigint[]) AND remaining > 0 AND expires_on <= %s"
        params = [id_array(member_ids), today]
    else:
        lots_sql = "id = ANY(%s::bigint[]) AND remaining > 0 AND expires_on <= %s"
        params = [id_array(lot_ids), today]
    sql = f"""
        WITH lots AS (
            SELECT id, member_id, remaining, expires_on FROM {entry} WHERE {lots_sql}
        ), emptied AS (
            UPDATE {entry} AS e SET remaining = 0 FROM lots WHERE e.id = lots.id
        ), written AS (
            INSERT INTO {entry}
                (member_id, kind, points, balance_after, remaining, expires_on, shortfall, source,
                 source_key, reason, occurred_at, created_at)
            SELECT lots.member_id, 'expire', -lots.remaining,
                   m.balance - SUM(lots.remaining) OVER (
                       PARTITION BY lots.member_id ORDER BY lots.expires_on, lots.id),
                   0, lots.expires_on, 0, 'rule', 'lot:' || lots.id, 'expired', now(), now()
            FROM lots JOIN {member} AS m ON m.id = lots.member_id
            ORDER BY lots.member_id, lots.expires_on, lots.id
        ), lowered AS (
            UPDATE {member} AS m SET balance = m.balance - s.points, updated_at = now()
            FROM (SELECT member_id, SUM(remaining) AS points FROM lots GROUP BY member_id) AS s
            WHERE m.id = s.member_id
        )
        SELECT COUNT(*), COALESCE(SUM(remaining), 0) FROM lots
    """  # noqa: S608 - table names from model metadata, values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        count, points = cursor.fetchone()
    return int(count), int(points)


def points_expire(*, today: date | None = None, batch_size: int = EXPIRY_BATCH) -> dict[str, int]:
    """The nightly expiry: every lot whose day has come, in batches of members (each batch one
    transaction holding those members' locks for a moment only). Idempotent: an expired lot has
    nothing left and its expire entry is unique, so a run killed half-way and started again expires
    each lot once.

    The due lots are listed once (one range scan of the open-lots index); each batch then reads its
    own lots by primary key, so the run costs what it writes, not batches x every due lot."""
    today = today or timezone.localdate()
    with transaction.atomic(), connection.cursor() as cursor:
        _without_jit(cursor)
        cursor.execute(
            f"SELECT member_id, id FROM {_table(PointsEntry)} "  # noqa: S608
            "WHERE remaining > 0 AND expires_on <= %s ORDER BY member_id, id",
            [today],
        )
        due = cursor.fetchall()
    lots: dict[int, list[int]] = {}
    for member_id, lot_id in due:
        lots.setdefault(member_id, []).append(lot_id)
    member_ids = list(lots)  # in id order: members are locked in that order
    totals = {"members": 0, "entries": 0, "points": 0}
    for start in range(0, len(member_ids), batch_size):
        chunk = member_ids[start : start + batch_size]
        with transaction.atomic():
            with connection.cursor() as cursor:
                _without_jit(cursor)
                cursor.execute(
                    f"SELECT id FROM {_table(Member)} WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE",  # noqa: S608
                    [id_array(chunk)],
                )
            entries, points = _expire_due_for(
                chunk, today, lot_ids=[lot for member_id in chunk for lot in lots[member_id]]
            )
        totals["members"] += len(chunk)
        totals["entries"] += entries
        totals["points"] += points
    return totals


def points_expiring(*, member: Member, today: date | None = None, days: int = 30) -> int:
    today = today or timezone.localdate()
    lots = PointsEntry.objects.filter(member=member, remaining__gt=0, expires_on__isnull=False).values_list(
        "id", "remaining", "expires_on"
    )
    return rules.expiring_between((rules.Lot(*row) for row in lots), today, today + timedelta(days=days))


# --------------------------------------------------------------------------------------------------
# Tiers
# --------------------------------------------------------------------------------------------------
def _write_tier_changes(
    changes: list[tuple[int, int | None, int | None, str, Decimal | None]], today: date
) -> None:
    """changes: (member id, from tier id, to tier id, reason, qualifying value)."""
    if not changes:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_table(Member)} AS m SET tier_id = u.tier, tier_since = %s, below_tier_since = NULL, "  # noqa: S608
            "updated_at = now() FROM unnest(%s::bigint[], %s::bigint[]) AS u(id, tier) WHERE m.id = u.id",
            [today, [c[0] for c in changes], [c[2] for c in changes]],
        )
        cursor.execute(
            f"INSERT INTO {_table(TierChange)} "  # noqa: S608
            "(member_id, from_tier_id, to_tier_id, reason, qualifying_value, at) "
            "SELECT *, now() FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[], "
            "%s::numeric[])",
            [[c[index] for c in changes] for index in range(5)],
        )


def _upgrade_tiers(
    member_ids: Sequence[int], tiers: Sequence[Tier], *, reason: str = TierChange.Reason.UPGRADE
) -> int:
    """Upgrade at once the members who now qualify for a higher tier (never a downgrade here)."""
    if not member_ids:
        return 0
    return _upgrade_tiers_in("m.id = ANY(%s::bigint[])", [id_array(member_ids)], tiers, reason=reason)


def _upgrade_tiers_in(member_filter: str, params: list, tiers: Sequence[Tier], *, reason: str) -> int:
    """`_upgrade_tiers` for the members matching `member_filter` (SQL on member alias m). PostgreSQL
    returns only the members whose qualifying value reaches a threshold above their tier's (the least
    such threshold: exactly those `rules.qualify` can move up), so the rules run on the few that change."""
    if not tiers:
        return 0
    programme = programme_get()
    qualifying_sql, qualifying_params = qualifying_values_sql(member_filter, params, programme=programme)
    sql = f"""
        SELECT q.id, m.tier_id, q.value
        FROM ({qualifying_sql}) AS q(id, value)
        JOIN {_table(Member)} AS m ON m.id = q.id
        LEFT JOIN {_table(Tier)} AS current ON current.id = m.tier_id
        WHERE q.value >= (SELECT MIN(t.threshold) FROM {_table(Tier)} AS t
                          WHERE t.rank > COALESCE(current.rank, -1))
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, qualifying_params)
        rows = cursor.fetchall()
    by_rank = {tier.rank: tier for tier in tiers}
    by_id = {tier.pk: tier for tier in tiers}
    changes = []
    for pk, tier_id, value in rows:
        value = Decimal(value)
        rank = rules.qualify(value, _thresholds(tiers))
        current_rank = by_id[tier_id].rank if tier_id in by_id else -1
        if rank is not None and rank > current_rank:
            changes.append((pk, tier_id, by_rank[rank].pk, reason, value))
    _write_tier_changes(changes, timezone.localdate())
    return len(changes)


def tiers_evaluate(*, today: date | None = None) -> dict[str, int]:
    """The periodic evaluation of every active member: upgrades at once, downgrades only after the
    grace period (the first day a member no longer qualified is kept in `below_tier_since`).

    One statement: the rolling 12-month qualifying value per member (one aggregate), the rank it
    qualifies for and the decision of `rules.qualify` / `rules.evaluate` written in SQL (a test
    holds the two to the same results on random data), then one UPDATE ... FROM for the members
    whose tier changes, one INSERT of their history rows and one UPDATE of the downgrade clocks
    that start or stop. Idempotent for a given day."""
    today = today or timezone.localdate()
    programme = programme_get()
    if not Tier.objects.exists():
        return {"upgrades": 0, "downgrades": 0, "waiting": 0}
    qualifying_sql, qualifying_params = qualifying_values_sql(
        "m.status = 'active'", [], today=today, programme=programme
    )
    member, tier, history = _table(Member), _table(Tier), _table(TierChange)
    sql = f"""
        WITH qualifying (id, value) AS ({qualifying_sql}
        ), ranked AS (
            SELECT m.id, m.tier_id, m.below_tier_since, q.value,
                   COALESCE(current.rank, -1) AS current_rank,
                   COALESCE((SELECT MAX(t.rank) FROM {tier} AS t WHERE q.value >= t.threshold), -1)
                       AS qualified_rank
            FROM qualifying AS q
            JOIN {member} AS m ON m.id = q.id
            LEFT JOIN {tier} AS current ON current.id = m.tier_id
        ), decided AS (
            SELECT r.*,
                   CASE WHEN r.qualified_rank > r.current_rank THEN 1
                        WHEN r.qualified_rank < r.current_rank
                             AND %s::date - COALESCE(r.below_tier_since, %s::date) >= %s THEN -1
                        ELSE 0 END AS change,
                   CASE WHEN r.qualified_rank < r.current_rank
                        THEN COALESCE(r.below_tier_since, %s::date) END AS since
            FROM ranked AS r
        ), changed AS (
            UPDATE {member} AS m
            SET tier_id = (SELECT t.id FROM {tier} AS t WHERE t.rank = d.qualified_rank),
                tier_since = %s::date, below_tier_since = NULL, updated_at = now()
            FROM decided AS d
            WHERE m.id = d.id AND d.change <> 0
            RETURNING m.id, d.tier_id AS from_tier_id, m.tier_id AS to_tier_id, d.change, d.value
        ), recorded AS (
            INSERT INTO {history} (member_id, from_tier_id, to_tier_id, reason, qualifying_value, at)
            SELECT id, from_tier_id, to_tier_id,
                   CASE WHEN change > 0 THEN 'upgrade' ELSE 'downgrade' END, value, now()
            FROM changed ORDER BY id
        ), clocks AS (
            UPDATE {member} AS m SET below_tier_since = d.since
            FROM decided AS d
            WHERE m.id = d.id AND d.change = 0 AND d.since IS DISTINCT FROM d.below_tier_since
        )
        SELECT COUNT(*) FILTER (WHERE change > 0), COUNT(*) FILTER (WHERE change < 0),
               COUNT(*) FILTER (WHERE change = 0 AND since IS NOT NULL)
        FROM decided
    """  # noqa: S608 - table names from model metadata, values are parameters
    params = [
        *qualifying_params,
        today,
        today,
        programme.tier_grace_days,
        today,
        today,
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        _without_jit(cursor)
        cursor.execute(sql, params)
        upgrades, downgrades, waiting = cursor.fetchone()
    return {"upgrades": int(upgrades), "downgrades": int(downgrades), "waiting": int(waiting)}


# --------------------------------------------------------------------------------------------------
# Balance check
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BalanceDifference:
    member_id: int
    number: str
    balance: int
    ledger: int
    lots: int


def member_balances_check(*, member_ids: Sequence[int] | None = None) -> list[BalanceDifference]:
    """Recompute every balance from the ledger (and from the open lots) and list the differences."""
    where, params = "", []
    if member_ids is not None:
        where, params = "WHERE m.id = ANY(%s)", [list(member_ids)]
    sql = f"""
        SELECT m.id, m.number, m.balance, COALESCE(s.ledger, 0), COALESCE(s.lots, 0)
        FROM {_table(Member)} AS m
        LEFT JOIN (
            SELECT member_id, SUM(points) AS ledger, SUM(remaining) AS lots
            FROM {_table(PointsEntry)} GROUP BY member_id
        ) AS s ON s.member_id = m.id
        {where}
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [BalanceDifference(*row) for row in cursor.fetchall() if not (row[2] == row[3] == row[4])]


# --------------------------------------------------------------------------------------------------
# Merge hook (registered in integration.py)
# --------------------------------------------------------------------------------------------------
def merge_move(survivor: Customer, merged: Customer) -> dict:
    """The merged customer's membership joins the survivor's: its ledger rows move to the survivor's
    member (balance added, the merged member closed), or the membership itself moves when only the
    merged customer was a member; the survivor's tier is re-evaluated (upgrade only)."""
    members = {
        m.customer_id: m
        for m in Member.objects.select_for_update().filter(customer__in=[survivor, merged]).order_by("pk")
    }
    kept, gone = members.get(survivor.pk), members.get(merged.pk)
    if gone is None:
        return {}
    if kept is None:
        Member.objects.filter(pk=gone.pk).update(customer=survivor)
        _upgrade_tiers([gone.pk], _tiers(), reason=TierChange.Reason.MERGE)
        return {"member_moved": gone.pk}
    entry_ids = list(PointsEntry.objects.filter(member=gone).values_list("pk", flat=True))
    PointsEntry.objects.filter(pk__in=entry_ids).update(member=kept)
    info = {
        "entries": entry_ids,
        "from_member": gone.pk,
        "to_member": kept.pk,
        "status": gone.status,
        "balance": gone.balance,
        "survivor_tier": kept.tier_id,
    }
    Member.objects.filter(pk=kept.pk).update(balance=kept.balance + gone.balance)
    Member.objects.filter(pk=gone.pk).update(balance=0, status=Member.Status.CLOSED)
    # The better of the two tiers, then whatever the joined history qualifies for.
    gone_rank = gone.tier.rank if gone.tier_id else -1
    kept_rank = kept.tier.rank if kept.tier_id else -1
    if gone_rank > kept_rank:
        _write_tier_changes(
            [(kept.pk, kept.tier_id, gone.tier_id, TierChange.Reason.MERGE, None)], timezone.localdate()
        )
    _upgrade_tiers([kept.pk], _tiers(), reason=TierChange.Reason.MERGE)
    return info


def merge_undo(survivor: Customer, merged: Customer, info: dict) -> None:
    if not info:
        return
    if "member_moved" in info:
        Member.objects.filter(pk=info["member_moved"], customer=survivor).update(customer=merged)
        return
    kept = Member.objects.select_for_update().get(pk=info["to_member"])
    gone = Member.objects.select_for_update().get(pk=info["from_member"])
    PointsEntry.objects.filter(pk__in=info["entries"], member=kept).update(member=gone)
    for member in (kept, gone):
        sums = PointsEntry.objects.filter(member=member).values_list("points", flat=True)
        member.balance = sum(sums)
    if kept.balance < 0 or gone.balance < 0:
        raise ApplicationError(
            _("Points moved by the merge were spent since; the merge cannot be undone."), code="points_spent"
        )
    Member.objects.filter(pk=kept.pk).update(
        balance=kept.balance, tier_id=info.get("survivor_tier", kept.tier_id)
    )
    Member.objects.filter(pk=gone.pk).update(balance=gone.balance, status=info["status"])


# --------------------------------------------------------------------------------------------------
# Expiry reminders
# --------------------------------------------------------------------------------------------------
REMINDER_DAYS = 30


@dataclass(frozen=True)
class ExpiryReminder:
    member_id: int
    customer_id: int
    points: int
    expires_on: date


def points_expiry_reminders_due(*, today: date | None = None) -> list[ExpiryReminder]:
    """Members with points whose expiry day is exactly REMINDER_DAYS away: each lot is announced on
    one day only, so the nightly run tells a member once per expiry day."""
    today = today or timezone.localdate()
    day = today + timedelta(days=REMINDER_DAYS)
    rows = (
        PointsEntry.objects.filter(remaining__gt=0, expires_on=day, member__status=Member.Status.ACTIVE)
        .values_list("member_id", "member__customer_id")
        .order_by("member_id")
        .annotate(points=models.Sum("remaining"))
    )
    return [ExpiryReminder(member_id, customer_id, points, day) for member_id, customer_id, points in rows]


EXPIRY_NOTIFICATION_KIND = "loyalty.points_expiring"


def points_expiry_reminders(*, today: date | None = None) -> int:
    """Tell each member's owner (the sales rep who looks after the customer), 30 days ahead, that the
    member's points expire, through crm.notifications (bell and e-mail by their preference).
    Idempotent: one notification per owner, member and expiry day (`notify_many` skips existing
    keys), so a rerun of the nightly task notifies nobody twice. Members whose customer has no owner
    are counted but not notified. Returns how many notifications were created."""
    from django.urls import reverse
    from django.utils.translation import gettext

    from crm.notifications.services import NotificationSpec, notify_many

    reminders = points_expiry_reminders_due(today=today)
    if not reminders:
        return 0
    customers = dict(
        Customer.objects.filter(pk__in=[r.customer_id for r in reminders], deleted_at__isnull=True)
        .exclude(owner__isnull=True)
        .values_list("pk", "owner_id")
    )
    names = dict(Customer.objects.filter(pk__in=list(customers)).values_list("pk", "name"))
    specs = [
        NotificationSpec(
            recipient=customers[r.customer_id],
            key=f"loyalty.expiring:{r.member_id}:{r.expires_on.isoformat()}",
            title=gettext("%(points)s points of %(name)s expire on %(date)s")
            % {"points": r.points, "name": names[r.customer_id], "date": r.expires_on.isoformat()},
            url=reverse("loyalty:member", args=[r.member_id]),
        )
        for r in reminders
        if r.customer_id in customers
    ]
    return len(notify_many(kind=EXPIRY_NOTIFICATION_KIND, items=specs))
