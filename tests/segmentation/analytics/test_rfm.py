"""Tests for segmentation.analytics.rfm (pure pandas, no Django)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from segmentation.analytics import rfm
from segmentation.analytics.rfm import (
    SEGMENTS,
    assign_segments,
    compute_rfm,
    rfm_segment,
    score_rfm,
    validate_thresholds,
)

AS_OF = pd.Timestamp("2024-03-31 12:00", tz="UTC")


def _orders() -> pd.DataFrame:
    rows = [
        # A: three purchase days (two orders on 03-20 count once), 375 in total
        ("A", "2024-03-30 10:00", Decimal("100")),
        ("A", "2024-03-20 09:00", Decimal("50")),
        ("A", "2024-03-20 18:00", Decimal("25")),
        ("A", "2024-02-01 08:00", Decimal("200")),
        # B: one order 30 days before as_of's date
        ("B", "2024-03-01 12:00", Decimal("80")),
        # C: two orders, last one 45 days before (2024 is a leap year: Feb has 29 days)
        ("C", "2024-01-15 12:00", Decimal("40")),
        ("C", "2024-02-15 12:00", Decimal("40")),
        # D: bought on as_of's date before the as_of instant -> recency 0
        ("D", "2023-12-31 12:00", Decimal("500")),
        ("D", "2024-03-31 09:00", Decimal("10")),
        # E: a single old order, 304 days before
        ("E", "2023-06-01 12:00", Decimal("30")),
        # F: one order after as_of (ignored), one given in UTC-5 that is 03-26 in UTC
        ("F", "2024-03-31 15:00", Decimal("999")),
        ("F", "2024-03-25 20:00-05:00", Decimal("60.50")),
        # G: only an order after as_of -> not in the result
        ("G", "2024-04-02 10:00", Decimal("5")),
    ]
    placed = [pd.Timestamp(ts) for _, ts, _ in rows]
    placed = [ts.tz_localize("UTC") if ts.tzinfo is None else ts for ts in placed]
    return pd.DataFrame(
        {
            "customer_id": [c for c, _, _ in rows],
            "placed_at": pd.Series(placed, dtype=object),
            "amount": pd.Series([a for _, _, a in rows], dtype=object),
        }
    )


# --------------------------------------------------------------------------------------------------
# compute_rfm
# --------------------------------------------------------------------------------------------------
def test_compute_rfm_hand_computed() -> None:
    result = compute_rfm(_orders(), as_of=AS_OF)
    assert list(result.index) == ["A", "B", "C", "D", "E", "F"]
    assert list(result.columns) == list(rfm.RFM_COLUMNS)
    # recency: A 03-30 -> 1; B 03-01 -> 30; C 02-15 -> 14 (rest of Feb) + 31 = 45; D -> 0;
    # E 2023-06-01 -> 213 (to Dec 31) + 31 + 29 + 31 = 304; F 03-26 UTC -> 5
    assert result["recency_days"].tolist() == [1, 30, 45, 0, 304, 5]
    assert result["frequency"].tolist() == [3, 1, 2, 2, 1, 1]
    assert result["monetary"].tolist() == pytest.approx([375.0, 80.0, 80.0, 510.0, 30.0, 60.5])
    assert result.loc["A", "first_purchase"] == pd.Timestamp("2024-02-01")
    assert result.loc["A", "last_purchase"] == pd.Timestamp("2024-03-30")
    assert result.loc["F", "last_purchase"] == pd.Timestamp("2024-03-26")
    assert result["recency_days"].dtype == np.int64
    assert result["frequency"].dtype == np.int64


def test_compute_rfm_average_is_per_purchase_day() -> None:
    result = compute_rfm(_orders(), as_of=AS_OF, monetary="average")
    # A: 375 / 3 days; D: 510 / 2 days; C: 80 / 2
    assert result["monetary"].tolist() == pytest.approx([125.0, 80.0, 40.0, 255.0, 30.0, 60.5])


def test_several_orders_on_one_day_count_once() -> None:
    orders = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 1],
            "placed_at": pd.to_datetime(
                ["2024-01-05 01:00", "2024-01-05 13:00", "2024-01-05 23:59", "2024-01-06 00:00"]
            ),
            "amount": [1.0, 2.0, 3.0, 4.0],
        }
    )
    result = compute_rfm(orders, as_of=pd.Timestamp("2024-01-10"))
    assert result.loc[1, "frequency"] == 2
    assert result.loc[1, "monetary"] == pytest.approx(10.0)
    assert result.loc[1, "recency_days"] == 4


def test_timezones_are_converted_to_utc_days() -> None:
    # 23:30 in Shanghai (UTC+8) on Jan 2 is 15:30 UTC on Jan 2; 01:00 in Shanghai on Jan 3 is
    # 17:00 UTC on Jan 2 -> the same UTC day, so one purchase day.
    placed = pd.Series(pd.to_datetime(["2024-01-02 23:30", "2024-01-03 01:00"]).tz_localize("Asia/Shanghai"))
    orders = pd.DataFrame({"customer_id": ["x", "x"], "placed_at": placed, "amount": [1, 1]})
    result = compute_rfm(orders, as_of=pd.Timestamp("2024-01-05", tz="Europe/Paris"))
    # as_of = 2024-01-04 23:00 UTC -> as_of UTC date is Jan 4; last purchase UTC date is Jan 2
    assert result.loc["x", "frequency"] == 1
    assert result.loc["x", "recency_days"] == 2
    # a naive as_of is treated as UTC and gives the same as the aware UTC one
    naive = compute_rfm(orders, as_of=pd.Timestamp("2024-01-04 23:00"))
    pd.testing.assert_frame_equal(result, naive)


def test_window_and_as_of_filtering() -> None:
    orders = _orders()
    # window 60 days ending 03-31 starts 02-01 (inclusive): A keeps its 02-01 order
    w60 = compute_rfm(orders, as_of=AS_OF, window_days=60)
    assert list(w60.index) == ["A", "B", "C", "D", "F"]  # E (2023-06-01) is outside the window
    assert w60.loc["A", "frequency"] == 3
    assert w60.loc["C", "frequency"] == 1  # only 02-15 is inside
    assert w60.loc["C", "monetary"] == pytest.approx(40.0)
    assert w60.loc["D", "monetary"] == pytest.approx(10.0)
    # window 59 days starts 02-02: A loses the 200 order
    w59 = compute_rfm(orders, as_of=AS_OF, window_days=59)
    assert w59.loc["A", "frequency"] == 2
    assert w59.loc["A", "monetary"] == pytest.approx(175.0)
    assert w59.loc["A", "first_purchase"] == pd.Timestamp("2024-03-20")
    # as_of earlier: only orders up to 2024-02-15 12:00 count (C's 02-15 order is at exactly as_of)
    early = compute_rfm(orders, as_of=pd.Timestamp("2024-02-15 12:00", tz="UTC"))
    assert list(early.index) == ["A", "C", "D", "E"]
    assert early.loc["C", "recency_days"] == 0
    assert early.loc["C", "frequency"] == 2
    assert early.loc["D", "monetary"] == pytest.approx(500.0)


def test_compute_rfm_empty_and_invalid() -> None:
    empty = compute_rfm(_orders().iloc[0:0], as_of=AS_OF)
    assert len(empty) == 0
    assert list(empty.columns) == list(rfm.RFM_COLUMNS)
    none_before = compute_rfm(_orders(), as_of=pd.Timestamp("2000-01-01"))
    assert len(none_before) == 0
    with pytest.raises(ValueError, match="monetary"):
        compute_rfm(_orders(), as_of=AS_OF, monetary="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window_days"):
        compute_rfm(_orders(), as_of=AS_OF, window_days=0)
    with pytest.raises(ValueError, match="missing column"):
        compute_rfm(_orders().drop(columns="amount"), as_of=AS_OF)


# --------------------------------------------------------------------------------------------------
# score_rfm
# --------------------------------------------------------------------------------------------------
def test_scores_hand_computed() -> None:
    scored = score_rfm(compute_rfm(_orders(), as_of=AS_OF))
    # score = 1 + (5 * (2R - 1)) // (2n), n = 6, R = average rank with 1 = worst.
    # recency (lower better): E 304 R1 -> 1; C 45 R2 -> 2; B 30 R3 -> 3; F 5 R4 -> 3; A 1 R5 -> 4; D 0 R6 -> 5
    assert scored["r_score"].to_dict() == {"A": 4, "B": 3, "C": 2, "D": 5, "E": 1, "F": 3}
    # frequency: 1 (B, E, F) share R=2 -> 2; 2 (C, D) share R=4.5 -> 1 + 40 // 12 = 4; 3 (A) R6 -> 5
    assert scored["f_score"].to_dict() == {"A": 5, "B": 2, "C": 4, "D": 4, "E": 2, "F": 2}
    # monetary: E 30 R1 -> 1; F 60.5 R2 -> 2; B, C 80 share R=3.5 -> 1 + 30 // 12 = 3;
    # A 375 R5 -> 4; D 510 R6 -> 5
    assert scored["m_score"].to_dict() == {"A": 4, "B": 3, "C": 3, "D": 5, "E": 1, "F": 2}
    # fm = (f + m + 1) // 2: A 5, B 3, C 4, D 5, E 2, F 2 -> grid
    segments = assign_segments(scored)
    assert segments.to_dict() == {
        "A": "champions",  # r4 fm5
        "B": "need_attention",  # r3 fm3
        "C": "at_risk",  # r2 fm4
        "D": "champions",  # r5 fm5
        "E": "hibernating",  # r1 fm2
        "F": "need_attention",  # r3 fm2
    }
    assert scored["r_score"].dtype == np.int64


def _frame(recency: list[float], frequency: list[float], monetary: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"recency_days": recency, "frequency": frequency, "monetary": monetary})


def test_ties_get_equal_scores() -> None:
    # 10 customers; the first five share every value
    scored = score_rfm(
        _frame([7] * 5 + [1, 2, 3, 4, 5], [2] * 5 + [1, 3, 4, 5, 6], [10.0] * 5 + [1, 20, 30, 40, 50])
    )
    for col in ("r_score", "f_score", "m_score"):
        assert scored[col].iloc[:5].nunique() == 1
    # frequency: value 1 is rank 1 -> 1; five 2s share R=4 -> 1 + 35 // 20 = 2; 3..6 at R7..10 -> 4,4,5,5
    assert scored["f_score"].tolist() == [2, 2, 2, 2, 2, 1, 4, 4, 5, 5]
    # all tied -> everybody 3
    tied = score_rfm(_frame([5] * 7, [1] * 7, [9.5] * 7))
    assert set(tied["r_score"]) == {3} and set(tied["f_score"]) == {3} and set(tied["m_score"]) == {3}


def test_exact_quintiles_for_distinct_values() -> None:
    n = 25
    scored = score_rfm(_frame(list(range(n)), list(range(1, n + 1)), [float(v) for v in range(n)]))
    assert scored["f_score"].value_counts().sort_index().tolist() == [5, 5, 5, 5, 5]
    assert scored["f_score"].tolist() == [s for s in range(1, 6) for _ in range(5)]
    # recency: smallest recency is best
    assert scored["r_score"].tolist() == [s for s in range(5, 0, -1) for _ in range(5)]


def test_tiny_populations() -> None:
    empty = score_rfm(_frame([], [], []))
    assert len(empty) == 0
    assert {"r_score", "f_score", "m_score"} <= set(empty.columns)
    assert assign_segments(empty).empty

    one = score_rfm(_frame([10], [3], [99.0]))
    assert one[["r_score", "f_score", "m_score"]].iloc[0].tolist() == [3, 3, 3]
    assert assign_segments(one).iloc[0] == "need_attention"

    two = score_rfm(_frame([1, 9], [1, 2], [5.0, 6.0]))
    assert two["f_score"].tolist() == [2, 4]
    assert two["r_score"].tolist() == [4, 2]

    three = score_rfm(_frame([1, 2, 3], [1, 2, 3], [1.0, 2.0, 3.0]))
    assert three["f_score"].tolist() == [1, 3, 5]

    four = score_rfm(_frame([40, 30, 20, 10], [1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0]))
    assert four["f_score"].tolist() == [1, 2, 4, 5]
    assert four["r_score"].tolist() == [1, 2, 4, 5]
    assert four["m_score"].tolist() == [5, 4, 2, 1]


def test_fixed_thresholds() -> None:
    thresholds = {
        "recency": [30, 90, 180, 365],
        "frequency": [1, 2, 4, 8],
        "monetary": [100, 300, 1000, 3000],
    }
    frame = _frame(
        [0, 30, 31, 90, 91, 180, 181, 365, 366],
        [1, 2, 3, 4, 5, 8, 9, 100, 1],
        [0.0, 100.0, 100.01, 300.0, 999.0, 1000.0, 3000.0, 3000.01, 50.0],
    )
    scored = score_rfm(frame, thresholds=thresholds)
    assert scored["r_score"].tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1]
    assert scored["f_score"].tolist() == [1, 2, 3, 3, 4, 4, 5, 5, 1]
    assert scored["m_score"].tolist() == [1, 1, 2, 2, 3, 3, 4, 5, 1]
    # partial thresholds: the other metrics use quintiles
    partial = score_rfm(frame, thresholds={"frequency": [1, 2, 4, 8]})
    assert partial["f_score"].tolist() == scored["f_score"].tolist()
    assert partial["r_score"].tolist() == [5, 5, 4, 4, 3, 2, 2, 1, 1]  # n=9 quintiles on -recency


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"recency": [30, 90, 180]}, "exactly 4"),
        ({"recency": [30, 90, 180, 365, 500]}, "exactly 4"),
        ({"frequency": [1, 2, 2, 8]}, "strictly ascending"),
        ({"frequency": [8, 4, 2, 1]}, "strictly ascending"),
        ({"monetary": [100, "300", 1000, 3000]}, "only numbers"),
        ({"monetary": [100, float("nan"), 1000, 3000]}, "finite"),
        ({"monetary": [True, 2, 3, 4]}, "only numbers"),
        ({"monetary": "1,2,3,4"}, "list of 4"),
        ({"value": [1, 2, 3, 4]}, "unknown RFM threshold metric"),
        ([1, 2, 3, 4], "mapping"),
    ],
)
def test_invalid_thresholds_raise(thresholds: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score_rfm(_frame([1], [1], [1.0]), thresholds=thresholds)  # type: ignore[arg-type]


def test_validate_thresholds_returns_floats() -> None:
    assert validate_thresholds({"frequency": (1, 2, 4, 8)}) == {"frequency": (1.0, 2.0, 4.0, 8.0)}
    assert validate_thresholds({"monetary": np.array([1.5, 2, 3, 4])})["monetary"][0] == 1.5


def test_score_rfm_rejects_missing_values() -> None:
    with pytest.raises(ValueError, match="missing values"):
        score_rfm(_frame([1, 2], [1, 2], [1.0, float("nan")]))


# --------------------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------------------
# Independent copy of the documented grid: EXPECTED[r][fm]
EXPECTED_GRID = {
    5: ["new", "potential_loyalist", "potential_loyalist", "champions", "champions"],
    4: ["promising", "potential_loyalist", "potential_loyalist", "loyal", "champions"],
    3: ["about_to_sleep", "need_attention", "need_attention", "loyal", "loyal"],
    2: ["hibernating", "about_to_sleep", "at_risk", "at_risk", "at_risk"],
    1: ["lost", "hibernating", "at_risk", "cannot_lose_them", "cannot_lose_them"],
}


def test_every_r_fm_cell_maps_to_a_known_segment() -> None:
    keys = [s.key for s in SEGMENTS]
    assert len(keys) == 11 and len(set(keys)) == 11
    seen = set()
    for r in range(1, 6):
        for fm in range(1, 6):
            # f = m = fm gives (2 fm + 1) // 2 = fm
            segment = rfm_segment(r, fm, fm)
            assert segment == EXPECTED_GRID[r][fm - 1], (r, fm)
            assert segment in keys
            seen.add(segment)
    assert seen == set(keys)  # every segment is reachable


def test_fm_rounds_half_up_and_vectorised_matches_scalar() -> None:
    assert rfm_segment(5, 5, 4) == "champions"  # fm = 4.5 -> 5
    assert rfm_segment(4, 4, 3) == "loyal"  # fm = 3.5 -> 4 -> r4 fm4
    assert rfm_segment(4, 1, 2) == "potential_loyalist"  # fm = 1.5 -> 2
    combos = [(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)]
    frame = pd.DataFrame(
        combos, columns=["r_score", "f_score", "m_score"], index=[f"c{i}" for i in range(125)]
    )
    vectorised = assign_segments(frame)
    assert vectorised.tolist() == [rfm_segment(*c) for c in combos]
    assert vectorised.name == "segment"


def test_segment_inputs_validated() -> None:
    with pytest.raises(ValueError, match="r_score"):
        rfm_segment(0, 3, 3)
    with pytest.raises(ValueError, match="m_score"):
        rfm_segment(3, 3, 6)
    with pytest.raises(ValueError, match="1..5"):
        assign_segments(pd.DataFrame({"r_score": [1], "f_score": [7], "m_score": [1]}))


def test_segments_metadata_are_plain_strings() -> None:
    for info in SEGMENTS:
        assert isinstance(info.key, str) and info.key == info.key.lower()
        assert isinstance(info.label, str) and info.label
        assert isinstance(info.action, str) and len(info.action) > 20
    assert SEGMENTS[0].key == rfm.SEGMENT_CHAMPIONS
    assert SEGMENTS[-1].key == rfm.SEGMENT_LOST


@pytest.mark.parametrize("kind", ["int", "huge int", "str"])
def test_customer_days_matches_a_plain_pandas_groupby(kind):
    rng = np.random.default_rng(3)
    n = 5_000
    raw = rng.integers(0, 300, n)
    customers = {
        "int": raw + 1_000,
        "huge int": np.where(raw % 2 == 0, raw, raw + 2**61),  # too wide to pack: factorised instead
        "str": np.array([f"c{i}" for i in raw], dtype=object),
    }[kind]
    days = rng.integers(19_000, 19_400, n)
    values = rng.gamma(2.0, 50.0, n).round(2)
    per_day = rfm.customer_days(customers, days, values)

    frame = pd.DataFrame({"c": customers, "d": days, "v": values})
    daily = frame.groupby(["c", "d"], sort=True)["v"].sum().reset_index()
    grouped = daily.groupby("c", sort=True)
    assert list(per_day.customers) == list(grouped.size().index)
    assert np.array_equal(per_day.first_day, grouped["d"].min().to_numpy())
    assert np.array_equal(per_day.last_day, grouped["d"].max().to_numpy())
    assert np.array_equal(per_day.day_count, grouped.size().to_numpy())
    assert np.allclose(per_day.total, grouped["v"].sum().to_numpy(), rtol=1e-12)
    assert np.allclose(per_day.first_day_total, grouped["v"].first().to_numpy(), rtol=1e-12)


def test_customer_days_of_nothing_is_empty():
    per_day = rfm.customer_days(np.array([], dtype=np.int64), np.array([], dtype=np.int64), np.array([]))
    assert all(len(part) == 0 for part in per_day)


# --------------------------------------------------------------------------------------------------
# Frozen quintiles (the incremental recompute scores a few customers with a full run's cut points)
# --------------------------------------------------------------------------------------------------
def _random_measures(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """RFM measures with heavy ties (small integer ranges) and some distinct money amounts."""
    return pd.DataFrame(
        {
            "recency_days": rng.integers(0, rng.integers(1, 40), n),
            "frequency": rng.integers(1, rng.integers(2, 8), n),
            "monetary": np.where(rng.random(n) < 0.5, rng.integers(1, 5, n) * 50.0, rng.gamma(2.0, 80.0, n)),
        }
    )


@pytest.mark.parametrize("seed", range(40))
def test_cut_points_reproduce_the_quintile_scores_of_their_own_population(seed: int) -> None:
    rng = np.random.default_rng(seed)
    measures = _random_measures(rng, int(rng.integers(1, 60)))
    scored = score_rfm(measures)
    cut_points = rfm.population_cut_points(scored)
    assert set(cut_points) == {"recency", "frequency", "monetary"}
    again = score_rfm(measures, cut_points=cut_points)
    for column in ("r_score", "f_score", "m_score"):
        assert again[column].tolist() == scored[column].tolist(), column


@pytest.mark.parametrize(
    "values, higher_is_better, cuts",
    [
        # 5 distinct values: one a score; higher is better -> each cut is the top of its score
        ([10, 20, 30, 40, 50], True, [10, 20, 30, 40]),
        # lower is better (recency): c_j = the largest value scoring 6 - j or more
        ([10, 20, 30, 40, 50], False, [10, 20, 30, 40]),
        # everybody tied scores 3: scores 1 and 2 are empty below, 4 and 5 above
        ([7, 7, 7], True, [-np.inf, -np.inf, 7, 7]),
        ([7, 7, 7], False, [-np.inf, -np.inf, 7, 7]),
        # one customer scores 3
        ([4], True, [-np.inf, -np.inf, 4, 4]),
    ],
)
def test_cut_points_by_hand(values, higher_is_better, cuts) -> None:
    values = np.asarray(values, dtype=float)
    scores = rfm._quintile_scores(values, higher_is_better=higher_is_better)
    assert rfm.quintile_cut_points(values, scores, higher_is_better=higher_is_better) == cuts
    assert rfm._threshold_scores(values, cuts, higher_is_better=higher_is_better).tolist() == scores.tolist()


def test_values_on_a_cut_point_score_as_the_population_member_who_set_it() -> None:
    """A newcomer tied with the value that set a cut scores exactly like that customer; a value between
    two members' values scores like the worse side's upper neighbour; values beyond the population's
    range get the extreme scores."""
    measures = pd.DataFrame(
        {"recency_days": [1, 5, 9, 20, 40], "frequency": [1, 1, 2, 3, 9], "monetary": [5.0] * 5}
    )
    scored = score_rfm(measures)
    assert scored["r_score"].tolist() == [5, 4, 3, 2, 1]
    assert scored["f_score"].tolist() == [2, 2, 3, 4, 5]  # the two tied lowest share score 2
    assert scored["m_score"].tolist() == [3, 3, 3, 3, 3]  # everybody tied
    cut_points = rfm.population_cut_points(scored)
    assert cut_points == {
        "recency": [1, 5, 9, 20],
        "frequency": [-np.inf, 1, 2, 3],
        "monetary": [-np.inf, -np.inf, 5.0, 5.0],
    }
    newcomers = pd.DataFrame(
        {"recency_days": [5, 4, 0, 99], "frequency": [1, 2, 100, 0], "monetary": [5.0, 5.01, 1e6, 0.0]}
    )
    frozen = score_rfm(newcomers, cut_points=cut_points)
    assert frozen["r_score"].tolist() == [4, 4, 5, 1]
    assert frozen["f_score"].tolist() == [2, 3, 5, 2]
    assert frozen["m_score"].tolist() == [3, 5, 5, 3]


def test_fixed_thresholds_win_over_cut_points_and_have_none_of_their_own() -> None:
    measures = pd.DataFrame(
        {"recency_days": [1, 50, 400], "frequency": [1, 2, 9], "monetary": [10.0, 20.0, 30.0]}
    )
    thresholds = {"recency": [30, 90, 180, 365]}
    scored = score_rfm(measures, thresholds=thresholds)
    cut_points = rfm.population_cut_points(scored, thresholds=thresholds)
    assert set(cut_points) == {"frequency", "monetary"}
    frozen = score_rfm(measures, thresholds=thresholds, cut_points={**cut_points, "recency": [0, 0, 0, 0]})
    assert frozen["r_score"].tolist() == [5, 4, 1]  # the thresholds, not the bogus cuts


def test_cut_points_are_validated() -> None:
    measures = pd.DataFrame({"recency_days": [1], "frequency": [1], "monetary": [1.0]})
    with pytest.raises(ValueError, match="must not decrease"):
        score_rfm(measures, cut_points={"frequency": [3, 2, 4, 5]})
    with pytest.raises(ValueError, match="4 numbers"):
        score_rfm(measures, cut_points={"frequency": [1, 2, 3]})
    assert rfm.population_cut_points(score_rfm(measures.iloc[:0])) == {}
