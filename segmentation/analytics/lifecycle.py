"""Customer lifecycle stages from purchase history (pure pandas, vectorised, no Django).

Input frame (one row per customer, any index)
---------------------------------------------
Required columns:

* ``frequency`` -- number of distinct purchase days over the customer's whole history (0 or NaN for
  a prospect). Note: this is *purchase days*, the RFM ``frequency`` of :func:`compute_rfm` with
  ``window_days=None`` -- not the BG/NBD repeat count.
* ``first_purchase``, ``last_purchase`` -- datetimes (NaT for prospects). Naive = UTC; only the UTC
  calendar date is used.

Optional columns (ignored when absent; NaN/None in a row means "unknown" for that row):

* ``probability_alive`` -- BG/NBD P(alive) in [0, 1];
* ``probability_no_purchase_90d`` -- BG/NBD probability of no purchase in the next 90 days
  (``clv.bgnbd_probability_no_purchase``), NaN where the model fit was not sound;
* ``segment`` -- RFM segment key (e.g. ``"champions"``, ``"loyal"``);
* ``previous_stage`` -- the stage key assigned at the previous run;
* ``previous_stage_at`` -- when that stage was assigned (datetime).

Derived quantities (all in days, see :func:`lifecycle_features`)
----------------------------------------------------------------
* ``days_since_last = as_of_date - last_purchase_date``; ``days_since_first`` likewise.
* ``typical_interval_days`` -- the tenant's typical purchase interval: the *median* over the repeat
  customers in the frame of their own mean interval ``(last - first) / (frequency - 1)``
  (``default_interval_days`` when the frame has no repeat customer), floored at 1 day
  (:func:`typical_interval_days`). The same for every row. It is the one quantity that makes a
  customer's stage depend on the other customers: ``typical_interval=`` gives it from outside (the
  incremental recompute passes the value of the last full run, so a few customers can be staged alone).
* ``interval_days`` -- the customer's interval, made robust when it rests on few purchases: the own
  mean interval shrunk towards the typical one with ``interval_prior_weight`` pseudo-gaps,
  ``((frequency - 1) * own + k * typical) / ((frequency - 1) + k)`` (an empirical-Bayes style average:
  one gap of two days says little, twenty gaps say a lot); for one-time buyers the typical interval.
  Intervals are floored at 1 day.
* ``quiet_floor`` = ``max(typical_interval_days, at_risk_min_days)``: a customer whose last purchase is
  at most this many days old is never at risk, whatever the model says (they bought more recently
  than the tenant's customers usually buy again).
* ``at_risk_after = max(at_risk_multiplier * interval_days, quiet_floor)``; for one-time buyers
  ``max(new_days, that)`` -- a first-time buyer is not "at risk" while still inside the new window.
* ``churn_after = max(churn_multiplier * interval_days, churn_min_days, at_risk_after)``.

Rules -- evaluated in this order, the FIRST matching rule wins
-------------------------------------------------------------
1. ``prospect``     -- no purchase (``frequency`` is 0/NaN or ``last_purchase`` is NaT).
2. ``churned``      -- ``days_since_last > churn_after``.
3. ``at_risk``      -- only when ``days_since_last > quiet_floor``, and then
   * where the BG/NBD fit is sound (``probability_no_purchase_90d`` known): the model says the
     customer will probably not buy in the next 90 days, ``probability_no_purchase_90d >=
     at_risk_quiet_probability`` (0.6), or ``probability_alive < at_risk_alive_threshold``;
   * otherwise (historical fallback, NaN): overdue, ``days_since_last > at_risk_after``.
   The model judges silence against the customer's own rate *and* the tenant's pattern at once; the
   overdue test is the labelled fallback when there is no sound model.
4. ``reactivated``  -- ``previous_stage`` is ``churned`` or ``at_risk`` and the customer purchased since:
   ``last_purchase``'s date is after ``previous_stage_at``'s date when that is known; when it is not
   (column absent or NaT), reaching this rule is taken as the evidence -- with fixed parameters a
   customer flagged churned/at risk can only stop matching rules 2-3 by purchasing again. A customer
   who purchased after being flagged but is overdue again is ``at_risk``/``churned`` (rules 2-3 first).
5. ``new``          -- ``frequency == 1`` (one purchase day and, by rules 2-3, still within
   ``max(new_days, at_risk_after)`` days of it; in particular every single-purchase customer whose
   purchase is at most ``new_days`` old, as long as ``churn_after >= new_days``).
6. ``loyal``        -- ``frequency >= loyal_min_frequency``, or ``segment`` is ``champions``/``loyal``.
7. ``repeat``       -- everyone else (two or more purchase days, active).

Why the shrinkage and the floor: with the customer's own interval alone, two purchases two days apart
made a customer "at risk" three days later (1.5 x 2 days). ``segmentation.analytics.evaluate`` measures
the rule against what customers did after a past cut-off (precision and recall against the naive
"no purchase for 90 days" rule).

The default multipliers follow common practice for "overdue" detection from a customer's own purchase
cycle (e.g. Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way", for the idea that silence
must be judged against the customer's own purchase rate); they are tenant-tunable settings, not
estimates.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from segmentation.analytics.rfm import SEGMENT_CHAMPIONS, SEGMENT_LOYAL, to_utc_day_number, to_utc_day_numbers

__all__ = [
    "REQUIRED_COLUMNS",
    "STAGES",
    "STAGE_AT_RISK",
    "STAGE_CHURNED",
    "STAGE_LOYAL",
    "STAGE_NEW",
    "STAGE_PROSPECT",
    "STAGE_REACTIVATED",
    "STAGE_REPEAT",
    "DEFAULT_AT_RISK_QUIET_PROBABILITY",
    "StageInfo",
    "assign_lifecycle_stage",
    "lifecycle_features",
    "typical_interval_days",
]

STAGE_PROSPECT = "prospect"
STAGE_NEW = "new"
STAGE_REPEAT = "repeat"
STAGE_LOYAL = "loyal"
STAGE_AT_RISK = "at_risk"
STAGE_CHURNED = "churned"
STAGE_REACTIVATED = "reactivated"


class StageInfo(NamedTuple):
    """A lifecycle stage: stable key and English label (translated by the Django layer)."""

    key: str
    label: str
    description: str


STAGES: tuple[StageInfo, ...] = (
    StageInfo(STAGE_PROSPECT, "Prospect", "Known contact without any purchase yet."),
    StageInfo(STAGE_NEW, "New", "Made a first purchase recently and has not bought again yet."),
    StageInfo(STAGE_REPEAT, "Repeat", "Bought on at least two different days and is active."),
    StageInfo(STAGE_LOYAL, "Loyal", "Buys regularly (many purchase days or a Champions/Loyal RFM segment)."),
    StageInfo(STAGE_AT_RISK, "At risk", "Overdue compared with their usual purchase interval."),
    StageInfo(STAGE_CHURNED, "Churned", "Silent for far longer than their usual purchase interval."),
    StageInfo(STAGE_REACTIVATED, "Reactivated", "Was at risk or churned and has purchased again since."),
)

REQUIRED_COLUMNS: tuple[str, ...] = ("frequency", "first_purchase", "last_purchase")
_LAPSED = (STAGE_CHURNED, STAGE_AT_RISK)
#: With a sound BG/NBD fit: at risk from this probability of no purchase in the next 90 days on.
DEFAULT_AT_RISK_QUIET_PROBABILITY = 0.6
_LOYAL_SEGMENTS = (SEGMENT_CHAMPIONS, SEGMENT_LOYAL)


def _own_intervals(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(frequency, first day, last day, own mean interval: NaN unless two or more purchase days)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"lifecycle input is missing column(s): {', '.join(missing)}")
    frequency = pd.to_numeric(df["frequency"]).to_numpy(dtype=float, na_value=np.nan)
    first = to_utc_day_numbers(df["first_purchase"])
    last = to_utc_day_numbers(df["last_purchase"])
    with np.errstate(invalid="ignore", divide="ignore"):
        own = np.where(frequency >= 2, (last - first) / (frequency - 1.0), np.nan)
    return frequency, first, last, own


def typical_interval_days(df: pd.DataFrame, *, default_interval_days: float = 30.0) -> float:
    """The typical purchase interval of the customers in ``df`` (see the module docstring)."""
    if default_interval_days <= 0:
        raise ValueError("default_interval_days must be > 0")
    _frequency, _first, _last, own = _own_intervals(df)
    own_valid = own[np.isfinite(own)]
    typical = float(np.median(own_valid)) if own_valid.size else float(default_interval_days)
    return max(typical, 1.0)


def lifecycle_features(
    df: pd.DataFrame,
    *,
    as_of: Any,
    new_days: int = 30,
    churn_multiplier: float = 3.0,
    at_risk_multiplier: float = 1.5,
    churn_min_days: int = 365,
    at_risk_min_days: int = 0,
    default_interval_days: float = 30.0,
    interval_prior_weight: float = 2.0,
    typical_interval: float | None = None,
) -> pd.DataFrame:
    """The intermediate day counts behind :func:`assign_lifecycle_stage` (useful to explain a stage).

    Columns: ``days_since_first``, ``days_since_last``, ``interval_days``, ``typical_interval_days``,
    ``quiet_floor``, ``at_risk_after``, ``churn_after`` (floats, NaN for prospects). See the module
    docstring for the definitions. ``typical_interval``: the typical interval to use instead of the
    frame's own (None: :func:`typical_interval_days` of ``df``).
    """
    frequency, first, last, own = _own_intervals(df)
    if new_days < 0 or churn_min_days < 0 or at_risk_min_days < 0:
        raise ValueError("new_days, churn_min_days and at_risk_min_days must be >= 0")
    if at_risk_multiplier <= 0 or churn_multiplier < at_risk_multiplier:
        raise ValueError("need 0 < at_risk_multiplier <= churn_multiplier")
    if default_interval_days <= 0:
        raise ValueError("default_interval_days must be > 0")
    if not (interval_prior_weight >= 0 and np.isfinite(interval_prior_weight)):
        raise ValueError("interval_prior_weight must be >= 0")
    if typical_interval is not None and not (typical_interval >= 1 and np.isfinite(typical_interval)):
        raise ValueError("typical_interval must be a number of days >= 1")

    as_of_day = to_utc_day_number(as_of)
    since_first = as_of_day - first
    since_last = as_of_day - last

    if typical_interval is None:
        typical = typical_interval_days(df, default_interval_days=default_interval_days)
    else:
        typical = float(typical_interval)
    gaps = np.where(np.isfinite(own), frequency - 1.0, 0.0)
    own_or_typical = np.where(gaps > 0, own, typical)
    k = float(interval_prior_weight)
    with np.errstate(invalid="ignore", divide="ignore"):
        shrunk = np.where(gaps + k > 0, (gaps * own_or_typical + k * typical) / (gaps + k), typical)
    interval = np.maximum(shrunk, 1.0)

    quiet_floor = max(typical, float(at_risk_min_days))
    at_risk_after = np.maximum(at_risk_multiplier * interval, quiet_floor)
    one_time = frequency == 1
    at_risk_after = np.where(one_time, np.maximum(at_risk_after, float(new_days)), at_risk_after)
    churn_after = np.maximum(np.maximum(churn_multiplier * interval, float(churn_min_days)), at_risk_after)

    has_purchase = (np.nan_to_num(frequency, nan=0.0) > 0) & ~np.isnan(last)
    nan = np.nan
    return pd.DataFrame(
        {
            "days_since_first": np.where(has_purchase, since_first, nan),
            "days_since_last": np.where(has_purchase, since_last, nan),
            "interval_days": np.where(has_purchase, interval, nan),
            "typical_interval_days": np.where(has_purchase, typical, nan),
            "quiet_floor": np.where(has_purchase, quiet_floor, nan),
            "at_risk_after": np.where(has_purchase, at_risk_after, nan),
            "churn_after": np.where(has_purchase, churn_after, nan),
        },
        index=df.index,
    )


def assign_lifecycle_stage(
    df: pd.DataFrame,
    *,
    as_of: Any,
    new_days: int = 30,
    churn_multiplier: float = 3.0,
    at_risk_multiplier: float = 1.5,
    churn_min_days: int = 365,
    at_risk_min_days: int = 0,
    at_risk_alive_threshold: float = 0.3,
    loyal_min_frequency: int = 5,
    default_interval_days: float = 30.0,
    interval_prior_weight: float = 2.0,
    at_risk_quiet_probability: float = DEFAULT_AT_RISK_QUIET_PROBABILITY,
    typical_interval: float | None = None,
) -> pd.Series:
    """Lifecycle stage key per customer, by the ordered rules of the module docstring.
    ``typical_interval``: as in :func:`lifecycle_features`.

    Returns a Series of stage keys (``object`` dtype) named ``"lifecycle_stage"`` with ``df``'s index.
    """
    if not 0 <= at_risk_alive_threshold <= 1:
        raise ValueError("at_risk_alive_threshold must be in [0, 1]")
    if not 0 < at_risk_quiet_probability <= 1:
        raise ValueError("at_risk_quiet_probability must be in (0, 1]")
    if loyal_min_frequency < 2:
        raise ValueError("loyal_min_frequency must be >= 2")
    feats = lifecycle_features(
        df,
        as_of=as_of,
        new_days=new_days,
        churn_multiplier=churn_multiplier,
        at_risk_multiplier=at_risk_multiplier,
        churn_min_days=churn_min_days,
        at_risk_min_days=at_risk_min_days,
        default_interval_days=default_interval_days,
        interval_prior_weight=interval_prior_weight,
        typical_interval=typical_interval,
    )
    n = len(df)
    frequency = np.nan_to_num(pd.to_numeric(df["frequency"]).to_numpy(dtype=float, na_value=np.nan), nan=0.0)
    since_last = feats["days_since_last"].to_numpy()
    prospect = np.isnan(since_last)
    churned = ~prospect & (since_last > feats["churn_after"].to_numpy())
    overdue = ~prospect & (since_last > feats["at_risk_after"].to_numpy())

    quiet_long_enough = ~prospect & (since_last > feats["quiet_floor"].to_numpy())
    if "probability_alive" in df.columns:
        alive = pd.to_numeric(df["probability_alive"]).to_numpy(dtype=float, na_value=np.nan)
        unlikely_alive = ~np.isnan(alive) & (alive < at_risk_alive_threshold)
    else:
        unlikely_alive = np.zeros(n, dtype=bool)
    if "probability_no_purchase_90d" in df.columns:
        quiet = pd.to_numeric(df["probability_no_purchase_90d"]).to_numpy(dtype=float, na_value=np.nan)
    else:
        quiet = np.full(n, np.nan)
    modelled = ~np.isnan(quiet)
    model_says_lapsing = modelled & ((quiet >= at_risk_quiet_probability) | unlikely_alive)
    fallback_says_overdue = ~modelled & (overdue | unlikely_alive)
    at_risk = quiet_long_enough & (model_says_lapsing | fallback_says_overdue)

    reactivated = np.zeros(n, dtype=bool)
    if "previous_stage" in df.columns:
        was_lapsed = ~prospect & df["previous_stage"].isin(_LAPSED).to_numpy(dtype=bool)
        if "previous_stage_at" in df.columns:
            stage_day = to_utc_day_numbers(df["previous_stage_at"])
            last_day = to_utc_day_numbers(df["last_purchase"])
            # unknown previous_stage_at -> reaching rule 4 is the evidence (see the module docstring)
            bought_since = np.isnan(stage_day) | (last_day > stage_day)
        else:
            bought_since = np.ones(n, dtype=bool)
        reactivated = was_lapsed & bought_since

    if "segment" in df.columns:
        loyal_segment = df["segment"].isin(_LOYAL_SEGMENTS).to_numpy(dtype=bool)
    else:
        loyal_segment = np.zeros(n, dtype=bool)
    loyal = (frequency >= loyal_min_frequency) | loyal_segment
    new = frequency == 1

    # np.select picks the first true condition: this list IS the documented rule order
    conditions = [prospect, churned, at_risk, reactivated, new, loyal]
    choices = [STAGE_PROSPECT, STAGE_CHURNED, STAGE_AT_RISK, STAGE_REACTIVATED, STAGE_NEW, STAGE_LOYAL]
    stages = np.select(conditions, choices, default=STAGE_REPEAT)
    return pd.Series(stages.astype(object), index=df.index, name="lifecycle_stage", dtype=object)
