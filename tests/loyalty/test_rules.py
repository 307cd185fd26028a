"""The loyalty maths on its own (no database): earning, expiry, FIFO, reversal, tiers."""

from datetime import date
from decimal import Decimal

import numpy as np
import pytest

from loyalty import rules
from loyalty.rules import Lot

D = Decimal


@pytest.mark.parametrize(
    ("amount", "rate", "multiplier", "rounding", "expected"),
    [
        (D("99.99"), D("1"), D("1"), "down", 99),
        (D("99.50"), D("1"), D("1"), "nearest", 100),
        (D("99.49"), D("1"), D("1"), "nearest", 99),
        (D("99.01"), D("1"), D("1"), "up", 100),
        (D("100.00"), D("1"), D("1.5"), "down", 150),
        (D("33.33"), D("3"), D("1"), "down", 99),  # rounded once, at the end
        (D("0"), D("1"), D("2"), "up", 0),
        (D("10"), D("0"), D("2"), "up", 0),
    ],
)
def test_points_for_amount(amount, rate, multiplier, rounding, expected):
    assert rules.points_for_amount(amount, rate=rate, multiplier=multiplier, rounding=rounding) == expected


def test_multipliers_combine_birthday_campaign_and_tier():
    campaign = (date(2026, 11, 11), date(2026, 11, 12), D("2"))
    base = {"tier_multiplier": D("1.5"), "birthday_multiplier": D("2"), "campaign": campaign}
    assert rules.earn_multiplier(placed_on=date(2026, 11, 11), birthday_month=11, **base) == D("6")
    assert rules.earn_multiplier(placed_on=date(2026, 11, 13), birthday_month=11, **base) == D("3")
    assert rules.earn_multiplier(placed_on=date(2026, 11, 12), birthday_month=5, **base) == D("3")
    assert rules.earn_multiplier(placed_on=date(2026, 10, 1), birthday_month=None, **base) == D("1.5")


def test_lot_expiry_modes():
    assert rules.lot_expiry(date(2026, 1, 31), mode="months", months=1) == date(2026, 2, 28)
    assert rules.lot_expiry(date(2024, 2, 29), mode="months", months=12) == date(2025, 2, 28)
    assert rules.lot_expiry(date(2026, 3, 15), mode="months", months=24) == date(2028, 3, 15)
    assert rules.lot_expiry(date(2026, 12, 31), mode="end_of_next_year") == date(2028, 1, 1)
    assert rules.lot_expiry(date(2026, 1, 1), mode="never") is None


def test_consume_is_fifo_by_expiry_and_reports_shortfall():
    lots = [
        Lot(3, 50, date(2027, 5, 1)),
        Lot(1, 30, None),
        Lot(2, 20, date(2027, 1, 1)),
        Lot(4, 0, date(2026, 1, 1)),
    ]
    assert rules.consume(lots, 60) == ([(2, 20), (3, 40)], 0)
    assert rules.consume(lots, 100) == ([(2, 20), (3, 50), (1, 30)], 0)
    assert rules.consume(lots, 130) == ([(2, 20), (3, 50), (1, 30)], 30)
    # A reversal takes from the order's own lot first, then FIFO.
    assert rules.consume(lots, 60, first=3) == ([(3, 50), (2, 10)], 0)
    with pytest.raises(ValueError):
        rules.consume(lots, -1)


def test_expired_and_expiring_lots():
    lots = [
        Lot(1, 10, date(2026, 12, 1)),
        Lot(2, 20, date(2026, 12, 31)),
        Lot(3, 5, None),
        Lot(4, 0, date(2026, 1, 1)),
    ]
    assert [lot.id for lot in rules.expired_lots(lots, date(2026, 12, 1))] == [1]
    assert rules.expiring_between(lots, date(2026, 12, 2), date(2027, 1, 1)) == 20


@pytest.mark.parametrize(
    ("earned", "total", "refunded", "already", "due"),
    [
        (100, D("100"), D("30"), 0, 30),
        (100, D("100"), D("100"), 30, 70),  # the rest after a first partial refund
        (100, D("300"), D("100"), 0, 34),  # a share is rounded up
        (100, D("300"), D("200"), 34, 33),  # ...and the total never exceeds what was earned
        (100, D("300"), D("300"), 67, 33),
        (100, D("100"), D("30"), 30, 0),  # the same state again: nothing more
        (0, D("100"), D("30"), 0, 0),
    ],
)
def test_reversal_is_proportional_and_depends_only_on_the_state(earned, total, refunded, already, due):
    assert rules.reversal_due(earned=earned, total=total, refunded=refunded, already_reversed=already) == due


