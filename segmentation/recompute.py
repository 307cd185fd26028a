"""The recompute pipeline: orders in bulk -> RFM, CLV, lifecycle (pandas) -> scores, history, alerts.

Shape (every phase is timed into `RecomputeRun.timings`):

1. read     COPY the purchases (paid / partially refunded orders, net of refunds) and the ids of the
            customers not in the recycle bin out of PostgreSQL through a Django cursor (so the tenant's
            search_path applies) and parse them with pandas' C reader;
2. rfm      `analytics.rfm`: windowed measures, 1-5 scores (quintiles or fixed thresholds), segments;
3. clv      `analytics.clv.summary_from_transactions` + `predict_clv` (BG/NBD + Gamma-Gamma, or the
            labelled historical fallback when the fit is unusable);
4. write    in ONE transaction under a per-tenant advisory lock: read the previous scores, assign
            lifecycle stages (`analytics.lifecycle`, which needs the previous stage), upsert every
            CustomerScore (COPY into a temp table + INSERT ... ON CONFLICT DO UPDATE), COPY the stage
            and segment transitions, write the snapshot rows and raise the churn alerts;
5. holdout  calibration/holdout check of the BG/NBD for the CLV page (after the scores are committed).

Idempotent: transitions and alerts come from comparing the new state with the stored one, so a re-run
on the same data writes the same scores and no new transition or alert; a crash inside the write
transaction leaves nothing half-written. Two runs for one tenant serialise on the advisory lock and the
second sees the first one's results as "previous".

The first computation of a customer records its initial stage (from "") but raises no alert: the
baseline is not news. Alerts are raised for changes after it.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from customers.models import Customer, Order

from .analytics import clv as clv_analytics
from .analytics import lifecycle as lifecycle_analytics
from .analytics import rfm as rfm_analytics
from .labels import LifecycleStage, RfmSegment
from .models import ChurnAlert, RecomputeRun, SegmentationSettings, SegmentSnapshot

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, str], None]

SCORE_TABLE = "segmentation_customerscore"
SCORE_COLUMNS = (
    "customer_id",
    "recency_days",
    "frequency",
    "monetary",
    "window_revenue",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
    "expected_purchases_90d",
    "probability_alive",
    "expected_order_value",
    "predicted_clv",
    "clv_model",
    "lifecycle_stage",
    "stage_since",
    "computed_at",
)
MAX_MONEY = 10**12 - 1  # DecimalField(max_digits=14, decimal_places=2)
TIME_UNIT = "W"
HOLDOUT_MIN_HISTORY_DAYS = 120


@dataclass(frozen=True)
class Config:
    """The tenant's settings as the analytics functions take them."""

    window_days: int
    monetary_mode: str
    thresholds: dict | None
    horizon_days: int
    discount_rate: float
    margin: float
    new_days: int
    at_risk_multiplier: float
    churn_multiplier: float
    at_risk_min_days: int
    churn_min_days: int
    loyal_min_frequency: int
    at_risk_alive_threshold: float
    alert_alive_threshold: float

    @classmethod
    def from_settings(cls, s: SegmentationSettings) -> Config:
        use_thresholds = s.scoring_method == SegmentationSettings.ScoringMethod.THRESHOLDS
        return cls(
            window_days=int(s.rfm_window_days),
            monetary_mode=s.monetary_mode,
            thresholds=dict(s.score_thresholds) if use_thresholds and s.score_thresholds else None,
            horizon_days=int(s.clv_horizon_days),
            discount_rate=float(s.annual_discount_rate),
            margin=float(s.margin),
            new_days=int(s.new_days),
            at_risk_multiplier=float(s.at_risk_multiplier),
            churn_multiplier=float(s.churn_multiplier),
            at_risk_min_days=int(s.at_risk_min_days),
            churn_min_days=int(s.churn_min_days),
            loyal_min_frequency=int(s.loyal_min_orders),
            at_risk_alive_threshold=float(s.at_risk_alive_threshold),
            alert_alive_threshold=float(s.alert_alive_threshold),
        )

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# --------------------------------------------------------------------------------------------------
# COPY helpers (always through a Django cursor: the tenant's search_path is set on it)
# --------------------------------------------------------------------------------------------------
def copy_out(sql: str, params: tuple | list | None = None) -> bytes:
    """`COPY (<sql>) TO STDOUT` in PostgreSQL's text format; returns the raw bytes."""
    buffer = io.BytesIO()
    with connection.cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT", params) as copy:
        for chunk in copy:
            buffer.write(chunk)
    return buffer.getvalue()


