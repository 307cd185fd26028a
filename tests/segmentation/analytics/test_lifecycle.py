"""Tests for segmentation.analytics.lifecycle: one hand-built row per stage, and the rule order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segmentation.analytics.lifecycle import (
    STAGES,
    assign_lifecycle_stage,
    lifecycle_features,
    typical_interval_days,
)

AS_OF = pd.Timestamp("2024-06-30 18:00", tz="UTC")
NaT = pd.NaT


def _ts(value: str | None) -> pd.Timestamp:
    return pd.NaT if value is None else pd.Timestamp(value)


def _frame(rows: dict[str, tuple]) -> pd.DataFrame:
    """rows: id -> (frequency, first, last, probability_alive, segment, previous_stage, previous_stage_at)."""
    data = {
        "frequency": [r[0] for r in rows.values()],
        "first_purchase": pd.to_datetime([_ts(r[1]) for r in rows.values()]),
        "last_purchase": pd.to_datetime([_ts(r[2]) for r in rows.values()]),
        "probability_alive": [r[3] for r in rows.values()],
        "segment": np.array([r[4] for r in rows.values()], dtype=object),
        "previous_stage": np.array([r[5] for r in rows.values()], dtype=object),
        "previous_stage_at": pd.to_datetime([_ts(r[6]) for r in rows.values()]),
    }
    return pd.DataFrame(data, index=pd.Index(list(rows), name="customer_id"))


# Own mean intervals of the repeat customers (days): R 70/2 = 35, L 176/5 = 35.2, LS 50, AR 60/2 = 30,
# AP 35, AQ 35, C 31, RE 531/3 = 177, RE2 30 -> sorted 30, 30, 31, 35, 35, 35, 35.2, 50, 177 -> the
# typical interval (median) is 35. One-time buyers therefore use 35 days: at_risk_after =
# max(30, 1.5 * 35) = 52.5, churn_after = 365. Repeat customers' own intervals are shrunk towards 35
# with 2 pseudo-gaps: ((f - 1) * own + 2 * 35) / (f + 1).
TYPICAL = 35.0


def _shrunk(own: float, frequency: int) -> float:
    return ((frequency - 1) * own + 2 * TYPICAL) / (frequency + 1)


ROWS: dict[str, tuple] = {
    "P": (0, None, None, None, None, None, None),
    # first purchase 10 days ago
    "N": (1, "2024-06-20", "2024-06-20", None, None, None, None),
    # single purchase 45 days ago: beyond new_days (30) but not yet overdue (52.5) -> still new
    "N2": (1, "2024-05-16", "2024-05-16", None, None, None, None),
    # 3 days, interval 35, 20 days since last (< 52.5)
    "R": (3, "2024-04-01", "2024-06-10", None, "need_attention", None, None),
    # 6 purchase days (>= 5), 5 days since last
    "L": (6, "2024-01-01", "2024-06-25", None, None, None, None),
    # only 2 purchase days but RFM segment champions
    "LS": (2, "2024-05-01", "2024-06-20", None, "champions", None, None),
    # interval 30, 121 days since last > 45, < 365
    "AR": (3, "2024-01-01", "2024-03-01", None, None, None, None),
    # like R and the BG/NBD gives P(alive) = 0.1 < 0.3, but the last purchase (20 days ago) is more
    # recent than the typical interval (35): never at risk inside the quiet floor (the issue-13 case)
    "AP": (3, "2024-04-01", "2024-06-10", 0.1, None, None, None),
    # P(alive) = 0.1 and 41 days since the last purchase (> 35, not yet overdue at 1.5 x 35)
    "AQ": (3, "2024-03-10", "2024-05-20", 0.1, None, None, None),
    # interval 31, 880 days since last > max(93, 365)
    "C": (2, "2022-01-01", "2022-02-01", None, None, None, None),
    # one-time buyer 150 days ago: > 52.5 -> at risk
    "O1": (1, "2024-02-01", "2024-02-01", None, None, None, None),
    # one-time buyer 366 days ago: > 365 -> churned
    "O2": (1, "2023-06-30", "2023-06-30", None, None, None, None),
    # was churned on 05-01, bought on 06-15 (15 days ago, interval 177)
    "RE": (4, "2023-01-01", "2024-06-15", None, None, "churned", "2024-05-01"),
    # was at risk on 06-01 and has not bought since (last 03-01, 121 days, interval 30) -> at risk
    "RE2": (3, "2024-01-01", "2024-03-01", None, None, "at_risk", "2024-06-01"),
}


def test_each_stage_from_a_hand_built_row() -> None:
    stages = assign_lifecycle_stage(_frame(ROWS), as_of=AS_OF)
    assert stages.to_dict() == {
        "P": "prospect",
        "N": "new",
        "N2": "new",
        "R": "repeat",
        "L": "loyal",
        "LS": "loyal",
        "AR": "at_risk",
        "AP": "repeat",
        "AQ": "at_risk",
        "C": "churned",
        "O1": "at_risk",
        "O2": "churned",
        "RE": "reactivated",
        "RE2": "at_risk",
    }
    assert stages.name == "lifecycle_stage"
    assert set(stages) == {s.key for s in STAGES}  # every stage is produced


def test_features_hand_computed() -> None:
    feats = lifecycle_features(_frame(ROWS), as_of=AS_OF)
    assert np.isnan(feats.loc["P"]).all()
    assert feats.loc["R", "interval_days"] == pytest.approx(35.0)
    assert feats.loc["L", "interval_days"] == pytest.approx(_shrunk(35.2, 6))
    assert feats.loc["N", "interval_days"] == pytest.approx(35.0)  # population median
    assert feats.loc["N", "at_risk_after"] == pytest.approx(52.5)
    assert feats.loc["AR", "at_risk_after"] == pytest.approx(1.5 * _shrunk(30.0, 3))  # 48.75
    assert (feats["typical_interval_days"].dropna() == TYPICAL).all()
    assert (feats["quiet_floor"].dropna() == TYPICAL).all()
    assert feats.loc["AR", "days_since_last"] == 121
    assert feats.loc["C", "days_since_last"] == 880
    assert feats.loc["C", "churn_after"] == pytest.approx(365.0)
    assert feats.loc["RE", "churn_after"] == pytest.approx(365.0)  # 3 * shrunk 120.2 < 365
    assert feats.loc["RE", "interval_days"] == pytest.approx(_shrunk(177.0, 4))
    assert feats.loc["O2", "days_since_first"] == 366


def test_rule_order_first_match_wins() -> None:
    base = {"frequency": 6, "first_purchase": "2024-01-01", "last_purchase": "2024-03-01"}
    frame = pd.DataFrame(
        [
            # loyal by frequency AND overdue (interval 12, 121 days) -> at_risk (rule 3 before 6)
            {**base},
            # champions segment AND low P(alive) but bought yesterday: inside the quiet floor -> loyal
            {**base, "last_purchase": "2024-06-29", "probability_alive": 0.05, "segment": "champions"},
            # previously churned, bought after being flagged, but overdue again -> at_risk (3 before 4)
            {**base, "previous_stage": "churned", "previous_stage_at": "2024-02-01"},
            # previously at risk, bought since and loyal by frequency -> reactivated (4 before 6)
            {
                **base,
                "last_purchase": "2024-06-29",
                "previous_stage": "at_risk",
                "previous_stage_at": "2024-06-01",
            },
            # one purchase day yesterday, but previously churned without a later purchase date known
            # and with frequency 1 -> reactivated (rule 4 before 5)
            {
                "frequency": 1,
                "first_purchase": "2024-06-29",
                "last_purchase": "2024-06-29",
                "previous_stage": "churned",
            },
            # loyal frequency but churned (interval 12, 880 days) -> churned (rule 2 before 3 and 6)
            {**base, "first_purchase": "2021-12-01", "last_purchase": "2022-02-01", "probability_alive": 0.0},
            # champions AND low P(alive), 29 days since last (> typical 21.4) -> at_risk (rule 3 before 6)
            {**base, "last_purchase": "2024-06-01", "probability_alive": 0.05, "segment": "champions"},
        ]
    )
    for col in ("first_purchase", "last_purchase", "previous_stage_at"):
        frame[col] = pd.to_datetime(frame[col])
    stages = assign_lifecycle_stage(frame, as_of=AS_OF)
    assert stages.tolist() == [
        "at_risk", "loyal", "at_risk", "reactivated", "reactivated", "churned", "at_risk",
    ]  # fmt: skip


def test_reactivated_without_previous_stage_at_is_inferred() -> None:
    rows = {
        # previously churned, now recent (5 days since last, interval 65 / 2 = 32.5) -> reactivated
        "a": (3, "2024-04-21", "2024-06-25", None, None, "churned", None),
        # previously at risk, still overdue -> at_risk
        "b": (3, "2024-01-01", "2024-03-01", None, None, "at_risk", None),
        # previous stage loyal, recent -> not reactivated
        "c": (3, "2024-04-21", "2024-06-25", None, None, "loyal", None),
    }
    frame = _frame(rows).drop(columns="previous_stage_at")
    assert assign_lifecycle_stage(frame, as_of=AS_OF).tolist() == ["reactivated", "at_risk", "repeat"]


def test_parameters_change_the_outcome() -> None:
    frame = _frame({"R": ROWS["R"], "N2": ROWS["N2"], "L": ROWS["L"]})
    # 20 days later R is 40 days past its last purchase: beyond the typical interval (35.1) but not
    # overdue (1.5 x 35.05); with at_risk_multiplier 0.5 the floor decides and R is at risk
    later = AS_OF + pd.Timedelta(days=20)
    assert assign_lifecycle_stage(frame, as_of=later)["R"] == "repeat"
    assert assign_lifecycle_stage(frame, as_of=later, at_risk_multiplier=0.5)["R"] == "at_risk"
    # ... while 20 days since last stays inside the floor whatever the multiplier
    assert assign_lifecycle_stage(frame, as_of=AS_OF, at_risk_multiplier=0.5)["R"] == "repeat"
    # loyal threshold above 6 -> L is a plain repeat customer
    assert assign_lifecycle_stage(frame, as_of=AS_OF, loyal_min_frequency=7)["L"] == "repeat"
    # with a shorter population interval (only R, L: median 35.1) the one-time buyer stays new at 45 days
    assert assign_lifecycle_stage(frame, as_of=AS_OF)["N2"] == "new"
    # without any repeat customer the default interval (30 -> 45 days) applies: 45 is not > 45 -> new
    alone = _frame({"N2": ROWS["N2"]})
    assert lifecycle_features(alone, as_of=AS_OF)["interval_days"].iloc[0] == 30.0
    assert assign_lifecycle_stage(alone, as_of=AS_OF).iloc[0] == "new"
    assert assign_lifecycle_stage(alone, as_of=AS_OF, default_interval_days=20).iloc[0] == "at_risk"


def test_minimal_columns_tz_aware_and_empty() -> None:
    frame = pd.DataFrame(
        {
            "frequency": [1, 0],
            # 23:30 in New York on 06-29 is 03:30 UTC on 06-30 -> bought "today" in UTC terms
            "first_purchase": pd.to_datetime(["2024-06-29 23:30", None]).tz_localize("America/New_York"),
            "last_purchase": pd.to_datetime(["2024-06-29 23:30", None]).tz_localize("America/New_York"),
        }
    )
    assert assign_lifecycle_stage(frame, as_of=AS_OF).tolist() == ["new", "prospect"]
    assert lifecycle_features(frame, as_of=AS_OF)["days_since_last"].iloc[0] == 0
    empty = assign_lifecycle_stage(frame.iloc[0:0], as_of=AS_OF)
    assert empty.empty and empty.name == "lifecycle_stage"


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="missing column"):
        assign_lifecycle_stage(pd.DataFrame({"frequency": [1]}), as_of=AS_OF)
    frame = _frame({"N": ROWS["N"]})
    with pytest.raises(ValueError, match="multiplier"):
        assign_lifecycle_stage(frame, as_of=AS_OF, at_risk_multiplier=4.0, churn_multiplier=3.0)
    with pytest.raises(ValueError, match="at_risk_alive_threshold"):
        assign_lifecycle_stage(frame, as_of=AS_OF, at_risk_alive_threshold=1.5)


def test_stage_metadata() -> None:
    keys = [s.key for s in STAGES]
    assert keys == ["prospect", "new", "repeat", "loyal", "at_risk", "churned", "reactivated"]
    assert all(isinstance(s.label, str) and s.label for s in STAGES)


def test_a_given_typical_interval_replaces_the_frames_own():
    """The incremental recompute stages a few customers with the full run's typical interval: staged
    alone with it, every customer gets the stage they get among everyone."""
    frame = _frame(ROWS)
    typical = typical_interval_days(frame)
    assert typical == TYPICAL
    together = assign_lifecycle_stage(frame, as_of=AS_OF)
    alone = [
        assign_lifecycle_stage(frame.loc[[key]], as_of=AS_OF, typical_interval=typical).iloc[0]
        for key in frame.index
    ]
    assert alone == together.tolist()
    # a different typical interval moves the thresholds of everyone
    shifted = lifecycle_features(frame, as_of=AS_OF, typical_interval=70.0)
    assert (shifted["typical_interval_days"].dropna() == 70.0).all()
    with pytest.raises(ValueError, match="typical_interval"):
        lifecycle_features(frame, as_of=AS_OF, typical_interval=0.5)
