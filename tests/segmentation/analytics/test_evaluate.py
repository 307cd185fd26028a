"""The evaluation harness (segmentation.analytics.evaluate) and the targets of issue 13 on simulated
purchase histories whose truth is known (BG/NBD: Poisson purchases while alive, a known dropout
probability after each purchase)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from segmentation.analytics.clv import fit_bgnbd, predict_clv
from segmentation.analytics.evaluate import cutoff_features, evaluate_alerts, score_rule
from segmentation.analytics.simulate import simulate_purchase_histories

SEED = 7
N_CUSTOMERS = 5_000


@pytest.fixture(scope="module")
def simulated():
    transactions, observation_end = simulate_purchase_histories(N_CUSTOMERS, seed=SEED)
    cutoff = observation_end - pd.Timedelta(days=90)
    return transactions, observation_end, cutoff


def _median_interval_before(transactions: pd.DataFrame, cutoff: pd.Timestamp) -> float:
    """The tenant's median inter-purchase interval, computed here independently of the module: the
    median over customers with two or more purchase days of their mean gap between purchase days."""
    days = transactions.loc[transactions["date"] <= cutoff].assign(day=lambda f: f["date"].dt.normalize())
    per = days.groupby("customer_id")["day"].agg(["min", "max", "nunique"])
    repeat = per[per["nunique"] >= 2]
    return float(((repeat["max"] - repeat["min"]).dt.days / (repeat["nunique"] - 1)).median())


def test_targets_on_simulated_data_with_a_fixed_seed(simulated):
    transactions, observation_end, cutoff = simulated
    result = evaluate_alerts(transactions, cutoff=cutoff, observation_end=observation_end)
    assert result.model_used == "bgnbd_gg"
    rules, naive = result.rules, result.naive
    assert rules.precision >= 0.7
    assert rules.precision > naive.precision, (rules, naive)
    assert rules.recall > naive.recall, (rules, naive)
    assert result.beats_naive
    # No customer flagged whose last purchase is more recent than the median inter-purchase interval
    median = _median_interval_before(transactions, cutoff)
    assert result.typical_interval_days == pytest.approx(median)
    flagged = result.per_customer[result.per_customer["flagged"]]
    assert len(flagged) > 1000
    assert (flagged["days_since_last"] > median).all()
    assert result.flagged_recent_buyers == 0
    # the counts are what they say
    per = result.per_customer
    assert rules.flagged == int(per["flagged"].sum()) and naive.flagged == int(per["naive"].sum())
    assert rules.lapsed == int(per["lapsed"].sum()) == naive.lapsed


def test_the_figures_read_nothing_after_the_cutoff(simulated):
    transactions, observation_end, cutoff = simulated
    before = evaluate_alerts(transactions, cutoff=cutoff, observation_end=observation_end)
    flagged_ids = before.per_customer.index[before.per_customer["flagged"] & before.per_customer["lapsed"]]
    planted_customer = flagged_ids[0]
    # A purchase the day after the cut-off: the flags (features, model fit, typical interval) do not
    # move; only that customer's outcome does.
    planted = pd.concat(
        [
            transactions,
            pd.DataFrame(
                {"customer_id": [planted_customer], "date": [cutoff + pd.Timedelta(days=1)], "amount": [50.0]}
            ),
        ],
        ignore_index=True,
    )
    after = evaluate_alerts(planted, cutoff=cutoff, observation_end=observation_end)
    pd.testing.assert_series_equal(after.per_customer["flagged"], before.per_customer["flagged"])
    pd.testing.assert_series_equal(after.per_customer["stage"], before.per_customer["stage"])
    pd.testing.assert_series_equal(
        after.per_customer["probability_alive"], before.per_customer["probability_alive"]
    )
    assert after.typical_interval_days == before.typical_interval_days
    assert not after.per_customer.loc[planted_customer, "lapsed"]
    assert after.rules.flagged_and_lapsed == before.rules.flagged_and_lapsed - 1
    # A purchase after the outcome window changes no figure at all.
    late = planted.copy()
    late.loc[len(late)] = [flagged_ids[1], observation_end + pd.Timedelta(days=30), 80.0]
    unchanged = evaluate_alerts(late, cutoff=cutoff, observation_end=observation_end)
    assert unchanged.to_dict() == after.to_dict()
    # The features from the whole table equal those from the table cut by hand.
    features_all = cutoff_features(transactions, cutoff=cutoff)
    features_cut = cutoff_features(transactions[transactions["date"] <= cutoff], cutoff=cutoff)
    pd.testing.assert_frame_equal(features_all, features_cut)


def test_hand_counted_precision_and_recall():
    # fit_model=False: the overdue rule alone. Typical interval: a 10, b 10 -> 10 days.
    cutoff = pd.Timestamp("2024-06-30")
    rows = [
        ("a", "2024-06-01"), ("a", "2024-06-11"), ("a", "2024-06-21"),  # 9 days quiet: not flagged
        ("b", "2024-03-01"), ("b", "2024-03-11"),  # 111 days quiet: flagged, naive too
        ("c", "2024-06-05"),  # one-time, 25 days: not overdue (new window 30)
        ("d", "2024-05-01"),  # one-time, 60 days: flagged (> 30), not naive
        ("a", "2024-07-15"), ("d", "2024-08-01"),  # outcome: a and d buy again
        ("e", "2024-07-01"),  # first purchase after the cut-off: not in the population
        ("b", "2024-10-30"),  # after the outcome window: ignored
    ]  # fmt: skip
    tx = pd.DataFrame(rows, columns=["customer_id", "date"]).assign(amount=10.0)
    tx["date"] = pd.to_datetime(tx["date"])
    result = evaluate_alerts(tx, cutoff=cutoff, observation_end="2024-10-30", fit_model=False)
    assert result.customers == 4 and result.model_used == "historical"
    per = result.per_customer
    assert per["flagged"].to_dict() == {"a": False, "b": True, "c": False, "d": True}
    assert per["lapsed"].to_dict() == {"a": False, "b": True, "c": True, "d": False}
    assert per["naive"].to_dict() == {"a": False, "b": True, "c": False, "d": False}
    assert (result.rules.precision, result.rules.recall) == (0.5, 0.5)
    assert (result.naive.precision, result.naive.recall) == (1.0, 0.5)
    assert not result.beats_naive
    assert result.to_dict()["rules"] == {
        "flagged": 2, "lapsed": 2, "flagged_and_lapsed": 1, "precision": 0.5, "recall": 0.5,
    }  # fmt: skip


def test_the_outcome_window_must_be_over_and_empty_rules_score_nan():
    tx = pd.DataFrame({"customer_id": [1], "date": [pd.Timestamp("2024-06-01")], "amount": [1.0]})
    with pytest.raises(ValueError, match="outcome window"):
        evaluate_alerts(tx, cutoff="2024-05-01", observation_end="2024-06-01")
    empty = score_rule(np.zeros(3, bool), np.zeros(3, bool))
    assert np.isnan(empty.precision) and np.isnan(empty.recall)
    assert empty.to_dict()["precision"] is None


@pytest.mark.parametrize(
    "frequency, recency, T",
    [
        ([5] * 5, [20.0] * 5, [28.0] * 5),  # five identical customers
        ([0] * 50, [0.0] * 50, list(np.linspace(5, 50, 50))),  # one purchase each, nobody repeats
    ],
    ids=["identical", "no-repeaters"],
)
def test_degenerate_data_take_the_labelled_fallback_at_once(frequency, recency, T):
    started = time.perf_counter()
    fit = fit_bgnbd(frequency, recency, T)
    assert time.perf_counter() - started < 0.5  # the search it replaces took seconds
    assert fit.at_boundary and not fit.converged and "degenerate data" in fit.message
    summary = pd.DataFrame({"frequency": frequency, "recency": recency, "T": T, "monetary_value": 10.0})
    started = time.perf_counter()
    predictions, report = predict_clv(
        summary, horizon_days=365, discount_rate_annual=0.1, margin=0.3, min_repeat_customers=1
    )
    assert time.perf_counter() - started < 1.0
    assert report.fallback and report.model_used == "historical"
    assert (predictions["model_used"] == "historical").all()
