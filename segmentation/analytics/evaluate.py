"""How far to trust the early warning: replay the at-risk rule at a past cut-off and compare it with
what customers did afterwards (pure pandas, no Django).

For a cut-off day ``c`` and an outcome window of ``outcome_days`` (default 90):

* the **features** are computed from purchases on or before ``c`` only (the history is cut first;
  nothing after ``c`` is read by the rules, the model fit or the tenant's typical interval);
* the **population** is every customer with at least one purchase on or before ``c``;
* the **outcome** of a customer is "lapsed": no purchase day in ``(c, c + outcome_days]``;
* **flagged** by the rules = lifecycle stage ``at_risk`` or ``churned`` at ``c`` (the stages whose
  customers the early warning treats as lost or slipping away), with the BG/NBD P(alive) fitted on the
  history when the fit is sound (:func:`clv.predict_clv`'s rule), exactly as a recompute would do;
* the **naive rule** flags every customer with no purchase for more than ``naive_days`` (90) days.

Then, for each rule, precision = flagged and lapsed / flagged ("of the customers flagged at risk, the
share who then bought nothing for 90 days") and recall = flagged and lapsed / lapsed ("of those who
bought nothing for 90 days, the share flagged beforehand"). The data must reach the end of the
outcome window (``observation_end >= c + outcome_days``), otherwise silence would be counted as lapse.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from segmentation.analytics import clv as clv_analytics
from segmentation.analytics import lifecycle
from segmentation.analytics.rfm import customer_days, to_utc_day_number, to_utc_day_numbers

__all__ = [
    "DEFAULT_OUTCOME_DAYS",
    "AlertEvaluation",
    "RuleScore",
    "cutoff_features",
    "evaluate_alerts",
    "score_rule",
]

DEFAULT_OUTCOME_DAYS = 90
FLAGGED_STAGES = (lifecycle.STAGE_AT_RISK, lifecycle.STAGE_CHURNED)
#: Parameters of the CLV fit: only P(alive) is used here, the money figures do not matter.
_STAGE_ONLY_PARAMS = ("at_risk_alive_threshold", "loyal_min_frequency", "at_risk_quiet_probability")
_CLV_ARGS = {"horizon_days": 365.0, "discount_rate_annual": 0.1, "margin": 0.3, "time_unit": "W"}


@dataclass(frozen=True)
class RuleScore:
    """Confusion counts of one rule against the outcome, with precision and recall (NaN when empty)."""

    flagged: int
    lapsed: int
    flagged_and_lapsed: int

    @property
    def precision(self) -> float:
        return self.flagged_and_lapsed / self.flagged if self.flagged else math.nan

    @property
    def recall(self) -> float:
        return self.flagged_and_lapsed / self.lapsed if self.lapsed else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "precision": _finite(self.precision), "recall": _finite(self.recall)}


@dataclass
class AlertEvaluation:
    """The result of :func:`evaluate_alerts`; ``to_dict()`` is JSON-safe (NaN -> None)."""

    cutoff: str
    outcome_days: int
    naive_days: int
    customers: int
    rules: RuleScore
    naive: RuleScore
    model_used: str
    typical_interval_days: float
    #: flagged customers whose last purchase was more recent than the typical interval (should be 0)
    flagged_recent_buyers: int
    per_customer: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    @property
    def beats_naive(self) -> bool:
        return _ge(self.rules.precision, self.naive.precision) and _ge(self.rules.recall, self.naive.recall)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff,
            "outcome_days": self.outcome_days,
            "naive_days": self.naive_days,
            "customers": self.customers,
            "rules": self.rules.to_dict(),
            "naive": self.naive.to_dict(),
            "model_used": self.model_used,
            "typical_interval_days": _finite(self.typical_interval_days),
            "flagged_recent_buyers": self.flagged_recent_buyers,
            "beats_naive": self.beats_naive,
        }


def _finite(value: float) -> float | None:
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


def _ge(a: float, b: float) -> bool:
    return math.isfinite(a) and (not math.isfinite(b) or a >= b)


def score_rule(flagged: np.ndarray, lapsed: np.ndarray) -> RuleScore:
    flagged = np.asarray(flagged, dtype=bool)
    lapsed = np.asarray(lapsed, dtype=bool)
    return RuleScore(
        flagged=int(flagged.sum()), lapsed=int(lapsed.sum()), flagged_and_lapsed=int((flagged & lapsed).sum())
    )


def cutoff_features(
    history: pd.DataFrame,
    *,
    cutoff: Any,
    customer_col: str = "customer_id",
    date_col: str = "date",
    value_col: str = "amount",
    stage_params: dict[str, Any] | None = None,
    fit_model: bool = True,
) -> pd.DataFrame:
    """Lifecycle stage (and its inputs) of every customer with a purchase on or before ``cutoff``, from
    the purchases on or before ``cutoff`` only (later rows are dropped here, before anything is
    computed). Columns: ``frequency``, ``first_purchase``, ``last_purchase``, ``probability_alive``,
    ``model_used``, ``stage`` and :func:`lifecycle.lifecycle_features`' columns."""
    cut_day = to_utc_day_number(cutoff)
    days = to_utc_day_numbers(history[date_col])
    keep = ~np.isnan(days) & history[customer_col].notna().to_numpy() & (days <= cut_day)
    amounts = pd.to_numeric(history[value_col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    per_day = customer_days(
        history[customer_col].to_numpy()[keep],
        days[keep].astype(np.int64),
        np.nan_to_num(amounts[keep], nan=0.0),
    )
    index = pd.Index(per_day.customers, name=customer_col)
    frame = pd.DataFrame(
        {
            "frequency": per_day.day_count.astype("int64"),
            "first_purchase": pd.to_datetime(per_day.first_day, unit="D"),
            "last_purchase": pd.to_datetime(per_day.last_day, unit="D"),
        },
        index=index,
    )
    frame["probability_alive"] = np.nan
    frame["probability_no_purchase_90d"] = np.nan
    frame["model_used"] = "historical"
    if fit_model and len(frame):
        summary = clv_analytics.summary_from_customer_days(per_day, observation_day=cut_day, time_unit="W")
        predictions, report = clv_analytics.predict_clv(summary, **_CLV_ARGS)
        frame["probability_alive"] = predictions["probability_alive"].reindex(index).to_numpy()
        quiet = clv_analytics.probability_no_purchase_from_report(report, summary, days=DEFAULT_OUTCOME_DAYS)
        frame["probability_no_purchase_90d"] = pd.Series(quiet, index=summary.index).reindex(index).to_numpy()
        frame["model_used"] = predictions["model_used"].reindex(index).to_numpy()
    params = dict(stage_params or {})
    as_of = pd.Timestamp(cut_day, unit="D")
    features = lifecycle.lifecycle_features(
        frame,
        as_of=as_of,
        **{k: v for k, v in params.items() if k not in _STAGE_ONLY_PARAMS},
    )
    frame["stage"] = lifecycle.assign_lifecycle_stage(frame, as_of=as_of, **params)
    return frame.join(features)


def evaluate_alerts(
    transactions: pd.DataFrame,
    *,
    cutoff: Any,
    observation_end: Any = None,
    outcome_days: int = DEFAULT_OUTCOME_DAYS,
    naive_days: int = DEFAULT_OUTCOME_DAYS,
    customer_col: str = "customer_id",
    date_col: str = "date",
    value_col: str = "amount",
    stage_params: dict[str, Any] | None = None,
    fit_model: bool = True,
) -> AlertEvaluation:
    """Replay the at-risk rule at ``cutoff`` and score it and the naive rule against the outcome window
    (see the module docstring). ``observation_end`` (default: the last transaction day) must be at
    least ``cutoff + outcome_days``."""
    if outcome_days < 1 or naive_days < 1:
        raise ValueError("outcome_days and naive_days must be >= 1")
    cut_day = to_utc_day_number(cutoff)
    days = to_utc_day_numbers(transactions[date_col])
    valid = ~np.isnan(days) & transactions[customer_col].notna().to_numpy()
    if observation_end is not None:
        end_day = to_utc_day_number(observation_end)
    else:
        end_day = int(np.nanmax(days[valid])) if valid.any() else cut_day
    if end_day < cut_day + outcome_days:
        raise ValueError(
            f"the data end {end_day - cut_day} days after the cut-off; "
            f"the outcome window needs {outcome_days}"
        )
    # The history the rules see: strictly the rows up to the cut-off, cut here.
    before = transactions.loc[valid & (days <= cut_day)]
    features = cutoff_features(
        before,
        cutoff=cutoff,
        customer_col=customer_col,
        date_col=date_col,
        value_col=value_col,
        stage_params=stage_params,
        fit_model=fit_model,
    )
    in_window = valid & (days > cut_day) & (days <= cut_day + outcome_days)
    bought = pd.Index(pd.unique(transactions[customer_col].to_numpy()[in_window]))
    lapsed = ~features.index.isin(bought)
    flagged = features["stage"].isin(FLAGGED_STAGES).to_numpy(dtype=bool)
    since_last = features["days_since_last"].to_numpy(dtype=float)
    naive = since_last > naive_days
    recent = since_last <= features["typical_interval_days"].to_numpy(dtype=float)
    per_customer = pd.DataFrame(
        {
            "stage": features["stage"],
            "days_since_last": since_last,
            "probability_alive": features["probability_alive"],
            "flagged": flagged,
            "naive": naive,
            "lapsed": lapsed,
        },
        index=features.index,
    )
    typical = float(features["typical_interval_days"].iloc[0]) if len(features) else math.nan
    models = features["model_used"].unique() if len(features) else np.array(["historical"])
    return AlertEvaluation(
        cutoff=pd.Timestamp(cut_day, unit="D").date().isoformat(),
        outcome_days=int(outcome_days),
        naive_days=int(naive_days),
        customers=len(features),
        rules=score_rule(flagged, lapsed),
        naive=score_rule(naive, lapsed),
        model_used=str(models[0]),
        typical_interval_days=typical,
        flagged_recent_buyers=int((flagged & recent).sum()),
        per_customer=per_customer,
    )
