"""Reads of the segmentation app. Everything about customers goes through `visible_to`: managers and
admins see the whole tenant, sales staff the customers they own or that are shared with them."""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.cache import cache
from django.db.models import (
    Aggregate,
    Avg,
    Count,
    DateTimeField,
    DecimalField,
    F,
    FloatField,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.http import Http404
from django.urls import reverse

from crm.accounts.models import User
from crm.accounts.permissions import get_visible_or_404, visible_to
from crm.jobs.models import BackgroundJob
from crm.numbers import parse_id
from customers.models import Customer
from customers.selectors import binned_customer_ids

from .labels import (
    SEGMENT_ACTIONS,
    SEGMENT_ORDER,
    STAGE_DESCRIPTIONS,
    STAGE_ORDER,
    segment_label,
    stage_label,
)
from .models import (
    AlertEvaluation,
    AlertQueueVisit,
    ChurnAlert,
    CustomerScore,
    LifecycleTransition,
    RecomputeRun,
    Segment,
    SegmentSnapshot,
    SegmentTransition,
)
from .rules import RuleError, rules_to_q

ALERT_BADGE_SECONDS = 60
RECOMPUTE_JOB_KIND = "segmentation.recompute"
ALERTS_VERSION_KEY = "segmentation:alerts-version"  # bumped by the alert services: new badge counts


class PercentileCont(Aggregate):
    function = "PERCENTILE_CONT"
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, percentile: float, **extra):
        super().__init__(expression, percentile=float(percentile), **extra)


# --------------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------------
def score_list(*, user: User) -> QuerySet[CustomerScore]:
    """Scores of the customers the user may see (not in the recycle bin). The binned customers are
    left out by id rather than by joining every score to its customer: at 1,000,000 customers the
    segment pages' counts and sums over the scores then read the scores alone (a manager's)."""
    return visible_to(CustomerScore.objects.exclude(customer_id__in=binned_customer_ids()), user)


def score_totals(*, user: User) -> dict:
    """Predicted CLV of the customers `user` may see, not in the bin: clv_total, clv_average and how
    many are scored. Summed on the scores alone, the binned customers left out by id: at 1,000,000
    customers 0.15 s, against 0.5 s or more joined to every customer."""
    scores = CustomerScore.objects.exclude(customer_id__in=binned_customer_ids())
    return visible_to(scores, user).aggregate(
        clv_total=Sum("predicted_clv"), clv_average=Avg("predicted_clv"), scored=Count("predicted_clv")
    )


def score_for_customer(*, customer: Customer) -> CustomerScore | None:
    try:
        return customer.score
    except CustomerScore.DoesNotExist:
        return None


@dataclass
class SegmentRow:
    key: str
    label: str
    action: str
    customers: int
    share_of_customers: float
    revenue: Decimal
    share_of_revenue: float
    average_clv: Decimal | None


def segment_counts(*, user: User) -> dict[str, dict[str, Any]]:
    """Per RFM segment ("" for none: no purchase in the window): customers, revenue in the RFM window
    and average CLV of the customers `user` may see; one GROUP BY. Numbers only, so that the figures
    can be kept (the report "segments-rfm") and shown in any language."""
    return {
        row["rfm_segment"]: {
            "customers": row["customers"],
            "revenue": row["revenue"],
            "average_clv": row["average_clv"],
        }
        for row in score_list(user=user)
        .values("rfm_segment")
        .annotate(customers=Count("pk"), revenue=Sum("window_revenue"), average_clv=Avg("predicted_clv"))
        .order_by()
    }


def segment_rows(counts: dict[str, dict[str, Any]]) -> tuple[list[SegmentRow], dict[str, Any]]:
    """The overview's rows, in segment order with their labels and shares, and the totals, from
    `segment_counts`. The totals include customers without a segment."""
    total_customers = sum(row["customers"] for row in counts.values())
    total_revenue = sum((row["revenue"] or Decimal("0") for row in counts.values()), Decimal("0"))
    result = []
    for key in SEGMENT_ORDER + [""]:
        row = counts.get(key, {})
        customers = row.get("customers", 0)
        revenue = row.get("revenue") or Decimal("0")
        result.append(
            SegmentRow(
                key=key,
                label=segment_label(key) if key else "",
                action=str(SEGMENT_ACTIONS.get(key, "")) if key else "",
                customers=customers,
                share_of_customers=customers / total_customers if total_customers else 0.0,
                revenue=revenue,
                share_of_revenue=float(revenue / total_revenue) if total_revenue else 0.0,
                average_clv=row.get("average_clv"),
            )
        )
    return result, {"customers": total_customers, "revenue": total_revenue}