def copy_in(table: str, columns: tuple[str, ...], frame: pd.DataFrame) -> None:
    """COPY `frame` (columns in `columns` order; NaN/NA -> NULL) into `table`.

    Values must not contain tabs, newlines or backslashes (ours are numbers, keys and timestamps).
    """
    if frame.empty:
        return
    text = frame.loc[:, list(columns)].to_csv(
        sep="\t", header=False, index=False, na_rep="\\N", lineterminator="\n"
    )
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        copy.write(text.encode())


def _read_tsv(data: bytes, names: list[str], dtype: dict) -> pd.DataFrame:
    if not data:
        return pd.DataFrame({name: pd.Series(dtype=dtype.get(name, object)) for name in names})
    return pd.read_csv(
        io.BytesIO(data),
        sep="\t",
        header=None,
        names=names,
        dtype=dtype,
        na_values=["\\N"],
        keep_default_na=False,
        engine="c",
    )


# --------------------------------------------------------------------------------------------------
# Read
# --------------------------------------------------------------------------------------------------
def load_customer_ids() -> np.ndarray:
    data = copy_out("SELECT id FROM customers_customer WHERE deleted_at IS NULL ORDER BY id")
    return _read_tsv(data, ["customer_id"], {"customer_id": np.int64})["customer_id"].to_numpy()


def load_purchases(*, as_of: datetime, customer_ids: np.ndarray) -> pd.DataFrame:
    """Purchases up to `as_of`: customer_id, placed_at (UTC), amount (total - refunded, float)."""
    statuses = [str(s) for s in Order.PURCHASE_STATUSES]
    data = copy_out(
        "SELECT customer_id, (extract(epoch FROM placed_at) * 1000000)::bigint, total - refunded_total "
        "FROM customers_order WHERE status = ANY(%s) AND placed_at <= %s",
        (statuses, as_of),
    )
    frame = _read_tsv(
        data,
        ["customer_id", "epoch", "amount"],
        {"customer_id": np.int64, "epoch": np.int64, "amount": float},
    )
    # Customers in the recycle bin are left out (a semi-join in pandas is cheaper than in SQL here).
    frame = frame[np.isin(frame["customer_id"].to_numpy(), customer_ids)]
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].to_numpy(),
            "placed_at": pd.to_datetime(frame["epoch"].to_numpy(), unit="us", utc=True),
            "amount": frame["amount"].to_numpy(),
        }
    )


def load_previous() -> pd.DataFrame:
    """The stored scores: previous segment, stage, stage_since and P(alive), indexed by customer."""
    data = copy_out(
        "SELECT customer_id, CASE WHEN rfm_segment = '' THEN '-' ELSE rfm_segment END, lifecycle_stage, "
        "(extract(epoch FROM stage_since) * 1000000)::bigint, probability_alive FROM " + SCORE_TABLE
    )
    frame = _read_tsv(
        data,
        ["customer_id", "segment", "stage", "stage_since", "probability_alive"],
        {"customer_id": np.int64, "segment": object, "stage": object, "stage_since": np.int64,
         "probability_alive": float},
    )  # fmt: skip
    frame["segment"] = frame["segment"].replace("-", "")
    frame["stage_since"] = pd.to_datetime(frame["stage_since"].to_numpy(), unit="us", utc=True)
    return frame.set_index("customer_id")