def test_reversal_in_steps_equals_reversal_at_once():
    steps = [D("10"), D("25"), D("7.5"), D("57.5")]
    reversed_so_far, refunded = 0, D("0")
    for step in steps:
        refunded += step
        reversed_so_far += rules.reversal_due(
            earned=77, total=D("100"), refunded=refunded, already_reversed=reversed_so_far
        )
    assert reversed_so_far == rules.reversal_due(
        earned=77, total=D("100"), refunded=D("100"), already_reversed=0
    )


THRESHOLDS = [(0, D("0")), (1, D("1000")), (2, D("5000")), (3, D("20000"))]


def test_qualify_picks_the_highest_tier_reached():
    assert rules.qualify(D("999.99"), THRESHOLDS) == 0
    assert rules.qualify(D("1000"), THRESHOLDS) == 1
    assert rules.qualify(D("25000"), THRESHOLDS) == 3
    assert rules.qualify(D("10"), [(1, D("100"))]) is None


def test_evaluate_upgrades_at_once_and_downgrades_after_grace():
    today = date(2026, 12, 3)
    up = rules.evaluate(current=1, qualified=2, below_since=date(2026, 11, 1), today=today, grace_days=30)
    assert up == rules.TierDecision(2, None, "upgrade")
    first_miss = rules.evaluate(current=2, qualified=1, below_since=None, today=today, grace_days=30)
    assert first_miss == rules.TierDecision(2, today, None)
    waiting = rules.evaluate(
        current=2, qualified=0, below_since=date(2026, 11, 4), today=today, grace_days=30
    )
    assert waiting == rules.TierDecision(2, date(2026, 11, 4), None)
    down = rules.evaluate(current=2, qualified=0, below_since=date(2026, 11, 3), today=today, grace_days=30)
    assert down == rules.TierDecision(0, None, "downgrade")
    recovered = rules.evaluate(
        current=2, qualified=2, below_since=date(2026, 11, 3), today=today, grace_days=30
    )
    assert recovered == rules.TierDecision(2, None, None)


def test_evaluate_many_matches_evaluate():
    today = date(2026, 12, 3)
    epoch = date(1970, 1, 1)
    cases = [
        (1, 2, None),
        (2, 1, None),
        (2, 0, date(2026, 11, 4)),
        (2, 0, date(2026, 11, 3)),
        (2, 2, date(2026, 11, 3)),
        (-1, 0, None),
        (0, -1, date(2026, 1, 1)),
    ]
    rank, below, change = rules.evaluate_many(
        current=np.array([c[0] for c in cases]),
        qualified=np.array([c[1] for c in cases]),
        below_since=np.array([(c[2] - epoch).days if c[2] else -1 for c in cases]),
        today=today,
        grace_days=30,
    )
    for index, (current, qualified, since) in enumerate(cases):
        one = rules.evaluate(
            current=None if current < 0 else current,
            qualified=None if qualified < 0 else qualified,
            below_since=since,
            today=today,
            grace_days=30,
        )
        assert (None if rank[index] < 0 else rank[index]) == one.rank
        expected_below = (one.below_since - epoch).days if one.below_since else -1
        assert below[index] == expected_below
        assert change[index] == {"upgrade": 1, "downgrade": -1, None: 0}[one.change]


def test_qualify_many_matches_qualify():
    values = np.array([0, 999.99, 1000, 4999, 5000, 20000, 1e9])
    ranks = rules.qualify_many(values, [(r, float(t)) for r, t in THRESHOLDS])
    assert ranks.tolist() == [rules.qualify(D(str(v)), THRESHOLDS) for v in values]


def test_progress_to_the_next_tier():
    p = rules.progress(D("3000"), THRESHOLDS, current=1)
    assert p.next_rank == 2 and p.needed == D("2000") and p.fraction == pytest.approx(0.5)
    top = rules.progress(D("30000"), THRESHOLDS, current=3)
    assert top.next_rank is None and top.fraction == 1.0
    none = rules.progress(D("0"), [(1, D("100"))], current=None)
    assert none.next_rank == 1 and none.needed == D("100") and none.fraction == 0.0