def segment_overview(*, user: User) -> tuple[list[SegmentRow], dict[str, Any]]:
    """Each RFM segment with its customers, share of revenue (in the RFM window) and average CLV; one
    GROUP BY. The totals include customers without a segment (no purchase in the window)."""
    return segment_rows(segment_counts(user=user))


def rf_counts(*, user: User) -> dict[tuple[int, int], int]:
    """Customers per (R score, F score) among those `user` may see and that have scores."""
    return {
        (row["r_score"], row["f_score"]): row["n"]
        for row in score_list(user=user)
        .filter(r_score__isnull=False)
        .values("r_score", "f_score")
        .annotate(n=Count("pk"))
        .order_by()
    }


def heatmap_rows(counts: dict[tuple[int, int], int]) -> dict[str, Any]:
    """The R x F heatmap from `rf_counts`: rows R 5..1, columns F 1..5, with a 0-1 intensity per cell."""
    peak = max(counts.values(), default=0)
    total = sum(counts.values())
    rows = []
    for r in range(5, 0, -1):
        cells = []
        for f in range(1, 6):
            n = counts.get((r, f), 0)
            cells.append(
                {
                    "r": r,
                    "f": f,
                    "count": n,
                    "share": n / total if total else 0.0,
                    "intensity": round(n / peak, 3) if peak else 0.0,
                }
            )
        rows.append({"r": r, "cells": cells})
    return {"rows": rows, "total": total, "peak": peak}


def rf_heatmap(*, user: User) -> dict[str, Any]:
    """Customers per (R score, F score): rows R 5..1, columns F 1..5, with a 0-1 intensity per cell."""
    return heatmap_rows(rf_counts(user=user))


def stage_counts(*, user: User) -> dict[str, int]:
    """Customers per lifecycle stage among those `user` may see."""
    return {
        row["lifecycle_stage"]: row["n"]
        for row in score_list(user=user).values("lifecycle_stage").annotate(n=Count("pk")).order_by()
    }


def funnel_rows(counts: dict[str, int]) -> list[dict[str, Any]]:
    """The lifecycle funnel from `stage_counts`: every stage in order, with its label and share."""
    total = sum(counts.values())
    peak = max(counts.values(), default=0)
    return [
        {
            "key": str(stage),
            "label": stage_label(stage),
            "description": STAGE_DESCRIPTIONS[stage],
            "count": counts.get(stage, 0),
            "share": counts.get(stage, 0) / total if total else 0.0,
            "width": round(100 * counts.get(stage, 0) / peak) if peak else 0,
        }
        for stage in STAGE_ORDER
    ]


def lifecycle_funnel(*, user: User) -> list[dict[str, Any]]:
    return funnel_rows(stage_counts(user=user))


def recent_stage_transitions(*, user: User, limit: int = 25) -> list[LifecycleTransition]:
    qs = visible_to(LifecycleTransition.objects.filter(customer__deleted_at__isnull=True), user)
    return list(qs.select_related("customer", "customer__owner").order_by("-at", "-id")[:limit])


def nice_log_edges(low: float, high: float) -> list[Decimal]:
    """Round bucket edges on a log scale, 1-2-5 per power of ten (10, 20, 50, 100, 200, ...): from the
    largest such number <= `low` to the smallest >= `high`. CLV is heavy-tailed (many small values, a
    few large), so equal-width buckets put most customers in the first bar; log buckets show the shape."""
    low = max(low, 1.0)
    high = max(high, low)
    exponent = math.floor(math.log10(low))
    edges: list[Decimal] = []
    while not edges or edges[-1] < Decimal(str(high)):
        for step in (1, 2, 5):
            value = Decimal(step) * Decimal(10) ** exponent
            if value <= Decimal(str(low)):
                edges = [value]  # the largest 1-2-5 value <= low so far
            elif not edges or edges[-1] < Decimal(str(high)):
                edges.append(value)
        exponent += 1
    return edges