# --------------------------------------------------------------------------------------------------
# Compute
# --------------------------------------------------------------------------------------------------
def compute_values(
    purchases: pd.DataFrame, customer_ids: np.ndarray, cfg: Config, *, as_of: datetime
) -> tuple[pd.DataFrame, clv_analytics.ModelReport, dict[str, float]]:
    """RFM + CLV for every customer (index = all customer ids). Returns (frame, CLV report, timings)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    as_of_ts = pd.Timestamp(as_of)
    index = pd.Index(customer_ids, name="customer_id")

    windowed = rfm_analytics.compute_rfm(
        purchases, as_of=as_of_ts, window_days=cfg.window_days, monetary=cfg.monetary_mode
    )
    scored = rfm_analytics.score_rfm(windowed, thresholds=cfg.thresholds)
    segments = rfm_analytics.assign_segments(scored)
    lifetime = rfm_analytics.compute_rfm(purchases, as_of=as_of_ts, window_days=None, monetary="total")
    timings["rfm"] = time.perf_counter() - started

    started = time.perf_counter()
    summary = clv_analytics.summary_from_transactions(
        purchases, "customer_id", "placed_at", "amount", observation_end=as_of_ts, time_unit=TIME_UNIT
    )
    predictions, report = clv_analytics.predict_clv(
        summary,
        horizon_days=cfg.horizon_days,
        discount_rate_annual=cfg.discount_rate,
        margin=cfg.margin,
        time_unit=TIME_UNIT,
    )
    timings["clv"] = time.perf_counter() - started

    frame = pd.DataFrame(index=index)
    window_revenue = (
        windowed["monetary"] if cfg.monetary_mode == "total" else windowed["monetary"] * windowed["frequency"]
    )
    frame["recency_days"] = lifetime["recency_days"].reindex(index).astype("Int64")
    frame["frequency"] = windowed["frequency"].reindex(index).fillna(0).astype("int64")
    frame["monetary"] = windowed["monetary"].reindex(index).fillna(0.0)
    frame["window_revenue"] = window_revenue.reindex(index).fillna(0.0)
    for column in ("r_score", "f_score", "m_score"):
        frame[column] = scored[column].reindex(index).astype("Int64")
    frame["rfm_segment"] = segments.reindex(index).fillna("").astype(object)
    frame["expected_purchases_90d"] = predictions["expected_purchases_90d"].reindex(index)
    frame["probability_alive"] = predictions["probability_alive"].reindex(index).clip(0.0, 1.0)
    frame["expected_order_value"] = predictions["expected_order_value"].reindex(index)
    frame["predicted_clv"] = predictions["clv"].reindex(index)
    frame["clv_model"] = predictions["model_used"].reindex(index).fillna("").astype(object)
    # Lifecycle works on the whole history (purchase days ever), not the RFM window.
    frame["lifetime_frequency"] = lifetime["frequency"].reindex(index)
    frame["first_purchase"] = lifetime["first_purchase"].reindex(index)
    frame["last_purchase"] = lifetime["last_purchase"].reindex(index)
    frame["last_purchase_at"] = purchases.groupby("customer_id")["placed_at"].max().reindex(index)
    return frame, report, timings


def compute_stages(frame: pd.DataFrame, previous: pd.DataFrame, cfg: Config, *, as_of: datetime) -> pd.Series:
    """Lifecycle stage per customer, given the previous stages (for "reactivated")."""
    prev_stage = previous["stage"].reindex(frame.index)
    prev_since = previous["stage_since"].reindex(frame.index)
    # Work-around: the analytics rule keeps "reactivated" only while the PREVIOUS stage is at risk or
    # churned, so on the next run a reactivated customer would fall straight to repeat/loyal. We keep
    # the stage for `new_days` after the reactivation by presenting it as the lapsed stage it came
    # from (with an unknown time, which the rule takes as "bought since").
    recent = as_of - timedelta(days=cfg.new_days)
    keep_reactivated = (prev_stage == LifecycleStage.REACTIVATED).to_numpy(dtype=bool) & (
        prev_since > pd.Timestamp(recent)
    ).to_numpy(dtype=bool)
    prev_stage = prev_stage.where(~keep_reactivated, LifecycleStage.AT_RISK.value)
    # Work-around: the rule compares calendar DATES ("last purchase date after the flag date"), so a
    # purchase later on the day the customer was flagged would not count. We know both instants
    # exactly: when the customer bought after the flag, we pass an unknown flag time (= "bought since").
    bought_since = (frame["last_purchase_at"] > prev_since).to_numpy(dtype=bool)
    prev_since = prev_since.where(~(keep_reactivated | bought_since), pd.NaT)

    stage_input = pd.DataFrame(
        {
            "frequency": frame["lifetime_frequency"],
            "first_purchase": frame["first_purchase"],
            "last_purchase": frame["last_purchase"],
            "probability_alive": frame["probability_alive"],
            "segment": frame["rfm_segment"],
            "previous_stage": prev_stage,
            "previous_stage_at": prev_since,
        },
        index=frame.index,
    )
    return lifecycle_analytics.assign_lifecycle_stage(
        stage_input,
        as_of=pd.Timestamp(as_of),
        new_days=cfg.new_days,
        churn_multiplier=cfg.churn_multiplier,
        at_risk_multiplier=cfg.at_risk_multiplier,
        churn_min_days=cfg.churn_min_days,
        at_risk_min_days=cfg.at_risk_min_days,
        at_risk_alive_threshold=cfg.at_risk_alive_threshold,
        loyal_min_frequency=cfg.loyal_min_frequency,
    )


def detect_alerts(frame: pd.DataFrame, previous: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Customers whose new state calls for an alert: one row per customer with the main reason and
    every reason that applied. Only customers with a previous score can raise one (no baseline alerts).

    Priority when several apply in one run: Cannot Lose Them > At risk > P(alive) fell.
    """
    known = frame.index.isin(previous.index)
    prev = previous.reindex(frame.index)
    new_segment, old_segment = frame["rfm_segment"], prev["segment"].fillna("")
    new_stage, old_stage = frame["lifecycle_stage"], prev["stage"].fillna("")
    new_alive, old_alive = frame["probability_alive"], prev["probability_alive"]
    threshold = cfg.alert_alive_threshold

    cannot_lose = (
        known & (new_segment == RfmSegment.CANNOT_LOSE.value) & (old_segment != RfmSegment.CANNOT_LOSE.value)
    )
    at_risk = (
        known & (new_stage == LifecycleStage.AT_RISK.value) & (old_stage != LifecycleStage.AT_RISK.value)
    )
    alive_fell = (
        known & new_alive.notna() & (new_alive < threshold) & old_alive.notna() & (old_alive >= threshold)
    )
    any_reason = (cannot_lose | at_risk | alive_fell).to_numpy(dtype=bool)
    if not any_reason.any():
        return pd.DataFrame(columns=["reason", "reasons"])

    reasons = pd.DataFrame(
        {
            ChurnAlert.Reason.ENTERED_CANNOT_LOSE.value: cannot_lose,
            ChurnAlert.Reason.ENTERED_AT_RISK.value: at_risk,
            ChurnAlert.Reason.PROBABILITY_ALIVE_BELOW.value: alive_fell,
        },
        index=frame.index,
    )[any_reason]
    main = reasons.idxmax(axis=1)  # the first True column in priority order
    listed = reasons.apply(lambda row: [name for name, hit in row.items() if hit], axis=1)
    out = pd.DataFrame({"reason": main, "reasons": listed})
    out["old_segment"] = old_segment[any_reason]
    out["old_stage"] = old_stage[any_reason]
    out["old_alive"] = old_alive[any_reason]
    return out


