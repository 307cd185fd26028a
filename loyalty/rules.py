"""The loyalty maths, without Django: earning with rounding and multipliers, expiry dates, FIFO
consumption of lots, proportional reversal on refunds, tier qualification and evaluation.

Plain values in, plain values out (Decimal, int, date, numpy arrays), so every rule is tested on its
own (`tests/loyalty/test_rules.py`) and the services only move data between the database and here.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

import numpy as np

ROUNDING = {"down": ROUND_FLOOR, "nearest": ROUND_HALF_UP, "up": ROUND_CEILING}
ONE = Decimal("1")


# --------------------------------------------------------------------------------------------------
# Earning
# --------------------------------------------------------------------------------------------------
def earn_multiplier(
    *,
    tier_multiplier: Decimal = ONE,
    placed_on: date | None = None,
    birthday_month: int | None = None,
    birthday_multiplier: Decimal = ONE,
    campaign: tuple[date | None, date | None, Decimal] | None = None,
) -> Decimal:
    """The product of the multipliers that apply to one order: the member's tier, the birthday month
    (the order placed in the member's birthday month) and a campaign whose date range (inclusive)
    contains the order date."""
    multiplier = Decimal(tier_multiplier)
    if placed_on is not None and birthday_month and placed_on.month == birthday_month:
        multiplier *= Decimal(birthday_multiplier)
    if campaign is not None and placed_on is not None:
        starts, ends, campaign_multiplier = campaign
        if starts is not None and ends is not None and starts <= placed_on <= ends:
            multiplier *= Decimal(campaign_multiplier)
    return multiplier


def points_for_amount(
    amount: Decimal, *, rate: Decimal, multiplier: Decimal = ONE, rounding: str = "down"
) -> int:
    """Points earned on `amount` of money at `rate` points per unit, times `multiplier`, rounded once
    at the end (never below zero)."""
    if amount <= 0 or rate <= 0 or multiplier <= 0:
        return 0
    exact = Decimal(amount) * Decimal(rate) * Decimal(multiplier)
    return max(0, int(exact.to_integral_value(rounding=ROUNDING[rounding])))


# --------------------------------------------------------------------------------------------------
# Expiry
# --------------------------------------------------------------------------------------------------
def add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def lot_expiry(earned_on: date, *, mode: str, months: int = 12) -> date | None:
    """The first day a lot earned on `earned_on` is no longer usable: `months` after earning, or
    1 January two years on ("end of the following year"), or None (never)."""
    if mode == "months":
        return add_months(earned_on, months)
    if mode == "end_of_next_year":
        return date(earned_on.year + 2, 1, 1)
    return None


@dataclass(frozen=True)
class Lot:
    id: int
    remaining: int
    expires_on: date | None


def fifo_order(lots: Iterable[Lot]) -> list[Lot]:
    """Lots in the order they are spent: soonest expiry first (never-expiring last), then oldest."""
    return sorted(lots, key=lambda lot: (lot.expires_on is None, lot.expires_on or date.max, lot.id))


def consume(
    lots: Sequence[Lot], points: int, *, first: int | None = None
) -> tuple[list[tuple[int, int]], int]:
    """Take `points` from `lots` (lot `first` before the others, e.g. the order a refund reverses,
    then FIFO). Returns ([(lot id, points taken)], shortfall): the shortfall is what the lots could
    not cover; the caller decides whether that is an error (a redemption) or recorded (a reversal)."""
    if points < 0:
        raise ValueError("points to consume must not be negative")
    ordered = fifo_order(lot for lot in lots if lot.remaining > 0)
    if first is not None:
        ordered.sort(key=lambda lot: lot.id != first)  # stable: FIFO among the others
    taken: list[tuple[int, int]] = []
    left = points
    for lot in ordered:
        if left == 0:
            break
        take = min(lot.remaining, left)
        taken.append((lot.id, take))
        left -= take
    return taken, left


def expired_lots(lots: Iterable[Lot], today: date) -> list[Lot]:
    """The lots with points left whose expiry day has come."""
    return [
        lot for lot in lots if lot.remaining > 0 and lot.expires_on is not None and lot.expires_on <= today
    ]


def expiring_between(lots: Iterable[Lot], start: date, end: date) -> int:
    """Points that will expire from `start` (inclusive) to `end` (inclusive), e.g. the next 30 days."""
    return sum(
        lot.remaining
        for lot in lots
        if lot.remaining > 0 and lot.expires_on is not None and start <= lot.expires_on <= end
    )


# --------------------------------------------------------------------------------------------------
# Reversal on refunds
# --------------------------------------------------------------------------------------------------
def reversal_due(*, earned: int, total: Decimal, refunded: Decimal, already_reversed: int) -> int:
    """Points still to take back for an order that earned `earned` on `total` and of which `refunded`
    has been refunded so far, given `already_reversed` (taken back plus recorded shortfall).

    The target is proportional and rounded up (a refund of any part takes back at least its share,
    so a full refund takes back everything); the function depends only on the current state, so
    refunds arriving one by one or all at once end in the same place."""
    if earned <= 0 or total <= 0 or refunded <= 0:
        return 0
    share = min(Decimal(refunded) / Decimal(total), ONE)
    target = int((Decimal(earned) * share).to_integral_value(rounding=ROUND_CEILING))
    return max(0, min(target, earned) - already_reversed)


# --------------------------------------------------------------------------------------------------
# Tiers
# --------------------------------------------------------------------------------------------------
def qualify(value: Decimal | float, thresholds: Sequence[tuple[int, Decimal | float]]) -> int | None:
    """The rank of the highest tier whose threshold `value` reaches ((rank, threshold) pairs), or None."""
    best = None
    for rank, threshold in thresholds:
        if value >= threshold and (best is None or rank > best):
            best = rank
    return best


@dataclass(frozen=True)
class TierDecision:
    rank: int | None
    below_since: date | None
    change: str | None  # "upgrade", "downgrade" or None


def evaluate(
    *, current: int | None, qualified: int | None, below_since: date | None, today: date, grace_days: int
) -> TierDecision:
    """The periodic evaluation of one member. Upgrades happen at once; a member who no longer
    qualifies keeps the tier until `grace_days` have passed since the first evaluation that found
    it so (`below_since`), then drops to the tier they qualify for; qualifying again clears the clock."""
    cur = -1 if current is None else current
    new = -1 if qualified is None else qualified
    if new > cur:
        return TierDecision(qualified, None, "upgrade")
    if new == cur:
        return TierDecision(current, None, None)
    since = below_since or today
    if today - since >= timedelta(days=grace_days):
        return TierDecision(qualified, None, "downgrade")
    return TierDecision(current, since, None)


def qualify_many(values: np.ndarray, thresholds: Sequence[tuple[int, float]]) -> np.ndarray:
    """`qualify` for an array of values: the rank per value, -1 where no tier is reached."""
    ranks = np.full(len(values), -1, dtype=np.int64)
    for rank, threshold in sorted(thresholds, key=lambda item: item[0]):
        ranks = np.where(np.asarray(values, dtype=float) >= float(threshold), np.maximum(ranks, rank), ranks)
    return ranks


def evaluate_many(
    *,
    current: np.ndarray,
    qualified: np.ndarray,
    below_since: np.ndarray,
    today: date,
    grace_days: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`evaluate` over arrays (ranks with -1 for none; `below_since` as days since 1970, -1 for none).
    Returns (new rank, new below_since, change code: 1 upgrade, -1 downgrade, 0 none)."""
    today_days = (today - date(1970, 1, 1)).days
    current = np.asarray(current, dtype=np.int64)
    qualified = np.asarray(qualified, dtype=np.int64)
    below = np.asarray(below_since, dtype=np.int64)
    since = np.where(below >= 0, below, today_days)
    up = qualified > current
    down_now = (qualified < current) & (today_days - since >= grace_days)
    waiting = (qualified < current) & ~down_now
    rank = np.where(up | down_now, qualified, current)
    new_below = np.where(waiting, since, -1)
    change = np.where(up, 1, np.where(down_now, -1, 0))
    return rank, new_below, change


@dataclass(frozen=True)
class Progress:
    next_rank: int | None
    needed: Decimal  # how much more qualifying value the next tier needs
    fraction: float  # 0..1 of the way from the current tier's threshold to the next one


def progress(value: Decimal, thresholds: Sequence[tuple[int, Decimal]], current: int | None) -> Progress:
    """How far a member is from the next tier above `current`."""
    ordered = sorted(thresholds)
    above = [(rank, threshold) for rank, threshold in ordered if current is None or rank > current]
    if not above:
        return Progress(None, Decimal("0"), 1.0)
    next_rank, next_threshold = above[0]
    floor = Decimal("0")
    for rank, threshold in ordered:
        if current is not None and rank == current:
            floor = Decimal(threshold)
    span = Decimal(next_threshold) - floor
    done = Decimal(value) - floor
    fraction = 1.0 if span <= 0 else float(max(Decimal("0"), min(ONE, done / span)))
    return Progress(next_rank, max(Decimal("0"), Decimal(next_threshold) - Decimal(value)), fraction)