def clv_distribution(*, user: User, bins: int = 20) -> dict[str, Any]:
    """Histogram of predicted CLV on a log scale: a first bucket from 0 to a round number near the
    10th percentile, then 1-2-5 buckets (100-200, 200-500, 500-1,000, ...) up to the 99th percentile,
    and a last "and above" bucket so a few whales do not flatten the rest. When the values are too
    close together for that (fewer than four log buckets), `bins` equal buckets from 0 to the 99th
    percentile instead.

    Bucket edges are whole cents, so each bucket's `links` entry (the customer list filtered by
    "Predicted CLV from" / "up to") lists exactly the customers the bar counts."""
    qs = score_list(user=user).filter(predicted_clv__isnull=False)
    stats = qs.aggregate(
        p10=PercentileCont("predicted_clv", 0.10),
        p99=PercentileCont("predicted_clv", 0.99),
        n=Count("pk"),
        total=Sum("predicted_clv"),
        mean=Avg("predicted_clv"),
    )
    n = stats["n"] or 0
    if not n:
        return {
            "labels": [],
            "counts": [],
            "links": [],
            "n": 0,
            "upper": None,
            "total": None,
            "mean": None,
            "scale": "log",
        }
    cent = Decimal("0.01")
    p99 = max(float(stats["p99"] or 0), 1.0)
    log_edges = nice_log_edges(float(stats["p10"] or 0), p99)
    if len(log_edges) >= 4:
        edges = [Decimal("0.00"), *[edge.quantize(cent) for edge in log_edges]]
        scale = "log"
    else:
        upper = Decimal(str(p99)).quantize(cent)
        edges = [(upper * i / bins).quantize(cent) for i in range(bins + 1)]
        scale = "linear"
    upper = edges[-1]
    count_buckets = len(edges) - 1
    # width_bucket(x, edges) = i when edges[i-1] <= x < edges[i]; 0 below edges[0]; len(edges) from upper.
    bucket = RawSQL(
        'width_bucket("segmentation_customerscore"."predicted_clv", %s::numeric[])',
        ([str(e) for e in edges],),
    )
    counts = dict(
        qs.annotate(bucket=bucket)
        .values("bucket")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("bucket", "n")
    )
    base = reverse("customers:list")
    labels, values, links = [], [], []
    below = counts.get(0, 0)  # negative CLV cannot happen, but keep it honest if it does
    for index in range(1, count_buckets + 1):
        low, high = edges[index - 1], edges[index]
        labels.append(f"{low:,.0f}–{high:,.0f}")
        values.append(counts.get(index, 0) + (below if index == 1 else 0))
        low_filter = f"clv_min={low}&" if index > 1 else ""
        links.append(f"{base}?{low_filter}clv_max={high - cent}")
    labels.append(f"≥ {upper:,.0f}")
    values.append(counts.get(count_buckets + 1, 0))
    links.append(f"{base}?clv_min={upper}")
    return {
        "labels": labels,
        "counts": values,
        "links": links,
        "n": n,
        "upper": float(upper),
        "total": stats["total"],
        "mean": stats["mean"],
        "scale": scale,
    }


def top_customers_by_clv(*, user: User, limit: int = 20) -> list[CustomerScore]:
    """The customers with the highest predicted CLV. Ordered as score_clv_idx is (descending, nulls
    first, which the filter leaves out): the index is walked from the top, 3-40 ms at 1,000,000
    customers; ordered "nulls last" every score was sorted instead (0.5 s)."""
    return list(
        score_list(user=user)
        .filter(predicted_clv__isnull=False)
        .select_related("customer", "customer__owner")
        .order_by(F("predicted_clv").desc(), "customer_id")[:limit]
    )