def _money(series: pd.Series) -> pd.Series:
    return series.clip(lower=-MAX_MONEY, upper=MAX_MONEY).round(2)


def _score_rows(
    frame: pd.DataFrame, stages: pd.Series, stage_since: pd.Series, now: datetime
) -> pd.DataFrame:
    rows = pd.DataFrame(index=frame.index)
    rows["customer_id"] = frame.index.to_numpy()
    rows["recency_days"] = frame["recency_days"]
    rows["frequency"] = frame["frequency"]
    rows["monetary"] = _money(frame["monetary"])
    rows["window_revenue"] = _money(frame["window_revenue"])
    for column in ("r_score", "f_score", "m_score"):
        rows[column] = frame[column]
    rows["rfm_segment"] = frame["rfm_segment"]
    rows["expected_purchases_90d"] = frame["expected_purchases_90d"]
    rows["probability_alive"] = frame["probability_alive"]
    rows["expected_order_value"] = _money(frame["expected_order_value"])
    rows["predicted_clv"] = _money(frame["predicted_clv"])
    rows["clv_model"] = frame["clv_model"]
    rows["lifecycle_stage"] = stages
    rows["stage_since"] = stage_since.dt.strftime("%Y-%m-%d %H:%M:%S.%f+00")
    rows["computed_at"] = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
    return rows


