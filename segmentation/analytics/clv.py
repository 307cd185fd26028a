r"""Customer lifetime value: BG/NBD purchase model + Gamma-Gamma spend model, with an honest fallback.

References
----------
* [FHL05a] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting Your Customers the Easy Way:
  An Alternative to the Pareto/NBD Model". *Marketing Science* 24(2), 275-284.
* [FHL05b] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "RFM and CLV: Using Iso-Value Curves
  for Customer Base Analysis". *Journal of Marketing Research* 42(4), 415-430.
* [FH13] Fader, P. S. & Hardie, B. G. S. (2013). "The Gamma-Gamma Model of Monetary Value" (note).
* [FHL-note] Fader, Hardie & Lee (2008). "Computing P(alive) Using the BG/NBD Model" (note).
* The ``lifetimes`` package (C. Davidson-Pilon), whose conventions this module reproduces and is tested
  against: ``summary_data_from_transaction_data``, ``BetaGeoFitter``, ``GammaGammaFitter``,
  ``customer_lifetime_value``.

Notation and data (the "RFM summary")
-------------------------------------
Time is measured in *periods*: days (``time_unit="D"``) or weeks (``"W"`` = days / 7). Purchases are
counted per UTC calendar day (several orders on one day are one purchase). For each customer:

* ``x = frequency`` = number of *repeat* purchase days (distinct purchase days - 1);
* ``t_x = recency`` = time of the last purchase day minus the first purchase day;
* ``T`` = observation end day minus first purchase day;
* ``m_x = monetary_value`` = mean of the per-day summed value over the repeat purchase days
  (first day excluded); 0 when ``x = 0``.

BG/NBD [FHL05a]
---------------
``lambda ~ Gamma(r, alpha)`` (rate), ``p ~ Beta(a, b)``; Poisson purchasing while alive; dropout with
probability ``p`` after each repeat purchase. Individual likelihood [FHL05a eq. 6]::

    L = B(a, b + x) / B(a, b) * Gamma(r + x) alpha^r / (Gamma(r) (alpha + T)^(r + x))
        + 1{x > 0} B(a + 1, b + x - 1) / B(a, b) * Gamma(r + x) alpha^r / (Gamma(r) (alpha + t_x)^(r + x))

Evaluated in logs as ``A1 + A2 + logaddexp(A3, A4)`` with
``A1 = lnG(r+x) - lnG(r) + r ln(alpha)``, ``A2 = lnG(a+b) + lnG(b+x) - lnG(b) - lnG(a+b+x)``,
``A3 = -(r+x) ln(alpha+T)``, ``A4 = ln(a) - ln(b+x-1) - (r+x) ln(alpha+t_x)`` (x > 0 only), using
``B(a+1, b+x-1) / B(a, b+x) = a / (b+x-1)``. The analytic gradient (digamma functions) is supplied to
the optimiser.

Conditional expected number of purchases in ``(T, T + t]`` [FHL05a eq. 10]::

    E[Y(t) | x, t_x, T] = (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x)
                          * 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))] * P(alive)

evaluated through Euler's transformation ``2F1(A,B;C;z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z)``, which turns
the bracket into ``1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)``: the upper parameters no longer grow
with ``x`` so the series stays well conditioned for heavy buyers. Near ``a = 1`` (a removable 0/0, where
floating-point cancellation would dominate) the value is linearly interpolated between ``a = 1 - 1e-4``
and ``a = 1 + 1e-4`` (error ~1e-8 relative).

``P(alive | x, t_x, T) = 1 / (1 + 1{x>0} a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))`` [FHL-note]; it is 1
for ``x = 0`` because in the BG/NBD a customer can only drop out right after a repeat purchase.

Gamma-Gamma [FHL05b, FH13]
--------------------------
``z_ij ~ Gamma(p, nu_i)`` (rate), ``nu_i ~ Gamma(q, gamma)``. The mean ``m_x`` of ``x`` transactions has
likelihood::

    f(m_x | x) = Gamma(p x + q) / (Gamma(p x) Gamma(q))
                 * gamma^q m_x^(p x - 1) x^(p x) / (gamma + x m_x)^(p x + q)

and ``E[Z | x, m_x] = (q - 1)/(p x + q - 1) * p gamma/(q - 1) + p x/(p x + q - 1) * m_x
= p (gamma + x m_x) / (p x + q - 1)``: a credibility-weighted mix of the population mean
``p gamma / (q - 1)`` (finite only when ``q > 1``) and the customer's own mean.

CLV
---
``CLV = margin * sum_{k=1..K} E[Z] * (E[Y(s_k)] - E[Y(s_{k-1})]) / (1 + d)^(s_k)`` with
``s_k = min(k * step, horizon)`` in periods and ``d`` the discount rate per period -- the same
construction as ``lifetimes.utils.customer_lifetime_value`` (there with monthly steps). Units: ``CLV`` is
in the currency of ``monetary_value`` (gross margin if ``margin`` < 1), discounted to ``T``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

from segmentation.analytics.rfm import (
    CustomerDays,
    _amounts_to_float,
    customer_days,
    to_utc_day_number,
    to_utc_day_numbers,
)

__all__ = [
    "BGNBDFit",
    "GammaGammaFit",
    "HoldoutValidation",
    "ModelReport",
    "bgnbd_expected_purchases",
    "bgnbd_log_likelihood",
    "bgnbd_population_expected_purchases",
    "bgnbd_probability_alive",
    "customer_lifetime_value",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_expected_value",
    "gamma_gamma_log_likelihood",
    "historical_clv_fallback",
    "holdout_validation",
    "predict_clv",
    "summary_from_transactions",
]

TimeUnit = Literal["D", "W"]
DAYS_PER_UNIT: dict[str, float] = {"D": 1.0, "W": 7.0}
DAYS_PER_YEAR = 365.25
DAYS_PER_MONTH = DAYS_PER_YEAR / 12.0

#: Bounds (in the optimiser's scaled units) for every model parameter.
PARAM_LOWER = 1e-6
PARAM_UPPER = 1e6
#: A parameter within this factor of a bound is reported as "at the boundary".
BOUNDARY_FACTOR = 10.0
#: Mean dropout probability a/(a+b) below this means "the data show (almost) no lapsing".
MIN_MEAN_DROPOUT = 1e-3
#: Minimum number of repeat customers for predict_clv to trust the probabilistic models.
MIN_REPEAT_CUSTOMERS = 20


def _days_per_unit(time_unit: str) -> float:
    try:
        return DAYS_PER_UNIT[time_unit]
    except KeyError:
        raise ValueError(f"time_unit must be 'D' or 'W', got {time_unit!r}") from None


# ==================================================================================================
# RFM summary
# ==================================================================================================
def summary_from_transactions(
    transactions: pd.DataFrame,
    customer_col: str = "customer_id",
    date_col: str = "date",
    value_col: str | None = "amount",
    observation_end: Any = None,
    time_unit: TimeUnit = "W",
) -> pd.DataFrame:
    """Per-customer ``frequency``, ``recency``, ``T`` (and ``monetary_value``, ``total_value``).

    Dates are reduced to UTC calendar days (naive = UTC); transactions on days after
    ``observation_end``'s UTC day are ignored (``None`` = the last transaction day). Definitions are in
    the module docstring; they equal ``lifetimes.utils.summary_data_from_transaction_data(...,
    freq="D", freq_multiplier=7 if weeks else 1)``. ``total_value`` (not in lifetimes) is the total spend
    including the first purchase day, used by the historical fallback. Indexed by customer id, sorted.
    """
    _days_per_unit(time_unit)  # an unknown time unit fails here, before any work
    needed = [customer_col, date_col] + ([value_col] if value_col is not None else [])
    missing = [c for c in needed if c not in transactions.columns]
    if missing:
        raise ValueError(f"transactions is missing column(s): {', '.join(missing)}")
    columns = ["frequency", "recency", "T"] + (["monetary_value", "total_value"] if value_col else [])

    days = to_utc_day_numbers(transactions[date_col])
    keep = ~np.isnan(days) & transactions[customer_col].notna().to_numpy()
    if observation_end is not None:
        obs_day = float(to_utc_day_number(observation_end))
    elif keep.any():
        obs_day = float(np.nanmax(days[keep]))
    else:
        obs_day = 0.0
    keep &= days <= obs_day
    if not keep.any():
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
        empty["frequency"] = empty["frequency"].astype("int64")
        empty.index.name = customer_col
        return empty

    values = (
        np.nan_to_num(_amounts_to_float(transactions[value_col]), nan=0.0)
        if value_col is not None
        else np.zeros(len(transactions))
    )
    per_day = customer_days(
        transactions[customer_col].to_numpy()[keep], days[keep].astype(np.int64), values[keep]
    )
    out = summary_from_customer_days(per_day, observation_day=obs_day, time_unit=time_unit)
    if value_col is None:
        out = out[["frequency", "recency", "T"]]
    out.index.name = customer_col
    return out


def summary_from_customer_days(
    per_day: CustomerDays, *, observation_day: float, time_unit: TimeUnit = "W"
) -> pd.DataFrame:
    """:func:`summary_from_transactions`'s result from purchases already reduced by
    ``rfm.customer_days`` (the caller chose the purchases: up to the observation day)."""
    dpu = _days_per_unit(time_unit)
    frequency = per_day.day_count - 1
    out = pd.DataFrame(
        {
            "frequency": frequency.astype("int64"),
            "recency": (per_day.last_day - per_day.first_day).astype(float) / dpu,
            "T": (float(observation_day) - per_day.first_day).astype(float) / dpu,
        },
        index=pd.Index(per_day.customers),
    )
    repeat_total = per_day.total - per_day.first_day_total
    out["monetary_value"] = np.where(frequency > 0, repeat_total / np.maximum(frequency, 1), 0.0)
    out["total_value"] = per_day.total.astype(float)
    return out


# ==================================================================================================
# Input checks
# ==================================================================================================
def _as_float_array(name: str, values: Any) -> np.ndarray:
    if isinstance(values, pd.Series | pd.Index):
        arr = values.to_numpy(dtype=float, na_value=np.nan)
    else:
        arr = np.asarray(values, dtype=float)
    return np.atleast_1d(arr)


def _check_rft(frequency: Any, recency: Any, T: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = _as_float_array("frequency", frequency)
    tx = _as_float_array("recency", recency)
    TT = _as_float_array("T", T)
    if not (x.shape == tx.shape == TT.shape):
        raise ValueError(
            f"frequency, recency and T must have the same length ({x.shape}, {tx.shape}, {TT.shape})"
        )
    if not (np.isfinite(x).all() and np.isfinite(tx).all() and np.isfinite(TT).all()):
        raise ValueError("frequency, recency and T must be finite (no NaN/inf)")
    if (x < 0).any() or (x != np.round(x)).any():
        raise ValueError("frequency must hold non-negative integers")
    if (tx < 0).any():
        raise ValueError("recency must be >= 0")
    if (tx > TT * (1 + 1e-12) + 1e-12).any():
        raise ValueError("recency must be <= T")
    if (tx[x == 0] != 0).any():
        raise ValueError("recency must be 0 when frequency is 0")
    return x, tx, TT


def _params4(params: Any) -> tuple[float, float, float, float]:
    if isinstance(params, BGNBDFit):
        return params.r, params.alpha, params.a, params.b
    r, alpha, a, b = (float(v) for v in params)
    return r, alpha, a, b


# ==================================================================================================
# BG/NBD
# ==================================================================================================
@dataclass
class BGNBDFit:
    """Fitted BG/NBD parameters (alpha in the data's period units) and diagnostics.

    ``log_likelihood`` is the total (summed, unpenalised) log-likelihood at the parameters.
    ``at_boundary`` flags degenerate fits (see ``message``); ``converged`` is the optimiser's verdict
    (or a vanishing projected gradient).
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    converged: bool
    at_boundary: bool
    message: str
    n_customers: int
    penalizer: float = 0.0

    @property
    def params(self) -> tuple[float, float, float, float]:
        """``(r, alpha, a, b)``."""
        return (self.r, self.alpha, self.a, self.b)

    @property
    def mean_dropout(self) -> float:
        """``E[p] = a / (a + b)``: mean probability of dropping out after a purchase."""
        return self.a / (self.a + self.b)


def _bgnbd_terms(r: float, alpha: float, a: float, b: float, x: np.ndarray, tx: np.ndarray, T: np.ndarray):
    pos = x > 0
    log_alpha_T = np.log(alpha + T)
    log_alpha_tx = np.log(alpha + tx)
    A1 = gammaln(r + x) - gammaln(r) + r * math.log(alpha)
    A2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    A3 = -(r + x) * log_alpha_T
    b_x1 = b + np.maximum(x, 1.0) - 1.0
    A4 = np.full_like(A3, -np.inf)
    A4[pos] = math.log(a) - np.log(b_x1[pos]) - (r + x[pos]) * log_alpha_tx[pos]
    L = np.logaddexp(A3, A4)
    return A1 + A2 + L, (A3, A4, L, log_alpha_T, log_alpha_tx, b_x1)


def bgnbd_log_likelihood(
    params: BGNBDFit | Sequence[float],
    frequency: Any,
    recency: Any,
    T: Any,
    *,
    individual: bool = False,
) -> float | np.ndarray:
    """BG/NBD log-likelihood [FHL05a eq. 6] at ``params = (r, alpha, a, b)``.

    Returns the sum over customers, or the per-customer values with ``individual=True``.
    """
    r, alpha, a, b = _params4(params)
    x, tx, TT = _check_rft(frequency, recency, T)
    if min(r, alpha, a, b) <= 0:
        raise ValueError("BG/NBD parameters must be positive")
    ll, _ = _bgnbd_terms(r, alpha, a, b, x, tx, TT)
    return ll if individual else float(ll.sum())


def _wsum(w: np.ndarray, values: np.ndarray) -> float:
    """Weighted sum without BLAS (a 1-D ``w @ v`` goes through multi-threaded BLAS, which is very slow on
    a busy machine)."""
    return float(np.einsum("i,i->", w, values))


def _bgnbd_objective(
    log_params: np.ndarray,
    x: np.ndarray,
    tx: np.ndarray,
    T: np.ndarray,
    w: np.ndarray,
    wsum: float,
    penalizer: float,
) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood (+ L2 penalty on the parameters) and its gradient in log space."""
    theta = np.exp(np.clip(log_params, -50.0, 50.0))
    r, alpha, a, b = theta
    ll, (A3, A4, L, log_alpha_T, log_alpha_tx, b_x1) = _bgnbd_terms(r, alpha, a, b, x, tx, T)
    w3 = np.exp(A3 - L)
    w4 = np.exp(A4 - L)  # 0 where x == 0
    d_r = digamma(r + x) - digamma(r) + math.log(alpha) - w3 * log_alpha_T - w4 * log_alpha_tx
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + T) + w4 / (alpha + tx))
    dab = digamma(a + b) - digamma(a + b + x)
    d_a = dab + w4 / a
    d_b = dab + digamma(b + x) - digamma(b) - w4 / b_x1
    grad_theta = np.array([_wsum(w, d_r), _wsum(w, d_alpha), _wsum(w, d_a), _wsum(w, d_b)]) / wsum
    value = -_wsum(w, ll) / wsum + penalizer * float(np.sum(theta * theta))
    grad = -grad_theta * theta + 2.0 * penalizer * theta * theta
    if not np.isfinite(value):
        return np.inf, np.zeros(4)
    return value, grad


def _projected_grad_norm(log_params: np.ndarray, grad: np.ndarray, lo: float, hi: float) -> float:
    g = grad.copy()
    g[(log_params <= lo + 1e-9) & (g > 0)] = 0.0
    g[(log_params >= hi - 1e-9) & (g < 0)] = 0.0
    return float(np.max(np.abs(g))) if g.size else 0.0


_GRAD_TOL = 1e-5  # on the mean negative log-likelihood per customer, in log-parameter space


def _minimise(
    objective: Any,
    starts: list[np.ndarray],
    args: tuple,
    lo: float,
    hi: float,
) -> tuple[np.ndarray, float, bool, str]:
    """L-BFGS-B from the first start; on failure also L-BFGS-B from the other starts, then BFGS and
    Nelder-Mead; returns the best (lowest objective) point, its value, convergence and message."""
    bounds = [(lo, hi)] * len(starts[0])
    best: tuple[np.ndarray, float, bool, str] | None = None

    def consider(x: np.ndarray, method: str, success: bool, message: str) -> None:
        nonlocal best
        x = np.clip(x, lo, hi)
        value, grad = objective(x, *args)
        if not np.isfinite(value):
            return
        ok = bool(success) or _projected_grad_norm(x, grad, lo, hi) < _GRAD_TOL
        if best is None or value < best[1] - 1e-12 or (ok and not best[2] and value <= best[1] + 1e-9):
            best = (x, float(value), ok, f"{method}: {message}")

    def run_lbfgsb(start: np.ndarray) -> None:
        res = minimize(
            objective,
            start,
            args=args,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 5000, "ftol": 1e-12, "gtol": 1e-8, "maxcor": 20},
        )
        consider(res.x, "L-BFGS-B", res.success, str(res.message))

    run_lbfgsb(starts[0])
    if best is not None and not best[2]:  # line-search hiccups are usually cured by a warm restart
        run_lbfgsb(best[0])
    if best is not None and best[2]:
        return best
    for start in starts[1:]:
        run_lbfgsb(start)
    if best is not None and best[2]:
        return best
    # fallbacks from the best point so far and from the first start
    seeds = [starts[0]] + ([best[0]] if best is not None else [])

    def clipped_value(z: np.ndarray, *a: Any) -> float:
        return objective(np.clip(z, lo, hi), *a)[0]

    def clipped_both(z: np.ndarray, *a: Any) -> tuple[float, np.ndarray]:
        return objective(np.clip(z, lo, hi), *a)

    for seed in seeds:
        res = minimize(clipped_both, seed, args=args, jac=True, method="BFGS", options={"maxiter": 2000})
        consider(res.x, "BFGS", res.success, str(res.message))
        res = minimize(
            clipped_value,
            seed,
            args=args,
            method="Nelder-Mead",
            bounds=bounds,
            options={"maxiter": 8000, "xatol": 1e-10, "fatol": 1e-14},
        )
        consider(res.x, "Nelder-Mead", res.success, str(res.message))
    if best is None:
        return np.asarray(starts[0]), math.inf, False, "optimisation failed: non-finite likelihood"
    return best


def _distinct_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Distinct rows of the columns (sorted lexicographically, first column first), how often each
    occurs, and for every input row the position of its distinct row. The same as ``np.unique(
    np.column_stack(columns), axis=0, return_counts=True, return_inverse=True)``, several times
    faster (one lexsort, no row views)."""
    n = len(columns[0])
    order = np.lexsort(columns[::-1])
    ordered = [column[order] for column in columns]
    starts_group = np.zeros(n, dtype=bool)
    starts_group[:1] = True
    for column in ordered:
        starts_group[1:] |= column[1:] != column[:-1]
    starts = np.flatnonzero(starts_group)
    counts = np.diff(np.append(starts, n))
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = np.cumsum(starts_group) - 1
    return [column[starts] for column in ordered], counts, inverse


def _compress(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows and their counts as weights: the likelihood only needs each distinct row once."""
    distinct, counts, _inverse = _distinct_rows(*columns)
    return distinct, counts.astype(float)


def _boundary_notes(names: Sequence[str], theta: np.ndarray) -> list[str]:
    notes = []
    for name, value in zip(names, theta, strict=True):
        if value <= PARAM_LOWER * BOUNDARY_FACTOR:
            notes.append(f"{name} -> 0 (at the lower bound {PARAM_LOWER:g})")
        elif value >= PARAM_UPPER / BOUNDARY_FACTOR:
            notes.append(f"{name} -> infinity (at the upper bound {PARAM_UPPER:g})")
    return notes


def _degenerate_data(x: np.ndarray, distinct_x: np.ndarray) -> str:
    """Why the data cannot identify the BG/NBD ("" when they can): nobody bought twice, or every
    customer has the very same history (one distinct row), so the likelihood has no interior optimum."""
    if not (x > 0).any():
        return "no customer has a repeat purchase"
    if len(distinct_x) < 2:
        return "every customer has the same purchase history"
    return ""


def fit_bgnbd(
    frequency: Any,
    recency: Any,
    T: Any,
    *,
    initial: Sequence[float] | None = None,
    penalizer: float = 0.0,
) -> BGNBDFit:
    """Maximum-likelihood BG/NBD fit [FHL05a].

    Maximises the log-likelihood over the log-parameters with L-BFGS-B (analytic gradient, bounds
    ``[1e-6, 1e6]`` on every parameter in scaled time), falling back to more starts, BFGS and
    Nelder-Mead when L-BFGS-B does not converge; the best log-likelihood wins. Time is rescaled so
    that ``max(T) = 10`` during optimisation (``alpha`` is converted back). The objective is the mean
    negative log-likelihood plus ``penalizer * (r^2 + alpha^2 + a^2 + b^2)`` on the scaled parameters
    (lifetimes' convention); ``penalizer=0`` is plain MLE. Identical ``(x, t_x, T)`` rows are
    collapsed with weights, so 100,000 customers fit in about a second.

    ``at_boundary`` is set when a parameter ends within a factor 10 of a bound or when the mean
    dropout probability ``a/(a+b) < 1e-3``: typically ``a -> 0`` or ``b -> infinity`` because nobody
    appears to lapse, in which case P(alive) is ~1 for everyone and the CLV is not trustworthy.
    """
    x, tx, TT = _check_rft(frequency, recency, T)
    n = int(x.size)
    if n == 0 or float(TT.max(initial=0.0)) <= 0:
        return BGNBDFit(
            math.nan, math.nan, math.nan, math.nan, math.nan, False, False,
            "no customers with a positive observation period to fit", n, penalizer,
        )  # fmt: skip
    scale = 10.0 / float(TT.max())
    (ux, utx, uT), weights = _compress(x, tx * scale, TT * scale)
    degenerate = _degenerate_data(x, ux)
    if degenerate:
        # Nothing to estimate: answer at once instead of a long search that ends at a boundary.
        return BGNBDFit(
            math.nan, math.nan, math.nan, math.nan, math.nan, False, True,
            f"degenerate data: {degenerate}; the BG/NBD cannot be fitted (fallback).", n, penalizer,
        )  # fmt: skip
    lo, hi = math.log(PARAM_LOWER), math.log(PARAM_UPPER)
    if initial is not None:
        r0, alpha0, a0, b0 = (float(v) for v in initial)
        first = np.log([r0, alpha0 * scale, a0, b0])
    else:
        first = np.zeros(4)
    starts = [np.clip(first, lo, hi)] + [
        np.log(s) for s in ([0.5, 2.0, 0.5, 2.0], [2.0, 20.0, 2.0, 10.0], [0.2, 0.5, 1.5, 0.5])
    ]
    log_theta, _, converged, message = _minimise(
        _bgnbd_objective, starts, (ux, utx, uT, weights, float(weights.sum()), float(penalizer)), lo, hi
    )
    theta = np.exp(log_theta)
    r, alpha_s, a, b = (float(v) for v in theta)
    alpha = alpha_s / scale
    notes = _boundary_notes(("r", "alpha", "a", "b"), theta)
    if a / (a + b) < MIN_MEAN_DROPOUT:
        notes.append(f"mean dropout probability a/(a+b) = {a / (a + b):.2e} < {MIN_MEAN_DROPOUT:g}")
    at_boundary = bool(notes)
    if at_boundary:
        explanation = "degenerate BG/NBD fit: " + "; ".join(notes) + "."
        if any(s.startswith(("a ->", "b -> inf", "mean dropout")) for s in notes):
            explanation += (
                " The data show (almost) no customer lapsing, so the dropout process is not identified "
                "and P(alive) ~ 1 for everyone."
            )
        if any(s.startswith(("r -> inf", "alpha -> inf")) for s in notes):
            explanation += " Purchase rates show no heterogeneity across customers (Poisson limit)."
        message = f"{explanation} Optimiser: {message}"
    ll = float(bgnbd_log_likelihood((r, alpha, a, b), x, tx, TT))
    return BGNBDFit(r, alpha, a, b, ll, bool(converged), at_boundary, message, n, float(penalizer))


def bgnbd_probability_alive(
    fit: BGNBDFit | Sequence[float], frequency: Any, recency: Any, T: Any
) -> np.ndarray:
    """``P(alive | x, t_x, T) = 1 / (1 + 1{x>0} a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))``; 1 for x = 0."""
    r, alpha, a, b = _params4(fit)
    x, tx, TT = _check_rft(frequency, recency, T)
    log_odds_dead = np.full(x.shape, -np.inf)
    pos = x > 0
    log_odds_dead[pos] = (
        math.log(a)
        - np.log(b + x[pos] - 1.0)
        + (r + x[pos]) * (np.log(alpha + TT[pos]) - np.log(alpha + tx[pos]))
    )
    return expit(-log_odds_dead)


def bgnbd_probability_no_purchase(
    fit: BGNBDFit | Sequence[float], t: float, frequency: Any, recency: Any, T: Any
) -> np.ndarray:
    """Probability of no purchase in the next ``t`` periods given ``(x, t_x, T)``:
    ``1 - P(alive) + P(alive) ((alpha+T)/(alpha+T+t))^(r+x)``.

    Given alive at ``T`` the rate's posterior is ``Gamma(r+x, alpha+T)`` and a customer only drops out
    right after a purchase, so "no purchase while alive" is a Poisson count of zero, whose expectation
    over the posterior is the power term.
    """
    r, alpha, a, b = _params4(fit)
    x, tx, TT = _check_rft(frequency, recency, T)
    if not (t >= 0 and math.isfinite(t)):
        raise ValueError("t must be >= 0")
    alive = bgnbd_probability_alive((r, alpha, a, b), x, tx, TT)
    quiet_if_alive = np.exp((r + x) * (np.log(alpha + TT) - np.log(alpha + TT + t)))
    return np.clip(1.0 - alive + alive * quiet_if_alive, 0.0, 1.0)


def probability_no_purchase_from_report(
    report: ModelReport, summary_df: pd.DataFrame, *, days: float = 90.0
) -> np.ndarray:
    """:func:`bgnbd_probability_no_purchase` over ``days`` for every row of the summary when
    :func:`predict_clv` used the BG/NBD (``report.model_used == "bgnbd_gg"``); NaN otherwise (no sound
    fit, no model-based judgement)."""
    n = len(summary_df)
    if report.model_used != "bgnbd_gg" or report.bgnbd is None or n == 0:
        return np.full(n, np.nan)
    horizon = days / _days_per_unit(report.time_unit)
    return bgnbd_probability_no_purchase(
        report.bgnbd, horizon, summary_df["frequency"], summary_df["recency"], summary_df["T"]
    )


def _expected_bracket(
    r: float, alpha: float, a: float, b: float, t: np.ndarray, x: np.ndarray, T: np.ndarray
):
    """``(a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]`` (Euler form)."""
    z = t / (alpha + T + t)
    c = a + b + x - 1.0
    one_minus_z = (alpha + T) / (alpha + T + t)
    hyp = hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
    value = c / (a - 1.0) * (1.0 - np.power(one_minus_z, a - 1.0) * hyp)
    bad = ~np.isfinite(value)
    if bad.any():  # direct form of FHL eq. 10 as a second opinion
        xb, Tb, zb, cb = x[bad], T[bad], z[bad], c[bad]
        direct = hyp2f1(r + xb, b + xb, cb, zb)
        value[bad] = cb / (a - 1.0) * (1.0 - np.power((alpha + Tb) / (alpha + Tb + t[bad]), r + xb) * direct)
    return value


_A_ONE_HALF_WIDTH = 1e-4


def bgnbd_expected_purchases(
    fit: BGNBDFit | Sequence[float],
    t: float | np.ndarray,
    frequency: Any,
    recency: Any,
    T: Any,
) -> np.ndarray:
    """Expected number of purchases in the next ``t`` periods given ``(x, t_x, T)`` [FHL05a eq. 10].

    ``t`` is a scalar or an array broadcastable against the customers. Returns 0 for ``t = 0``.
    """
    r, alpha, a, b = _params4(fit)
    x, tx, TT = _check_rft(frequency, recency, T)
    t_arr = np.broadcast_to(np.asarray(t, dtype=float), x.shape).astype(float)
    if (t_arr < 0).any():
        raise ValueError("t must be >= 0")
    return _bracket(r, alpha, a, b, t_arr, x, TT) * bgnbd_probability_alive((r, alpha, a, b), x, tx, TT)


def _bracket(r: float, alpha: float, a: float, b: float, t: np.ndarray, x: np.ndarray, T: np.ndarray):
    """The part of E[Y(t) | x, t_x, T] before the P(alive) factor; depends on (t, x, T) only."""
    h = _A_ONE_HALF_WIDTH
    if abs(a - 1.0) < h:  # removable singularity at a = 1: interpolate linearly across it
        below = _expected_bracket(r, alpha, 1.0 - h, b, t, x, T)
        above = _expected_bracket(r, alpha, 1.0 + h, b, t, x, T)
        bracket = below + (a - (1.0 - h)) / (2.0 * h) * (above - below)
    else:
        bracket = _expected_bracket(r, alpha, a, b, t, x, T)
    return np.where(t == 0, 0.0, bracket)


def bgnbd_population_expected_purchases(fit: BGNBDFit | Sequence[float], t: float | np.ndarray) -> np.ndarray:
    """Unconditional ``E[X(t)] = (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]``.

    The expected number of repeat purchases in the first ``t`` periods of a newly acquired customer
    [FHL05a eq. 9]; it equals the conditional expectation at ``x = t_x = T = 0``.
    """
    t_arr = np.atleast_1d(np.asarray(t, dtype=float))
    zeros = np.zeros(t_arr.shape)
    return bgnbd_expected_purchases(fit, t_arr, zeros, zeros, zeros)


# ==================================================================================================
# Gamma-Gamma
# ==================================================================================================
@dataclass
class GammaGammaFit:
    """Fitted Gamma-Gamma spend model (``gamma`` in currency units) and diagnostics.

    ``finite_mean`` is False when ``q <= 1``: the population mean spend ``p gamma / (q - 1)`` is then
    infinite and the model must not be used for customers without repeat purchases.
    """

    p: float
    q: float
    gamma: float
    log_likelihood: float
    converged: bool
    message: str
    n_customers: int
    at_boundary: bool = False
    finite_mean: bool = True
    penalizer: float = 0.0

    @property
    def params(self) -> tuple[float, float, float]:
        """``(p, q, gamma)``."""
        return (self.p, self.q, self.gamma)

    @property
    def population_mean(self) -> float:
        """``E[Z] = p gamma / (q - 1)`` (infinite when ``q <= 1``)."""
        return self.p * self.gamma / (self.q - 1.0) if self.q > 1 else math.inf


def _params3(params: Any) -> tuple[float, float, float]:
    if isinstance(params, GammaGammaFit):
        return params.p, params.q, params.gamma
    p, q, g = (float(v) for v in params)
    return p, q, g


def _gg_terms(p: float, q: float, g: float, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * math.log(g)
        + (px - 1.0) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(x * m + g)
    )


def gamma_gamma_log_likelihood(
    params: GammaGammaFit | Sequence[float],
    frequency: Any,
    monetary_value: Any,
    *,
    individual: bool = False,
) -> float | np.ndarray:
    """Gamma-Gamma log-likelihood [FH13 eq. 3] of the mean spends ``m_x`` (requires x > 0, m > 0)."""
    p, q, g = _params3(params)
    x = _as_float_array("frequency", frequency)
    m = _as_float_array("monetary_value", monetary_value)
    if x.shape != m.shape:
        raise ValueError("frequency and monetary_value must have the same length")
    if (x <= 0).any() or (m <= 0).any():
        raise ValueError("the Gamma-Gamma likelihood needs frequency > 0 and monetary_value > 0")
    ll = _gg_terms(p, q, g, x, m)
    return ll if individual else float(ll.sum())


def _gg_objective(
    log_params: np.ndarray, x: np.ndarray, m: np.ndarray, w: np.ndarray, wsum: float, penalizer: float
) -> tuple[float, np.ndarray]:
    theta = np.exp(np.clip(log_params, -50.0, 50.0))
    p, q, g = theta
    ll = _gg_terms(p, q, g, x, m)
    px = p * x
    log_xm_g = np.log(x * m + g)
    common = digamma(px + q)
    d_p = x * (common - digamma(px) + np.log(m) + np.log(x) - log_xm_g)
    d_q = common - digamma(q) + math.log(g) - log_xm_g
    d_g = q / g - (px + q) / (x * m + g)
    grad_theta = np.array([_wsum(w, d_p), _wsum(w, d_q), _wsum(w, d_g)]) / wsum
    value = -_wsum(w, ll) / wsum + penalizer * float(np.sum(theta * theta))
    if not np.isfinite(value):
        return np.inf, np.zeros(3)
    return value, -grad_theta * theta + 2.0 * penalizer * theta * theta


def fit_gamma_gamma(
    frequency: Any,
    monetary_value: Any,
    *,
    initial: Sequence[float] | None = None,
    penalizer: float = 0.0,
) -> GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma fit [FHL05b, FH13] on customers with x > 0 and m_x > 0.

    Spend is rescaled by its mean during optimisation (``gamma`` is converted back); same optimiser
    strategy and penalty convention as :func:`fit_bgnbd`. ``finite_mean`` is False when ``q <= 1``.
    """
    x_all = _as_float_array("frequency", frequency)
    m_all = _as_float_array("monetary_value", monetary_value)
    if x_all.shape != m_all.shape:
        raise ValueError("frequency and monetary_value must have the same length")
    use = np.isfinite(x_all) & np.isfinite(m_all) & (x_all > 0) & (m_all > 0)
    x, m = x_all[use], m_all[use]
    n = int(x.size)
    if n == 0:
        return GammaGammaFit(
            math.nan, math.nan, math.nan, math.nan, False,
            "no customers with repeat purchases and positive spend to fit", 0,
            finite_mean=False, penalizer=penalizer,
        )  # fmt: skip
    scale = float(m.mean())
    (ux, um), weights = _compress(x, m / scale)
    lo, hi = math.log(PARAM_LOWER), math.log(PARAM_UPPER)
    if initial is not None:
        p0, q0, g0 = (float(v) for v in initial)
        first = np.log([p0, q0, g0 / scale])
    else:
        first = np.zeros(3)
    starts = [np.clip(first, lo, hi)] + [
        np.log(s) for s in ([2.0, 3.0, 1.0], [5.0, 5.0, 4.0], [0.5, 2.0, 0.5])
    ]
    log_theta, _, converged, message = _minimise(
        _gg_objective, starts, (ux, um, weights, float(weights.sum()), float(penalizer)), lo, hi
    )
    theta = np.exp(log_theta)
    p, q, g_s = (float(v) for v in theta)
    g = g_s * scale
    notes = _boundary_notes(("p", "q", "gamma"), theta)
    finite_mean = q > 1.0
    if notes:
        message = "degenerate Gamma-Gamma fit: " + "; ".join(notes) + f". Optimiser: {message}"
    if not finite_mean:
        message = (
            f"q = {q:.3g} <= 1: the population mean spend p*gamma/(q-1) is infinite (very heavy-tailed "
            f"spend); do not use for customers without repeat purchases. {message}"
        )
    ll = float(gamma_gamma_log_likelihood((p, q, g), x, m))
    return GammaGammaFit(
        p, q, g, ll, bool(converged), message, n, bool(notes), bool(finite_mean), float(penalizer)
    )


def gamma_gamma_expected_value(
    fit: GammaGammaFit | Sequence[float], frequency: Any, monetary_value: Any
) -> np.ndarray:
    """Conditional expected average transaction value ``p (gamma + x m_x) / (p x + q - 1)`` [FH13 eq. 5].

    For ``x = 0`` this is the population mean ``p gamma / (q - 1)``; where the denominator
    ``p x + q - 1 <= 0`` (only possible when ``q <= 1``) the expectation is infinite and NaN is returned.
    """
    p, q, g = _params3(fit)
    x = _as_float_array("frequency", frequency)
    m = _as_float_array("monetary_value", monetary_value)
    if x.shape != m.shape:
        raise ValueError("frequency and monetary_value must have the same length")
    m = np.where(x > 0, m, 0.0)
    denom = p * x + q - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        value = p * (g + x * m) / denom
    return np.where(denom > 0, value, np.nan)


# ==================================================================================================
# CLV
# ==================================================================================================
def _step_ends(horizon_periods: float, step: float) -> np.ndarray:
    if not (horizon_periods >= 0 and math.isfinite(horizon_periods)):
        raise ValueError(f"horizon_periods must be a finite number >= 0, got {horizon_periods!r}")
    if not (step > 0 and math.isfinite(step)):
        raise ValueError(f"step must be > 0, got {step!r}")
    n_steps = math.ceil(horizon_periods / step - 1e-9)
    return np.minimum(np.arange(1, n_steps + 1) * step, horizon_periods)


def _check_money_args(discount_rate_per_period: float, margin: float) -> None:
    if not (discount_rate_per_period > -1 and math.isfinite(discount_rate_per_period)):
        raise ValueError(f"discount rate must be > -1, got {discount_rate_per_period!r}")
    if not (margin >= 0 and math.isfinite(margin)):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")


def customer_lifetime_value(
    bgnbd_fit: BGNBDFit | Sequence[float],
    gg_fit: GammaGammaFit | Sequence[float],
    frequency: Any,
    recency: Any,
    T: Any,
    monetary_value: Any,
    *,
    horizon_periods: float,
    discount_rate_per_period: float,
    margin: float,
    step: float = 1.0,
) -> np.ndarray:
    """Discounted expected margin over the next ``horizon_periods`` (module docstring, "CLV").

    ``margin * sum_k E[Z|x,m_x] * (E[Y(s_k)] - E[Y(s_{k-1})]) / (1 + d)^(s_k)``, ``s_k = min(k*step,
    horizon)``; periods are the unit of ``recency``/``T``; ``d`` is per period. With weeks, ``step =
    4.345`` and ``d = (1 + monthly)^(1/4.345) - 1`` this reproduces lifetimes' monthly computation.
    """
    _check_money_args(discount_rate_per_period, margin)
    ends = _step_ends(float(horizon_periods), float(step))
    x, tx, TT = _check_rft(frequency, recency, T)
    value = gamma_gamma_expected_value(gg_fit, x, _as_float_array("monetary_value", monetary_value))
    r, alpha, a, b = _params4(bgnbd_fit)
    # E[Y(s) | x, t_x, T] = bracket(s; x, T) * P(alive | x, t_x, T): P(alive) is computed once, and
    # the bracket (a 2F1 per customer and step, the costly part) once per distinct (x, T).
    (ux, uT), _counts, inverse = _distinct_rows(x, TT)
    discounted = np.zeros(ux.shape)
    previous = np.zeros(ux.shape)
    for end in ends:  # loop over time steps (vectorised over customers)
        cumulative = _bracket(r, alpha, a, b, np.full(ux.shape, float(end)), ux, uT)
        discounted += (cumulative - previous) / (1.0 + discount_rate_per_period) ** end
        previous = cumulative
    alive = bgnbd_probability_alive((r, alpha, a, b), x, tx, TT)
    return margin * value * discounted[inverse] * alive


def historical_clv_fallback(
    frequency: Any,
    T: Any,
    average_order_value: Any,
    *,
    horizon_periods: float,
    discount_rate_per_period: float,
    margin: float,
    step: float = 1.0,
    min_age_periods: float = 1.0,
) -> np.ndarray:
    """FALLBACK (not a model): historical repeat spend rate carried forward, discounted.

    ``rate = x / max(T, min_age_periods)`` repeat purchases per period (the naive estimate of the
    Poisson rate, assuming every customer stays active), ``spend per period = rate *
    average_order_value``, and ``CLV = margin * sum_k spend_per_period * (s_k - s_{k-1}) / (1+d)^(s_k)``
    -- i.e. ``margin * rate * AOV * horizon`` when ``d = 0``. Customers with no repeat purchase get 0;
    lapsed customers are over-valued because nobody is assumed to drop out.
    """
    _check_money_args(discount_rate_per_period, margin)
    ends = _step_ends(float(horizon_periods), float(step))
    x = _as_float_array("frequency", frequency)
    TT = _as_float_array("T", T)
    aov = np.nan_to_num(_as_float_array("average_order_value", average_order_value), nan=0.0)
    rate = x / np.maximum(TT, float(min_age_periods))
    lengths = np.diff(np.concatenate(([0.0], ends)))
    discounted_time = float(np.sum(lengths / (1.0 + discount_rate_per_period) ** ends))
    return margin * rate * aov * discounted_time


@dataclass
class ModelReport:
    """What :func:`predict_clv` did and why; ``dataclasses.asdict`` gives a JSON-serialisable dict."""

    model_used: str
    fallback: bool
    reason: str
    n_customers: int
    n_repeat_customers: int
    n_gamma_gamma_customers: int
    min_repeat_customers: int
    time_unit: str
    horizon_days: float
    discount_rate_annual: float
    margin: float
    bgnbd: BGNBDFit | None = None
    gamma_gamma: GammaGammaFit | None = None

    def to_dict(self) -> dict[str, Any]:
        """``asdict(self)`` with NaN replaced by None (strict JSON)."""

        def clean(obj: Any) -> Any:
            if isinstance(obj, dict):
                return {k: clean(v) for k, v in obj.items()}
            if isinstance(obj, list):
                return [clean(v) for v in obj]
            if isinstance(obj, float) and not math.isfinite(obj):
                return None
            return obj

        return clean(asdict(self))


PREDICTION_COLUMNS = (
    "expected_purchases_90d",
    "probability_alive",
    "expected_order_value",
    "clv",
    "model_used",
)


def predict_clv(
    summary_df: pd.DataFrame,
    *,
    horizon_days: float,
    discount_rate_annual: float,
    margin: float,
    time_unit: TimeUnit = "W",
    min_repeat_customers: int = MIN_REPEAT_CUSTOMERS,
    penalizer: float = 0.0,
    initial_bgnbd: Sequence[float] | None = None,
    initial_gamma_gamma: Sequence[float] | None = None,
    fitted: tuple[BGNBDFit, GammaGammaFit] | None = None,
) -> tuple[pd.DataFrame, ModelReport]:
    """Fit BG/NBD + Gamma-Gamma on an RFM summary and predict per-customer value, or fall back.

    ``fitted`` (earlier fits of both models) skips the fitting: the predictions use those parameters,
    under the same checks (an incremental recompute when the data has moved little since the fit).

    ``summary_df`` is the output of :func:`summary_from_transactions` with the same ``time_unit``
    (``frequency``, ``recency``, ``T``, ``monetary_value``; ``total_value`` optional).

    The probabilistic models are used (``model_used = "bgnbd_gg"``) only if ALL hold:

    1. at least ``min_repeat_customers`` (default 20) customers have a repeat purchase, and at least that
       many have a repeat purchase with positive spend (Gamma-Gamma needs them);
    2. the BG/NBD fit converged and is not at a boundary (no "nobody ever lapses" degeneracy);
    3. the Gamma-Gamma fit converged, is not at a boundary and has ``q > 1`` (finite mean spend);
    4. all predictions are finite.

    Why 20: below that the 4 BG/NBD and 3 Gamma-Gamma parameters are barely identified (the CDNOW
    example of FHL05a has ~1,000 repeat customers) and one or two heavy buyers drive the estimates. It
    is a floor, not a guarantee -- :func:`holdout_validation` is the real check of a tenant's fit.

    Otherwise every customer gets the historical fallback (``model_used = "historical"``) and
    ``ModelReport.reason`` says why. Output columns (index = summary index):

    * ``expected_purchases_90d``: BG/NBD conditional expectation for the next 90 days; fallback:
      ``x / max(T, 30 days) * 90 days``;
    * ``probability_alive``: BG/NBD P(alive); fallback: NaN (unknown);
    * ``expected_order_value``: Gamma-Gamma conditional mean; fallback: the customer's historical average
      spend per purchase day (``total_value / (x + 1)``, or ``monetary_value``), else the population mean;
    * ``clv``: discounted expected margin over ``horizon_days`` with monthly (30.44-day) discount steps and
      per-period rate ``(1 + discount_rate_annual)^(days_per_period / 365.25) - 1``.
    """
    dpu = _days_per_unit(time_unit)
    if not (horizon_days >= 0 and math.isfinite(horizon_days)):
        raise ValueError(f"horizon_days must be >= 0, got {horizon_days!r}")
    if not (discount_rate_annual > -1 and math.isfinite(discount_rate_annual)):
        raise ValueError(f"discount_rate_annual must be > -1, got {discount_rate_annual!r}")
    missing = [c for c in ("frequency", "recency", "T", "monetary_value") if c not in summary_df.columns]
    if missing:
        raise ValueError(f"summary_df is missing column(s): {', '.join(missing)}")
    _check_money_args(0.0, margin)

    x, tx, TT = _check_rft(summary_df["frequency"], summary_df["recency"], summary_df["T"])
    m = np.nan_to_num(_as_float_array("monetary_value", summary_df["monetary_value"]), nan=0.0)
    n = int(x.size)
    n_repeat = int((x > 0).sum())
    n_gg = int(((x > 0) & (m > 0)).sum())
    horizon = horizon_days / dpu
    step = DAYS_PER_MONTH / dpu
    d_period = (1.0 + discount_rate_annual) ** (dpu / DAYS_PER_YEAR) - 1.0
    t90 = 90.0 / dpu

    report = ModelReport(
        model_used="historical",
        fallback=True,
        reason="",
        n_customers=n,
        n_repeat_customers=n_repeat,
        n_gamma_gamma_customers=n_gg,
        min_repeat_customers=int(min_repeat_customers),
        time_unit=time_unit,
        horizon_days=float(horizon_days),
        discount_rate_annual=float(discount_rate_annual),
        margin=float(margin),
    )
    reasons: list[str] = []
    out = pd.DataFrame(index=summary_df.index)

    if n_repeat < min_repeat_customers:
        reasons.append(
            f"only {n_repeat} customers have a repeat purchase (at least {min_repeat_customers} needed)"
        )
    elif n_gg < min_repeat_customers:
        reasons.append(
            f"only {n_gg} repeat customers have positive spend (at least {min_repeat_customers} needed)"
        )
    else:
        # A warm start (yesterday's parameters, r/alpha/a/b and p/q/gamma) cuts the optimiser's
        # iterations; the fits still fall back to their own starts if it does not converge.
        if fitted is not None:
            bg, gg = fitted
        else:
            bg = fit_bgnbd(x, tx, TT, penalizer=penalizer, initial=initial_bgnbd)
            gg = fit_gamma_gamma(x, m, penalizer=penalizer, initial=initial_gamma_gamma)
        report.bgnbd, report.gamma_gamma = bg, gg
        if not bg.converged:
            reasons.append(f"the BG/NBD fit did not converge ({bg.message})")
        if bg.at_boundary:
            reasons.append(f"the BG/NBD fit is at a boundary: {bg.message}")
        if not gg.converged:
            reasons.append(f"the Gamma-Gamma fit did not converge ({gg.message})")
        if gg.at_boundary or not gg.finite_mean:
            reasons.append(f"the Gamma-Gamma fit is unusable: {gg.message}")
        if not reasons:
            expected_90 = bgnbd_expected_purchases(bg, t90, x, tx, TT)
            alive = bgnbd_probability_alive(bg, x, tx, TT)
            value = gamma_gamma_expected_value(gg, x, m)
            clv = customer_lifetime_value(
                bg, gg, x, tx, TT, m,
                horizon_periods=horizon, discount_rate_per_period=d_period, margin=margin, step=step,
            )  # fmt: skip
            if all(np.isfinite(arr).all() for arr in (expected_90, alive, value, clv)):
                out["expected_purchases_90d"] = expected_90
                out["probability_alive"] = alive
                out["expected_order_value"] = value
                out["clv"] = clv
                out["model_used"] = "bgnbd_gg"
                report.model_used, report.fallback = "bgnbd_gg", False
                report.reason = (
                    f"BG/NBD and Gamma-Gamma fitted on {n} customers ({n_repeat} with repeat purchases)."
                )
                return out, report
            reasons.append("the models produced non-finite predictions")

    # ---- historical fallback ----
    if "total_value" in summary_df.columns:
        total = np.nan_to_num(_as_float_array("total_value", summary_df["total_value"]), nan=0.0)
        aov = total / (x + 1.0)
    else:
        aov = m.copy()
    positive = aov > 0
    population_aov = float(aov[positive].mean()) if positive.any() else 0.0
    aov = np.where(positive, aov, population_aov)
    min_age = 30.0 / dpu
    out["expected_purchases_90d"] = x / np.maximum(TT, min_age) * t90
    out["probability_alive"] = np.nan
    out["expected_order_value"] = aov
    out["clv"] = historical_clv_fallback(
        x, TT, aov,
        horizon_periods=horizon, discount_rate_per_period=d_period, margin=margin, step=step,
        min_age_periods=min_age,
    )  # fmt: skip
    out["model_used"] = "historical"
    report.reason = "Historical fallback used because " + "; ".join(reasons) + "."
    return out, report


# ==================================================================================================
# Holdout validation
# ==================================================================================================
@dataclass
class HoldoutValidation:
    """Calibration/holdout check of the BG/NBD ("how honest is the model").

    ``per_customer``: ``frequency_cal``, ``recency_cal``, ``T_cal``, ``actual_holdout``,
    ``predicted_holdout``, ``probability_alive``. ``by_frequency``: mean actual vs predicted holdout
    purchases grouped by calibration repeat purchases (0..6 and "7+"), the classic FHL05a Figure.
    ``totals``: sums, mean absolute error, RMSE, predicted/actual ratio, holdout length in periods.
    """

    per_customer: pd.DataFrame
    by_frequency: pd.DataFrame
    totals: dict[str, float]
    fit: BGNBDFit


def holdout_validation(
    transactions: pd.DataFrame,
    *,
    calibration_end: Any,
    observation_end: Any,
    customer_col: str = "customer_id",
    date_col: str = "date",
    time_unit: TimeUnit = "W",
    penalizer: float = 0.0,
    max_frequency_bucket: int = 7,
    initial: Sequence[float] | None = None,
) -> HoldoutValidation:
    """Fit BG/NBD on purchases up to ``calibration_end`` and compare its predicted number of purchase
    days in ``(calibration_end, observation_end]`` with what customers actually did.

    Only customers whose first purchase is on or before ``calibration_end`` are scored (the model makes
    no conditional prediction for customers not yet acquired). Days are UTC days as everywhere else.
    ``initial`` (r, alpha, a, b in ``time_unit``) warm-starts the fit, e.g. with the full-data fit.
    """
    dpu = _days_per_unit(time_unit)
    cal_day = to_utc_day_number(calibration_end)
    obs_day = to_utc_day_number(observation_end)
    if obs_day <= cal_day:
        raise ValueError("observation_end must be after calibration_end")
    days = to_utc_day_numbers(transactions[date_col])
    valid = ~np.isnan(days) & transactions[customer_col].notna().to_numpy()
    calibration = transactions.loc[valid & (days <= cal_day), [customer_col, date_col]]
    summary = summary_from_transactions(
        calibration, customer_col, date_col, None, observation_end=calibration_end, time_unit=time_unit
    )
    in_holdout = valid & (days > cal_day) & (days <= obs_day)
    holdout = pd.DataFrame(
        {"customer": transactions[customer_col].to_numpy()[in_holdout], "day": days[in_holdout]}
    )
    actual = holdout.groupby("customer")["day"].nunique().reindex(summary.index, fill_value=0)
    x = summary["frequency"].to_numpy(dtype=float)
    tx = summary["recency"].to_numpy(dtype=float)
    TT = summary["T"].to_numpy(dtype=float)
    fit = fit_bgnbd(x, tx, TT, penalizer=penalizer, initial=initial)
    horizon = (obs_day - cal_day) / dpu
    if len(summary) and math.isfinite(fit.r):
        predicted = bgnbd_expected_purchases(fit, horizon, x, tx, TT)
        alive = bgnbd_probability_alive(fit, x, tx, TT)
    else:
        predicted = np.full(len(summary), np.nan)
        alive = np.full(len(summary), np.nan)
    per_customer = pd.DataFrame(
        {
            "frequency_cal": summary["frequency"].astype("int64"),
            "recency_cal": summary["recency"],
            "T_cal": summary["T"],
            "actual_holdout": actual.astype("int64"),
            "predicted_holdout": predicted,
            "probability_alive": alive,
        },
        index=summary.index,
    )
    bucket = np.minimum(per_customer["frequency_cal"].to_numpy(), max_frequency_bucket)
    labels = [str(i) for i in range(max_frequency_bucket)] + [f"{max_frequency_bucket}+"]
    by_frequency = (
        per_customer.assign(bucket=bucket)
        .groupby("bucket")
        .agg(
            n_customers=("actual_holdout", "size"),
            actual_mean=("actual_holdout", "mean"),
            predicted_mean=("predicted_holdout", "mean"),
        )
    )
    by_frequency.index = pd.Index([labels[int(i)] for i in by_frequency.index], name="frequency_cal")
    error = per_customer["predicted_holdout"] - per_customer["actual_holdout"]
    actual_total = float(per_customer["actual_holdout"].sum())
    predicted_total = float(per_customer["predicted_holdout"].sum())
    totals = {
        "n_customers": float(len(per_customer)),
        "holdout_periods": float(horizon),
        "actual_total": actual_total,
        "predicted_total": predicted_total,
        "predicted_over_actual": predicted_total / actual_total if actual_total > 0 else math.nan,
        "mean_absolute_error": float(error.abs().mean()) if len(error) else math.nan,
        "rmse": float(np.sqrt((error**2).mean())) if len(error) else math.nan,
    }
    return HoldoutValidation(per_customer=per_customer, by_frequency=by_frequency, totals=totals, fit=fit)