# --------------------------------------------------------------------------------------------------
# The pages' figures, kept like reports (crm.reportcache; registered in SegmentationConfig.ready())
# --------------------------------------------------------------------------------------------------
def rfm_report(user: User, params: dict[str, Any]) -> dict[str, Any]:
    """The segment overview's counts and the R x F heatmap's, as the report "segments-rfm" computes
    them: numbers only (the view adds labels in the viewer's language)."""
    return {"segments": segment_counts(user=user), "heatmap": rf_counts(user=user)}


def clv_report(user: User, params: dict[str, Any]) -> dict[str, Any]:
    """The CLV histogram as the report "segments-clv" computes it (its labels are figures only)."""
    return clv_distribution(user=user)


def lifecycle_report(user: User, params: dict[str, Any]) -> dict[str, int]:
    """Customers per lifecycle stage as the report "segments-lifecycle" computes them."""
    return stage_counts(user=user)


# --------------------------------------------------------------------------------------------------
# Runs and jobs
# --------------------------------------------------------------------------------------------------
def latest_run(*, succeeded: bool = True) -> RecomputeRun | None:
    qs = RecomputeRun.objects.all()
    if succeeded:
        qs = qs.filter(status=RecomputeRun.Status.SUCCEEDED)
    return qs.order_by("-started_at", "-id").first()


def active_recompute_job() -> BackgroundJob | None:
    return (
        BackgroundJob.objects.filter(kind=RECOMPUTE_JOB_KIND, status__in=BackgroundJob.ACTIVE_STATUSES)
        .order_by("created_at")
        .first()
    )


def run_list(*, limit: int = 20) -> list[RecomputeRun]:
    return list(RecomputeRun.objects.select_related("triggered_by").order_by("-started_at", "-id")[:limit])


# --------------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------------
def snapshot_history(*, runs: int = 60) -> dict[str, Any]:
    """Counts per RFM segment and per stage over the last `runs` successful recomputes (chart data)."""
    run_ids = list(
        RecomputeRun.objects.filter(status=RecomputeRun.Status.SUCCEEDED)
        .order_by("-started_at", "-id")
        .values_list("pk", flat=True)[:runs]
    )
    run_ids.reverse()
    snapshots = SegmentSnapshot.objects.filter(run_id__in=run_ids).values_list(
        "run_id", "taken_at", "dimension", "key", "customers"
    )
    taken: dict[int, Any] = {}
    table: dict[tuple[str, str], dict[int, int]] = {}
    for run_id, taken_at, dimension, key, customers in snapshots:
        taken[run_id] = taken_at
        table.setdefault((dimension, key), {})[run_id] = customers
    ordered = [run_id for run_id in run_ids if run_id in taken]

    def series(dimension: str, keys: list[str], label) -> list[dict[str, Any]]:
        return [
            {
                "key": key,
                "label": str(label(key)),
                "data": [table.get((dimension, key), {}).get(r, 0) for r in ordered],
            }
            for key in keys
            if (dimension, key) in table
        ]

    return {
        "dates": [taken[r] for r in ordered],
        "segments": series("rfm", SEGMENT_ORDER, segment_label),
        "stages": series("stage", [str(s) for s in STAGE_ORDER], stage_label),
    }


def segment_movement() -> dict[str, Any] | None:
    """Movement between RFM segments from the previous successful run to the latest one.

    `cells[from][to]` counts the customers whose segment changed in the latest run (its
    SegmentTransition rows); the diagonal is the previous count minus those who left. "" is "no
    segment" (no purchase in the RFM window).
    """
    latest_runs = list(
        RecomputeRun.objects.filter(status=RecomputeRun.Status.SUCCEEDED).order_by("-started_at", "-id")[:2]
    )
    if len(latest_runs) < 2:
        return None
    latest, previous = latest_runs
    keys = SEGMENT_ORDER + [""]
    moved: dict[tuple[str, str], int] = {
        (row["from_segment"], row["to_segment"]): row["n"]
        for row in SegmentTransition.objects.filter(run=latest)
        .values("from_segment", "to_segment")
        .annotate(n=Count("pk"))
        .order_by()
    }
    before = dict(
        SegmentSnapshot.objects.filter(run=previous, dimension="rfm").values_list("key", "customers")
    )
    after = dict(SegmentSnapshot.objects.filter(run=latest, dimension="rfm").values_list("key", "customers"))
    rows = []
    for source in keys:
        left = sum(n for (frm, _to), n in moved.items() if frm == source)
        cells = []
        for target in keys:
            if source == target:
                cells.append({"count": max(before.get(source, 0) - left, 0), "stayed": True})
            else:
                cells.append({"count": moved.get((source, target), 0), "stayed": False})
        rows.append(
            {"key": source, "label": segment_label(source), "before": before.get(source, 0), "cells": cells}
        )
    return {
        "latest": latest,
        "previous": previous,
        "columns": [{"key": k, "label": segment_label(k), "after": after.get(k, 0)} for k in keys],
        "rows": rows,
        "moved_total": sum(moved.values()),
    }