def _snapshot_rows(run: RecomputeRun, frame: pd.DataFrame, stages: pd.Series, taken_at: datetime) -> list:
    total_revenue = float(frame["window_revenue"].sum())
    snapshots = []
    for dimension, keys in (
        (SegmentSnapshot.Dimension.RFM, frame["rfm_segment"]),
        (SegmentSnapshot.Dimension.STAGE, stages),
    ):
        grouped = pd.DataFrame(
            {
                "key": keys.to_numpy(),
                "revenue": frame["window_revenue"].to_numpy(),
                "clv": frame["predicted_clv"].to_numpy(),
            }
        ).groupby("key", sort=True)
        stats = grouped.agg(customers=("revenue", "size"), revenue=("revenue", "sum"), clv=("clv", "mean"))
        for key, row in stats.iterrows():
            clv = float(row["clv"])
            snapshots.append(
                SegmentSnapshot(
                    run=run,
                    taken_at=taken_at,
                    dimension=dimension,
                    key=str(key),
                    customers=int(row["customers"]),
                    revenue=round(float(row["revenue"]), 2),
                    revenue_share=float(row["revenue"]) / total_revenue if total_revenue > 0 else 0.0,
                    average_clv=round(clv, 2) if math.isfinite(clv) else None,
                )
            )
    return snapshots


def _insert_via_temp(table: str, columns: tuple[str, ...], frame: pd.DataFrame, *, conflict: str = "") -> int:
    """COPY into a temp table shaped like `table`, then INSERT ... SELECT the rows whose customer still
    exists (one could have been purged since the read) with an optional ON CONFLICT clause."""
    if frame.empty:
        return 0
    temp = f"tmp_{table}"
    column_list = ", ".join(columns)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {temp}")
        cursor.execute(
            f"CREATE TEMP TABLE {temp} ON COMMIT DROP AS SELECT {column_list} FROM {table} WITH NO DATA"
        )
    copy_in(temp, columns, frame)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM {temp} t "
            "WHERE EXISTS (SELECT 1 FROM customers_customer c WHERE c.id = t.customer_id) " + conflict
        )
        inserted = cursor.rowcount
        cursor.execute(f"DROP TABLE {temp}")
    return inserted


def write_scores(rows: pd.DataFrame) -> int:
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in SCORE_COLUMNS[1:])
    return _insert_via_temp(
        SCORE_TABLE, SCORE_COLUMNS, rows, conflict=f"ON CONFLICT (customer_id) DO UPDATE SET {updates}"
    )


# --------------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------------
def _lock_tenant() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{connection.schema_name}:segmentation"]
        )


