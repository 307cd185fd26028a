"""Benchmark: how far the early warning can be trusted, and how quick small tenants are (issue 13).

Run with `make bench` (pytest tests/benchmarks -s). Three measurements, each recorded with
`record_benchmark`:

* `alert_evaluation_tenant`: the evaluation harness (`segmentation.evaluation`) on a tenant of
  EW_BENCH_CUSTOMERS (default 100,000) customers / ten times as many orders, simulated from the
  BG/NBD like the recompute benchmark: the at-risk rule at the latest cut-off whose 90 days are over,
  against the naive "no purchase for 90 days" rule (precision, recall, seconds);
* `alert_evaluation_simulated`: the same on simulated purchase histories with known truth
  (`simulate_purchase_histories`, seed 7), where the targets are asserted: the alerts beat the naive
  rule on precision and recall, precision >= 0.7, no flagged customer inside the typical interval;
* `small_tenant_recompute`: the model time (CPU seconds of RFM + CLV + stages + holdout; the wall time
  is recorded too) of a recompute of 5 to 5,000 customers and of degenerate tenants (identical
  customers, one purchase each, no repeaters); asserted under 1 s each.

`EW_BENCH_CUSTOMERS=2000 make bench ARGS="-k early_warning"` runs it at a small size.
"""

import os
import time

import pandas as pd
import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from customers.models import Customer, Order
from segmentation.analytics.evaluate import evaluate_alerts
from segmentation.analytics.simulate import simulate_purchase_histories
from segmentation.evaluation import alert_evaluation_for_tenant
from segmentation.models import AlertEvaluation, CustomerScore, RecomputeRun
from segmentation.recompute import recompute

from .conftest import record_benchmark
from .test_recompute_benchmark import generate

N_CUSTOMERS = int(os.environ.get("EW_BENCH_CUSTOMERS", "100000"))
MODEL_PHASES = ("rfm", "clv", "stages", "holdout")

pytestmark = pytest.mark.slow


def _figures(row: AlertEvaluation | dict) -> dict:
    figures = row.figures if isinstance(row, AlertEvaluation) else row
    rules, naive = figures["rules"], figures["naive"]
    return {
        "cutoff": figures["cutoff"],
        "customers": figures["customers"],
        "lapsed": rules["lapsed"],
        "precision": rules["precision"],
        "recall": rules["recall"],
        "flagged": rules["flagged"],
        "naive_precision": naive["precision"],
        "naive_recall": naive["recall"],
        "naive_flagged": naive["flagged"],
        "beats_naive": figures["beats_naive"],
        "model_used": figures["model_used"],
        "typical_interval_days": figures["typical_interval_days"],
        "flagged_recent_buyers": figures["flagged_recent_buyers"],
    }


def _print(name: str, figures: dict, seconds: float) -> None:
    print(
        f"\n{name}: {figures['customers']:,} customers, cut-off {figures['cutoff']}, {seconds:.2f} s\n"
        f"  alerts:     precision {figures['precision']:.3f}, recall {figures['recall']:.3f} "
        f"({figures['flagged']:,} flagged)\n"
        f"  naive rule: precision {figures['naive_precision']:.3f}, recall {figures['naive_recall']:.3f} "
        f"({figures['naive_flagged']:,} flagged); beats naive: {figures['beats_naive']}"
    )


def test_alert_evaluation_on_the_benchmark_tenant(committed_tenant, django_db_blocker):
    tenant = committed_tenant("bench-ew", "Benchmark Early Warning")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        customers, orders = generate(n_customers=N_CUSTOMERS, n_orders=N_CUSTOMERS * 10, seed=11)
        started = time.perf_counter()
        row = alert_evaluation_for_tenant()
        seconds = time.perf_counter() - started
        figures = _figures(row)
        _print("alert evaluation (tenant)", figures, seconds)
        record_benchmark("alert_evaluation_tenant", seconds=round(seconds, 3), orders=orders, **figures)
        assert figures["flagged_recent_buyers"] == 0
        assert figures["customers"] > 0.5 * customers


def test_alert_evaluation_on_simulated_histories():
    transactions, observation_end = simulate_purchase_histories(N_CUSTOMERS, seed=7)
    started = time.perf_counter()
    result = evaluate_alerts(
        transactions, cutoff=observation_end - pd.Timedelta(days=90), observation_end=observation_end
    )
    seconds = time.perf_counter() - started
    figures = _figures(result.to_dict())
    _print("alert evaluation (simulated, seed 7)", figures, seconds)
    record_benchmark("alert_evaluation_simulated", seconds=round(seconds, 3), **figures)
    assert figures["beats_naive"] and figures["precision"] >= 0.7
    assert figures["flagged_recent_buyers"] == 0


def _histories(kind: str, n: int) -> list[list[int]]:
    if kind == "identical":
        return [[200, 150, 100, 60, 30, 10]] * n
    if kind == "one-purchase-each":
        return [[1 + (i * 7) % 360] for i in range(n)]
    if kind == "no-repeaters":
        return [[5]] * n  # everyone bought once, on the same day
    raise ValueError(kind)


def _bulk_customers(histories: list[list[int]]) -> None:
    now = timezone.now()
    customers = Customer.objects.bulk_create(
        [Customer(name=f"Small {i}", search_text=f"small {i}") for i in range(len(histories))]
    )
    Order.objects.bulk_create(
        [
            Order(
                customer=customer,
                number=f"S{customer.pk}-{j}",
                placed_at=now - pd.Timedelta(days=days),
                total=100,
                status=Order.Status.PAID,
            )
            for customer, days_list in zip(customers, histories, strict=True)
            for j, days in enumerate(days_list)
        ]
    )


@pytest.mark.parametrize(
    "case",
    ["simulated-5", "simulated-50", "simulated-500", "simulated-5000", "identical-5", "identical-500",
     "one-purchase-each-500", "no-repeaters-500"],
)  # fmt: skip
def test_small_tenant_recompute(committed_tenant, django_db_blocker, case):
    tenant = committed_tenant(f"bench-small-{case.replace('-', '')[:20]}", "Small tenant")
    kind, n = case.rsplit("-", 1)
    n = int(n)
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        if kind == "simulated":
            generate(n_customers=n, n_orders=n * 10, seed=5)
        else:
            _bulk_customers(_histories(kind, n))
        recompute()
        started = time.perf_counter()
        run = recompute()
        seconds = time.perf_counter() - started
        assert run.status == RecomputeRun.Status.SUCCEEDED
        assert CustomerScore.objects.count() == n
        model = run.timings["model_cpu"]  # CPU seconds of RFM + CLV + stages + holdout
        model_wall = sum(run.timings.get(phase, 0.0) for phase in MODEL_PHASES)
        print(
            f"\nrecompute {case}: model {model:.3f} s CPU ({model_wall:.3f} s wall), total {seconds:.2f} s, "
            f"{run.clv_model}, {run.timings}"
        )
        record_benchmark(
            "small_tenant_recompute",
            case=case,
            customers=n,
            model_cpu_seconds=round(model, 3),
            model_wall_seconds=round(model_wall, 3),
            seconds=round(seconds, 3),
            clv_model=run.clv_model,
            holdout=run.holdout.get("skipped", "checked"),
            phases=run.timings,
        )
        assert model < 1.0, f"{case}: {model:.2f} s of model time (target < 1 s)"