# --------------------------------------------------------------------------------------------------
# Alerts
# --------------------------------------------------------------------------------------------------
def alert_list(*, user: User, status: str | None = ChurnAlert.Status.OPEN) -> QuerySet[ChurnAlert]:
    """Owners see their own alerts, managers and admins every alert; customers in the bin are hidden."""
    qs = visible_to(ChurnAlert.objects.filter(customer__deleted_at__isnull=True), user)
    if status:
        qs = qs.filter(status=status)
    return qs.select_related("customer", "owner", "acted_by").order_by("-created_at", "-id")


def alert_get_for_user(*, user: User, alert_id: Any) -> ChurnAlert:
    return get_visible_or_404(
        ChurnAlert.objects.filter(customer__deleted_at__isnull=True).select_related("customer", "owner"),
        user,
        pk=alert_id,
    )


def _alerts_version() -> int:
    version = cache.get(ALERTS_VERSION_KEY)
    if version is None:
        cache.add(ALERTS_VERSION_KEY, 1, None)
        version = cache.get(ALERTS_VERSION_KEY) or 1
    return int(version)


def _counted_alerts(*, user: User) -> QuerySet[ChurnAlert]:
    """The open alerts of `alert_list`, for counting: the binned customers' left out by id instead of
    every alert joined to its customer (at 1,000,000 customers that join read the whole customer
    table: 275-334 ms for the badge of a manager, once a minute on whatever page they are on)."""
    alerts = ChurnAlert.objects.filter(status=ChurnAlert.Status.OPEN)
    return visible_to(alerts.exclude(customer_id__in=binned_customer_ids()), user)


def open_alert_count(*, user: User) -> int:
    """Open alerts the user sees. Cached per user for a minute and invalidated (version bump) whenever
    an alert is raised or handled."""
    if not getattr(user, "is_authenticated", False):
        return 0
    key = f"segmentation:open-alerts:{user.pk}:{user.role}:{_alerts_version()}"
    count = cache.get(key)
    if count is None:
        count = _counted_alerts(user=user).count()
        cache.set(key, count, ALERT_BADGE_SECONDS)
    return int(count)


def _new_alerts_key(user: User) -> str:
    # The cache's key function prefixes the tenant's schema: per user AND tenant.
    return f"segmentation:new-alerts:{user.pk}:{user.role}:{_alerts_version()}"


# The badge counts no further than this and shows "99+" beyond it: a count that stops at the hundredth
# alert reads a hundred index entries, where the whole count read them all once a minute on every page
# (at 1,000,000 customers 39-74 ms for a manager, the slowest part of a search page when it expired).
BADGE_MOST = 99


def new_alert_count(*, user: User) -> int:
    """The navigation badge: open alerts the user sees that were raised since they last opened the
    queue (all open ones before the first visit), counted up to BADGE_MOST + 1. Cached per user and
    tenant for a minute, invalidated when an alert is raised or handled (version bump) and when the
    user opens the queue."""
    if not getattr(user, "is_authenticated", False):
        return 0
    key = _new_alerts_key(user)
    count = cache.get(key)
    if count is None:
        seen_at = AlertQueueVisit.objects.filter(user=user).values_list("seen_at", flat=True).first()
        qs = _counted_alerts(user=user)
        if seen_at is not None:
            qs = qs.filter(created_at__gt=seen_at)
        count = qs[: BADGE_MOST + 1].count()
        cache.set(key, count, ALERT_BADGE_SECONDS)
    return int(count)