def _holdout(purchases: pd.DataFrame, *, as_of: datetime) -> dict:
    """BG/NBD calibration/holdout check: fit on the history before the last quarter (at most 26
    weeks, at least 4), predict the holdout, compare with what customers actually did."""
    if purchases.empty:
        return {"skipped": "no purchases yet"}
    first = purchases["placed_at"].min()
    history_days = (pd.Timestamp(as_of) - first).days
    if history_days < HOLDOUT_MIN_HISTORY_DAYS:
        return {"skipped": f"needs at least {HOLDOUT_MIN_HISTORY_DAYS} days of purchase history"}
    holdout_days = int(min(182, max(28, history_days // 4)))
    calibration_end = pd.Timestamp(as_of) - pd.Timedelta(days=holdout_days)
    result = clv_analytics.holdout_validation(
        purchases,
        calibration_end=calibration_end,
        observation_end=pd.Timestamp(as_of),
        customer_col="customer_id",
        date_col="placed_at",
        time_unit=TIME_UNIT,
    )

    def finite(value):
        value = float(value)
        return value if math.isfinite(value) else None

    by_frequency = [
        {
            "frequency": str(label),
            "customers": int(row["n_customers"]),
            "actual": finite(row["actual_mean"]),
            "predicted": finite(row["predicted_mean"]),
        }
        for label, row in result.by_frequency.iterrows()
    ]
    fit = result.fit
    return {
        "calibration_end": calibration_end.isoformat(),
        "holdout_days": holdout_days,
        "totals": {key: finite(value) for key, value in result.totals.items()},
        "by_frequency": by_frequency,
        "fit": {
            "r": finite(fit.r),
            "alpha": finite(fit.alpha),
            "a": finite(fit.a),
            "b": finite(fit.b),
            "log_likelihood": finite(fit.log_likelihood),
            "converged": bool(fit.converged),
            "at_boundary": bool(fit.at_boundary),
            "message": fit.message,
        },
    }


def recompute(
    *,
    trigger: str = RecomputeRun.Trigger.MANUAL,
    triggered_by=None,
    job_id: int | None = None,
    progress: ProgressCallback | None = None,
    with_holdout: bool = True,
) -> RecomputeRun:
    """Recompute every customer's scores in the current tenant and record the run (see module doc)."""
    from .services import alert_create, settings_get

    report_progress = progress or (lambda pct, message="": None)
    settings_row = settings_get()
    cfg = Config.from_settings(settings_row)
    as_of = timezone.now()
    run = RecomputeRun.objects.create(
        trigger=trigger, triggered_by=triggered_by, job_id=job_id, as_of=as_of, settings_used=cfg.as_dict()
    )
    timings: dict[str, float] = {}
    try:
        report_progress(5, "Reading orders")
        started = time.perf_counter()
        customer_ids = load_customer_ids()
        purchases = load_purchases(as_of=as_of, customer_ids=customer_ids)
        timings["read"] = time.perf_counter() - started

        report_progress(25, "Scoring RFM and fitting the CLV model")
        frame, report, compute_timings = compute_values(purchases, customer_ids, cfg, as_of=as_of)
        timings.update(compute_timings)

        report_progress(60, "Writing scores")
        started = time.perf_counter()
        with transaction.atomic():
            _lock_tenant()
            previous = load_previous()
            stage_started = time.perf_counter()
            stages = compute_stages(frame, previous, cfg, as_of=as_of)
            timings["stages"] = time.perf_counter() - stage_started
            frame["lifecycle_stage"] = stages
            prev = previous.reindex(frame.index)
            stage_changed = (prev["stage"].fillna("") != stages).to_numpy(dtype=bool)
            segment_changed = (prev["segment"].fillna("") != frame["rfm_segment"]).to_numpy(dtype=bool)
            stage_since = prev["stage_since"].where(~stage_changed, pd.Timestamp(as_of))
            stage_since = stage_since.fillna(pd.Timestamp(as_of))

            write_started = time.perf_counter()
            written = write_scores(_score_rows(frame, stages, stage_since, as_of))
            stage_rows = pd.DataFrame(
                {
                    "customer_id": frame.index[stage_changed],
                    "from_stage": prev["stage"].fillna("")[stage_changed].to_numpy(),
                    "to_stage": stages[stage_changed].to_numpy(),
                    "at": as_of.isoformat(),
                    "run_id": run.pk,
                }
            )
            stage_changes = _insert_via_temp(
                "segmentation_lifecycletransition",
                ("customer_id", "from_stage", "to_stage", "at", "run_id"),
                stage_rows,
            )
            segment_rows = pd.DataFrame(
                {
                    "customer_id": frame.index[segment_changed],
                    "from_segment": prev["segment"].fillna("")[segment_changed].to_numpy(),
                    "to_segment": frame["rfm_segment"][segment_changed].to_numpy(),
                    "at": as_of.isoformat(),
                    "run_id": run.pk,
                }
            )
            segment_changes = _insert_via_temp(
                "segmentation_segmenttransition",
                ("customer_id", "from_segment", "to_segment", "at", "run_id"),
                segment_rows,
            )
            timings["write"] = time.perf_counter() - write_started

            history_started = time.perf_counter()
            SegmentSnapshot.objects.bulk_create(_snapshot_rows(run, frame, stages, as_of))
            timings["history"] = time.perf_counter() - history_started

            alerts_started = time.perf_counter()
            alerts = detect_alerts(frame, previous, cfg)
            alerts_created = 0
            if len(alerts):
                open_pairs = set(
                    ChurnAlert.objects.filter(
                        status=ChurnAlert.Status.OPEN, customer_id__in=list(alerts.index)
                    ).values_list("customer_id", "reason")
                )
                customers = Customer.objects.only("id", "name", "owner_id").in_bulk(list(alerts.index))
                for customer_id, alert in alerts.iterrows():
                    customer = customers.get(customer_id)
                    if customer is None or (customer_id, alert["reason"]) in open_pairs:
                        continue
                    row = frame.loc[customer_id]
                    details = _alert_details(row, alert, cfg)
                    if alert_create(customer=customer, reason=alert["reason"], details=details, run=run):
                        alerts_created += 1
            timings["alerts"] = time.perf_counter() - alerts_started

            run.status = RecomputeRun.Status.SUCCEEDED
            run.customers_count = len(frame)
            run.orders_count = len(purchases)
            run.scored_count = int(frame["r_score"].notna().sum())
            run.stage_changes = stage_changes
            run.segment_changes = segment_changes
            run.alerts_created = alerts_created
            run.clv_model = report.model_used if len(frame) and report.n_customers else ""
            run.model_report = report.to_dict()
            logger.info("recompute %s: %s scores written", connection.schema_name, written)
        timings["write_phase_total"] = time.perf_counter() - started

        if with_holdout:
            report_progress(90, "Checking the model on a holdout period")
            started = time.perf_counter()
            try:
                run.holdout = _holdout(purchases, as_of=as_of)
            except Exception as exc:  # the check must never lose the scores already written
                logger.exception("holdout validation failed")
                run.holdout = {"skipped": f"the holdout check failed: {exc}"}
            timings["holdout"] = time.perf_counter() - started
        run.timings = {key: round(value, 4) for key, value in timings.items()}
        run.finished_at = timezone.now()
        run.save()
        report_progress(100, "Done")
        return run
    except Exception as exc:
        RecomputeRun.objects.filter(pk=run.pk).update(
            status=RecomputeRun.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise


def _alert_details(row: pd.Series, alert: pd.Series, cfg: Config) -> dict:
    def number(value, digits=4):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        return round(value, digits) if math.isfinite(value) else None

    return {
        "reasons": list(alert["reasons"]),
        "segment": row["rfm_segment"],
        "previous_segment": alert["old_segment"] or "",
        "stage": row["lifecycle_stage"],
        "previous_stage": alert["old_stage"] or "",
        "probability_alive": number(row["probability_alive"]),
        "previous_probability_alive": number(alert["old_alive"]),
        "alive_threshold": cfg.alert_alive_threshold,
        "predicted_clv": number(row["predicted_clv"], 2),
        "recency_days": None if pd.isna(row["recency_days"]) else int(row["recency_days"]),
    }
