"""Exact simulators for the BG/NBD and Gamma-Gamma models (used by tests and demo data).

BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way", Marketing Science 24(2)):

* each customer has a purchase rate ``lambda ~ Gamma(shape=r, rate=alpha)`` and a dropout probability
  ``p ~ Beta(a, b)``;
* the customer's first ("trial") purchase is at time 0 and is not counted in ``frequency``;
* while alive, repeat purchases follow a Poisson process with rate ``lambda``;
* right after each *repeat* purchase the customer becomes inactive with probability ``p``
  (this is the timing implied by the likelihood ``(1-p)^x lambda^x e^{-lambda T} +
  delta_{x>0} p (1-p)^{x-1} lambda^x e^{-lambda t_x}``).

Vectorised exact sampling: the number ``J`` of repeat purchases a customer would make before dying
(counting the one after which they die) is ``Geometric(p)`` on {1, 2, ...}; the number of Poisson
arrivals in ``[0, T]`` is ``N ~ Poisson(lambda T)``; the observed frequency is ``x = min(J, N)``.
Given ``N = n`` the arrival times are the order statistics of ``n`` iid ``Uniform(0, T)`` variables, so
the recency (time of the ``x``-th repeat purchase) is ``T * Beta(x, n - x + 1)`` for ``x > 0``.

Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves", JMR 42(4); Fader &
Hardie 2013, "The Gamma-Gamma Model of Monetary Value"): each customer has
``nu ~ Gamma(shape=q, rate=gamma)`` and each transaction value ``z ~ Gamma(shape=p, rate=nu)``; the sum
of ``x`` values is ``Gamma(p x, rate=nu)``, so the mean of ``x`` repeat transactions is drawn exactly as
``Gamma(p x, rate=nu) / x``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "BGNBDSample",
    "simulate_bgnbd",
    "RETAIL_PARAMS",
    "simulate_gamma_gamma",
    "simulate_purchase_histories",
    "simulate_transactions_frame",
]


@dataclass
class BGNBDSample:
    """Simulated BG/NBD sufficient statistics (time in the model's period units).

    ``times`` (only when requested) holds, per customer, the sorted repeat-purchase times in (0, T];
    ``lam``/``p`` are the latent per-customer parameters, ``alive`` whether the customer is still
    active at ``T``.
    """

    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    lam: np.ndarray
    p: np.ndarray
    alive: np.ndarray
    times: list[np.ndarray] | None = None


def _positive(name: str, value: float) -> float:
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def simulate_bgnbd(
    n: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T: float | np.ndarray,
    seed: int | np.random.Generator | None = None,
    *,
    return_times: bool = False,
) -> BGNBDSample:
    """Draw ``n`` customers from the BG/NBD model observed for ``T`` periods after their first purchase.

    ``T`` may be a scalar or an array of length ``n``. Returns frequency (repeat purchases), recency
    (time of the last repeat purchase, 0 when frequency is 0) and T. With ``return_times`` the
    individual repeat-purchase times are generated too (recency is then their maximum).
    """
    for name, value in (("r", r), ("alpha", alpha), ("a", a), ("b", b)):
        _positive(name, value)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    T_arr = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    if (T_arr < 0).any() or not np.isfinite(T_arr).all():
        raise ValueError("T must be finite and >= 0")

    lam = rng.gamma(shape=r, scale=1.0 / alpha, size=n)
    p = rng.beta(a, b, size=n)
    # p can underflow to exactly 0 for tiny a; Geometric needs p > 0 -> clip to the smallest positive double
    p_safe = np.clip(p, np.finfo(float).tiny, 1.0)
    max_repeats = rng.geometric(p_safe).astype(np.int64)  # J >= 1 (overflow-safe: int64)
    arrivals = rng.poisson(lam * T_arr).astype(np.int64)  # N
    frequency = np.minimum(max_repeats, arrivals)
    alive = max_repeats > arrivals  # died only after the J-th purchase, which is beyond T
    recency = np.zeros(n, dtype=float)
    times: list[np.ndarray] | None = None

    if return_times:
        total = int(arrivals.sum())
        owner = np.repeat(np.arange(n), arrivals)
        uniforms = rng.uniform(0.0, 1.0, size=total) * T_arr[owner]
        order = np.lexsort((uniforms, owner))
        sorted_times = uniforms[order]
        starts = np.concatenate(([0], np.cumsum(arrivals)[:-1])) if n else np.empty(0, dtype=np.int64)
        position = np.arange(total) - np.repeat(starts, arrivals)
        kept = position < frequency[owner]
        split_at = np.cumsum(frequency)[:-1]
        times = np.split(sorted_times[kept], split_at) if n else []
        has = frequency > 0
        last_index = np.cumsum(frequency) - 1
        recency[has] = sorted_times[kept][last_index[has]]
    else:
        has = frequency > 0
        recency[has] = T_arr[has] * rng.beta(frequency[has], arrivals[has] - frequency[has] + 1)

    return BGNBDSample(
        frequency=frequency,
        recency=recency,
        T=T_arr,
        lam=lam,
        p=p,
        alive=alive,
        times=times,
    )


def simulate_gamma_gamma(
    frequency: np.ndarray,
    p: float,
    q: float,
    gamma: float,
    seed: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Mean value of each customer's ``frequency`` repeat transactions under Gamma-Gamma (0 if none).

    ``nu ~ Gamma(q, rate=gamma)`` per customer, transaction values ``~ Gamma(p, rate=nu)``.
    """
    for name, value in (("p", p), ("q", q), ("gamma", gamma)):
        _positive(name, value)
    rng = np.random.default_rng(seed)
    x = np.asarray(frequency, dtype=np.int64)
    nu = rng.gamma(shape=q, scale=1.0 / gamma, size=x.shape)
    out = np.zeros(x.shape, dtype=float)
    has = x > 0
    out[has] = rng.gamma(shape=p * x[has], scale=1.0 / nu[has]) / x[has]
    return out


def simulate_transactions_frame(
    n_customers: int,
    *,
    r: float,
    alpha: float,
    a: float,
    b: float,
    p: float = 6.0,
    q: float = 4.0,
    gamma: float = 15.0,
    start: str | pd.Timestamp = "2023-01-01",
    acquisition_days: int = 180,
    observation_days: int = 365,
    time_unit: str = "D",
    seed: int | None = None,
    customer_prefix: str | None = None,
) -> pd.DataFrame:
    """Simulate a transactions table ``(customer_id, date, amount)`` from BG/NBD + Gamma-Gamma.

    Customers are acquired (first purchase) on a uniformly random day in
    ``[start, start + acquisition_days)``; observation ends at ``start + observation_days``. ``r`` and
    ``alpha`` are in ``time_unit`` ("D" days or "W" weeks). Purchase times are truncated to whole days,
    so two purchases within one day collapse into one purchase day in the summaries (tests compare
    against the frame, not against the latent draws). Every transaction (the first one included) has a
    value ``~ Gamma(p, rate=nu)`` with the customer's ``nu ~ Gamma(q, rate=gamma)``. Dates are tz-naive
    midnights (UTC dates). ``customer_id`` is an int, or ``f"{customer_prefix}{i}"`` strings.
    """
    if time_unit not in ("D", "W"):
        raise ValueError(f"time_unit must be 'D' or 'W', got {time_unit!r}")
    if acquisition_days < 1 or observation_days < acquisition_days:
        raise ValueError("need 1 <= acquisition_days <= observation_days")
    rng = np.random.default_rng(seed)
    days_per_unit = 7.0 if time_unit == "W" else 1.0
    start_ts = pd.Timestamp(start).normalize()
    acquired = rng.integers(0, acquisition_days, size=n_customers)
    T_days = observation_days - acquired
    sample = simulate_bgnbd(n_customers, r, alpha, a, b, T_days / days_per_unit, rng, return_times=True)
    assert sample.times is not None
    counts = sample.frequency + 1
    owner = np.repeat(np.arange(n_customers), counts)
    offsets = np.zeros(int(counts.sum()), dtype=np.int64)
    first_pos = np.concatenate(([0], np.cumsum(counts)[:-1])) if n_customers else np.empty(0, np.int64)
    repeat_mask = np.ones(len(offsets), dtype=bool)
    repeat_mask[first_pos] = False
    if sample.times:
        repeat_days = np.floor(np.concatenate(sample.times) * days_per_unit).astype(np.int64)
        offsets[repeat_mask] = repeat_days
    day = acquired[owner] + offsets
    nu = rng.gamma(shape=q, scale=1.0 / gamma, size=n_customers)
    amounts = rng.gamma(shape=p, scale=1.0 / nu[owner])
    ids: np.ndarray | pd.Series = owner
    if customer_prefix is not None:
        ids = customer_prefix + pd.Series(owner).astype(str)
    frame = pd.DataFrame(
        {
            "customer_id": ids,
            "date": start_ts + pd.to_timedelta(day, unit="D"),
            "amount": np.round(amounts, 2),
        }
    )
    return frame


#: A shop whose customers buy about monthly (mean rate 1/30 per day, shape 2) and drop out after a
#: purchase with probability 0.2 on average (Beta(1, 4)): the known truth behind the evaluation test.
RETAIL_PARAMS: dict[str, float] = {"r": 2.0, "alpha": 60.0, "a": 1.0, "b": 4.0}


def simulate_purchase_histories(
    n_customers: int,
    *,
    seed: int,
    start: str | pd.Timestamp = "2023-01-01",
    acquisition_days: int = 365,
    observation_days: int = 730,
    params: dict[str, float] | None = None,
) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Purchase histories with known truth (BG/NBD in days: each customer buys as a Poisson process
    while alive and drops out with a known probability after each purchase) and the last observed day.

    Returns ``(transactions, observation_end)``; the transactions are ``(customer_id, date, amount)`` as
    :func:`simulate_transactions_frame` makes them, observed up to ``observation_end`` (inclusive).
    """
    chosen = {**RETAIL_PARAMS, **(params or {})}
    frame = simulate_transactions_frame(
        n_customers,
        **chosen,
        start=start,
        acquisition_days=acquisition_days,
        observation_days=observation_days,
        time_unit="D",
        seed=seed,
    )
    observation_end = pd.Timestamp(start).normalize() + pd.Timedelta(days=observation_days - 1)
    return frame[frame["date"] <= observation_end].reset_index(drop=True), observation_end