def forget_new_alert_count(*, user: User) -> None:
    cache.delete(_new_alerts_key(user))


def alert_badge(user) -> str:
    """Badge text for the navigation ("" hides it): how many alerts are new for this user."""
    count = new_alert_count(user=user)
    if count > BADGE_MOST:
        return f"{BADGE_MOST}+"
    return str(count) if count else ""


# The queue: what is at stake first (predicted CLV, unknown last), then the longest silence (oldest
# last purchase, none first), then the newest alert. Keyset pages over these three values.
QUEUE_PAGE_SIZE = 25
_NO_CLV = Decimal("-1")
_NO_PURCHASE = datetime(1970, 1, 1, tzinfo=UTC)
MAX_QUEUE_CURSOR_LENGTH = 200


@dataclass
class AlertQueuePage:
    rows: list[ChurnAlert]
    next_cursor: str | None
    is_first: bool


def _queue_cursor(alert: ChurnAlert) -> str:
    payload = json.dumps(
        [str(alert.stake), alert.last_purchase_key.isoformat(), alert.pk], separators=(",", ":")
    )
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _parse_queue_cursor(cursor: str | None) -> tuple[Decimal, datetime, int] | None:
    if not cursor or len(cursor) > MAX_QUEUE_CURSOR_LENGTH:
        return None
    try:
        stake, last, pk = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
        stake, last, pk = Decimal(str(stake)), datetime.fromisoformat(str(last)), parse_id(pk)
        if pk is None or not stake.is_finite() or last.tzinfo is None:
            return None
        return stake, last, pk
    except (ValueError, TypeError, binascii.Error, InvalidOperation, UnicodeDecodeError):
        return None


def alert_queue(
    *,
    user: User,
    status: str | None = ChurnAlert.Status.OPEN,
    reason: str = "",
    owner_id: int | None = None,
    segment: str = "",
    stage: str = "",
) -> QuerySet[ChurnAlert]:
    """The alerts the user sees, filtered, with the stake and the last purchase to sort on."""
    qs = alert_list(user=user, status=status).select_related("customer__score")
    if reason:
        qs = qs.filter(reason=reason)
    if owner_id is not None:
        qs = qs.filter(owner_id=owner_id)
    if segment:
        qs = qs.filter(customer__score__rfm_segment=segment)
    if stage:
        qs = qs.filter(customer__score__lifecycle_stage=stage)
    return qs.annotate(
        stake=Coalesce(F("customer__score__predicted_clv"), Value(_NO_CLV), output_field=DecimalField()),
        last_purchase_key=Coalesce(
            F("customer__last_order_at"), Value(_NO_PURCHASE), output_field=DateTimeField()
        ),
    )


def alert_queue_page(
    qs: QuerySet[ChurnAlert], *, cursor: str | None = None, page_size: int = QUEUE_PAGE_SIZE
) -> AlertQueuePage:
    """One page of `alert_queue` by keyset: rows strictly after the cursor's (stake, last purchase, id)."""
    position = _parse_queue_cursor(cursor)
    if position is not None:
        stake, last, pk = position
        qs = qs.filter(
            Q(stake__lt=stake)
            | Q(stake=stake, last_purchase_key__gt=last)
            | Q(stake=stake, last_purchase_key=last, pk__lt=pk)
        )
    rows = list(qs.order_by("-stake", "last_purchase_key", "-pk")[: page_size + 1])
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    return AlertQueuePage(
        rows=rows,
        next_cursor=_queue_cursor(rows[-1]) if has_more and rows else None,
        is_first=position is None,
    )


def alert_queue_owners(*, user: User) -> QuerySet[User]:
    """Whom alerts can be filtered by or assigned to: the active users (managers and admins only)."""
    if not user.is_manager_or_admin:
        return User.objects.none()
    return User.objects.filter(is_active=True).order_by("full_name", "email")


