"""The per-customer features the recompute scores from, against a plain pandas reading of the same
purchases (`features_from_arrays` sorts once and reduces; the reference groups row by row)."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from segmentation import recompute
from segmentation.recompute import (
    FEATURE_COLUMNS,
    US_PER_DAY,
    Purchases,
    _places,
    _sort,
    features_from_arrays,
    features_from_purchases,
)

AS_OF = datetime(2026, 6, 30, 15, 0, tzinfo=UTC)
AS_OF_DAY = int(AS_OF.timestamp() * 1_000_000) // US_PER_DAY


class Cfg:
    window_days = 90


def reference(customer, placed_us, amount, ids, window_days) -> pd.DataFrame:
    """Each feature by a groupby per customer of the rows of the listed customers."""
    rows = pd.DataFrame({"c": customer, "us": placed_us, "cents": np.rint(amount * 100)})
    rows = rows[rows["c"].isin(ids)]
    rows["d"] = rows["us"] // US_PER_DAY
    out = pd.DataFrame(
        {
            name: np.zeros(len(ids), dtype=np.int64 if kind != "float8" else float)
            for name, kind in FEATURE_COLUMNS
        },
        index=pd.Index(np.sort(ids), name="customer_id"),
    )
    for prefix, part in (("", rows), ("w_", rows[rows["d"] >= AS_OF_DAY - window_days + 1])):
        days = part.groupby(["c", "d"])["cents"].sum().reset_index().groupby("c")
        out.loc[days.size().index, prefix + "first_day"] = days["d"].min()
        out.loc[days.size().index, prefix + "last_day"] = days["d"].max()
        out.loc[days.size().index, prefix + "day_count"] = days.size()
        out.loc[days.size().index, prefix + "total"] = days["cents"].sum() / 100
        out.loc[days.size().index, prefix + "first_day_total"] = days["cents"].first() / 100
    per_customer = rows.groupby("c")
    out.loc[per_customer.size().index, "order_count"] = per_customer.size()
    out.loc[per_customer.size().index, "last_purchase_us"] = per_customer["us"].max()
    return out


@pytest.mark.parametrize("threads", [1, 2], ids=["one thread", "two threads"])
@pytest.mark.parametrize("sparse", [False, True], ids=["serial ids", "sparse ids"])
def test_features_equal_a_plain_groupby_of_the_purchases(sparse, threads, monkeypatch):
    """(Two threads: each works out the customers of half of the rows of the result, as a full run
    over 1,000,000 purchases does.)"""
    if threads == 2:
        monkeypatch.setattr(recompute, "FEATURES_SPLIT_FROM", 1)
    rng = np.random.default_rng(7)
    ids = np.arange(1, 401) if not sparse else np.unique(rng.integers(1, 2**50, 400))
    listed = rng.permutation(ids)[:300]  # the others are in the recycle bin: their purchases ignored
    n = 6_000
    customer = rng.choice(ids[:350], n)  # and a few listed customers bought nothing
    end_us = int(AS_OF.timestamp() * 1_000_000)
    # Two years back, in whole hours, so many customers buy twice on one day (and the window's
    # first day has purchases both sides of midnight).
    placed_us = end_us - rng.integers(0, 2 * 365 * 24, n) * 3_600_000_000
    amount = rng.gamma(2.0, 40.0, n).round(2)

    features = features_from_arrays(Purchases(customer, placed_us, amount), listed, Cfg(), as_of=AS_OF)

    expected = reference(customer, placed_us, amount, listed, Cfg.window_days)
    pd.testing.assert_frame_equal(features, expected)
    assert (features["day_count"] == 0).sum() == len(set(listed) - set(customer))
    assert 0 < features["w_day_count"].sum() < features["day_count"].sum() < features["order_count"].sum()
    # The frame form (aware timestamps) gives the same features.
    frame = Purchases(customer, placed_us, amount).frame()
    pd.testing.assert_frame_equal(features_from_purchases(frame, listed, Cfg(), as_of=AS_OF), expected)


def test_features_of_no_purchases_are_zeros():
    nothing = Purchases(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    features = features_from_arrays(nothing, np.array([3, 1, 2]), Cfg(), as_of=AS_OF)
    assert list(features.index) == [1, 2, 3]
    assert (features.to_numpy() == 0).all()


def test_sort_gives_the_permutation_and_the_sorted_keys_on_both_paths():
    rng = np.random.default_rng(1)
    for high in (1_000, 2**62):  # packed with the row number; too wide to pack: argsort
        key = rng.integers(0, high, 5_000)
        order, sorted_key = _sort(key)
        assert np.array_equal(sorted_key, np.sort(key))
        assert np.array_equal(key[order], sorted_key)
        assert np.array_equal(np.sort(order), np.arange(len(key)))


@pytest.mark.parametrize(
    "ids",
    [np.arange(10, 20), np.array([10, 12, 15, 16]), np.array([5, 2**40, 2**60])],
    ids=["dense", "with gaps", "sparse"],
)
def test_places_finds_each_value_or_minus_one(ids):
    values = np.array([ids[3 % len(ids)], 0, ids[0], ids[-1], ids[-1] + 1, -7, ids[1]])
    expected = [list(ids).index(v) if v in ids else -1 for v in values]
    assert list(_places(values, ids)) == expected
    within = np.array([ids[-1], ids[0] + 1, ids[0], ids[-1] - 1])  # inside the range, some not ids
    assert list(_places(within, ids)) == [list(ids).index(v) if v in ids else -1 for v in within]