def latest_alert_evaluation() -> AlertEvaluation | None:
    return AlertEvaluation.objects.order_by("-created_at", "-id").first()


def customer_alerts(*, customer: Customer, before=None, limit: int = 20) -> list[ChurnAlert]:
    qs = ChurnAlert.objects.filter(customer=customer)
    if before is not None:
        qs = qs.filter(created_at__lt=before)
    return list(qs.select_related("acted_by").order_by("-created_at", "-id")[:limit])


def customer_stage_transitions(
    *, customer: Customer, before=None, limit: int = 20
) -> list[LifecycleTransition]:
    qs = LifecycleTransition.objects.filter(customer=customer)
    if before is not None:
        qs = qs.filter(at__lt=before)
    return list(qs.order_by("-at", "-id")[:limit])


# --------------------------------------------------------------------------------------------------
# Saved segments
# --------------------------------------------------------------------------------------------------
def segment_list(*, user: User) -> QuerySet[Segment]:
    """Managers and admins see every saved segment; others the shared ones and their own."""
    qs = Segment.objects.select_related("created_by")
    if not user.is_manager_or_admin:
        qs = qs.filter(Q(is_shared=True) | Q(created_by=user))
    return qs


def segment_get_for_user(*, user: User, segment_id: Any) -> Segment:
    try:
        return segment_list(user=user).get(pk=int(segment_id))
    except (Segment.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def segment_customers(*, user: User, rules: Any) -> QuerySet[Customer]:
    """The customers matching `rules` that `user` may see (raises RuleError for invalid rules).

    The builder preview and the customer list filtered by a saved segment both use exactly this
    (the list applies the same `rules_to_q` to its own visible, not-in-the-bin queryset).
    """
    base = visible_to(Customer.objects.filter(deleted_at__isnull=True), user)
    return base.filter(rules_to_q(rules))


def segment_labels() -> dict[str, list[tuple[str, str]]]:
    return {
        "segments": [(str(key), segment_label(key)) for key in SEGMENT_ORDER],
        "stages": [(str(stage), stage_label(stage)) for stage in STAGE_ORDER],
    }


# --------------------------------------------------------------------------------------------------
# For apps that follow segmentation's signals in the background (no user scope: the caller decides
# whom the result concerns, e.g. follow-up rules create work for each customer's owner)
# --------------------------------------------------------------------------------------------------
def alert_customer_ids(*, alert_ids: list[int]) -> dict[int, int]:
    """alert id -> customer id, for the alerts of a `churn_alerts_raised` signal."""
    return dict(ChurnAlert.objects.filter(pk__in=list(alert_ids)).values_list("pk", "customer_id"))


def run_stage_entries(*, run_id: int, stage: str) -> list[tuple[int, int]]:
    """(transition id, customer id) of the customers a recompute run moved into `stage`."""
    return list(
        LifecycleTransition.objects.filter(run_id=run_id, to_stage=stage)
        .order_by("pk")
        .values_list("pk", "customer_id")
    )


def segment_member_ids(*, segment: Segment) -> set[int]:
    """Ids of every customer (not in the bin) matching a saved segment's rules now; an empty set when
    its rules no longer compile (e.g. a custom field it used was removed)."""
    try:
        condition = rules_to_q(segment.rules)
    except RuleError:
        return set()
    return set(
        Customer.objects.filter(deleted_at__isnull=True).filter(condition).values_list("pk", flat=True)
    )


# --------------------------------------------------------------------------------------------------
# For the dashboards: stage and segment histories (dashboards never import our models)
# --------------------------------------------------------------------------------------------------
def stage_transitions(*, user: User) -> QuerySet[LifecycleTransition]:
    """Lifecycle stage changes of the customers the user may see (not in the bin)."""
    return visible_to(LifecycleTransition.objects.filter(customer__deleted_at__isnull=True), user)


def segment_transitions(*, user: User) -> QuerySet[SegmentTransition]:
    """RFM segment changes of the customers the user may see (not in the bin)."""
    return visible_to(SegmentTransition.objects.filter(customer__deleted_at__isnull=True), user)
