"""Benchmark: the full segmentation recompute on 100,000 customers / 1,000,000 orders (`make bench`),
or 1,000,000 / 10,000,000 (`make bench SCALE=1m`; RECOMPUTE_BENCH_CUSTOMERS gives another size, with
ten orders a customer). The data is simulated from the BG/NBD and
Gamma-Gamma processes (segmentation.analytics.simulate) so the CLV fit does real work, and written
with COPY into a committed throw-away tenant. Timed, up to the moment the scores, transitions,
snapshot and alerts are committed (the holdout check of the model runs after that and is reported
separately):

* the first run on the fresh tenant (every score inserted) and three nightly runs (every score
  updated); the headline is the best nightly run;
* then an incremental run after 1% of the customers bought (best of three rounds): under 2 s
  (issue 18), its ratio to the full run recorded;
* a bare baseline in the same run, best of three: COPY the same purchases out (binary, like the
  recompute), one pandas groupby, COPY a row per customer into a temp table.

Wall time on this shared 2-core machine swings with the other processes, so CPU seconds (this
process + its PostgreSQL backend) are recorded too.

Targets, asserted: at 100,000 the full recompute < 10 s and its ratio to the baseline < 3;
at 1,000,000 < 30 s and a ratio of at most 2.5 (issue 18). The ratio is wall time, best nightly run
over best baseline; the CPU ratio is asserted too, as it does not swing with the neighbours' load. The
peak resident memory of the process during the runs (VmHWM, reset before the first run: the worker
runs the same function) is recorded and asserted under 6 GiB.
"""

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from segmentation.analytics.simulate import simulate_transactions_frame
from segmentation.models import CustomerScore, RecomputeRun
from segmentation.pgcopy import copy_in_arrays, copy_out_arrays
from segmentation.recompute import recompute

from . import scale
from .conftest import load_text, record_benchmark

N_CUSTOMERS = scale.size("RECOMPUTE_BENCH_CUSTOMERS", 100_000)
N_ORDERS = 10 * N_CUSTOMERS
AT_SCALE = N_CUSTOMERS >= 1_000_000
TARGET_SECONDS, TARGET_RATIO = (30, 2.5) if AT_SCALE else (10, 3)
MEMORY_LIMIT_MB = 6 * 1024

pytestmark = [pytest.mark.slow, pytest.mark.at_scale]


def _reset_peak_memory() -> None:
    """Reset this process's peak resident set (VmHWM) to its current size (Linux: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def _peak_memory_mb() -> float:
    """This process's peak resident set since the last reset, in MiB (VmHWM in /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process plus its PostgreSQL backend (via /proc; the database
    runs on this machine). Wall time on a shared 2-core machine swings with the neighbours' load;
    CPU time does not, so the benchmark records both."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        server = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        server = float("nan")
    return time.process_time() + server


def _copy_frame(table: str, frame: pd.DataFrame) -> None:
    """Text COPY of a generated frame (values hold no tabs, newlines or backslashes)."""
    text = frame.to_csv(sep="\t", header=False, index=False, lineterminator="\n")
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN") as copy,
    ):
        copy.write(text.encode())


def generate(n_customers: int = N_CUSTOMERS, n_orders: int = N_ORDERS, seed: int = 7) -> tuple[int, int]:
    """COPY `n_customers` customers and about `n_orders` orders into the current schema."""
    rng = np.random.default_rng(seed)
    observation_days = 730
    start = (timezone.now() - pd.Timedelta(days=observation_days)).date()
    transactions = simulate_transactions_frame(
        n_customers,
        r=0.9,
        alpha=22.0,
        a=0.6,
        b=5.0,
        p=6.0,
        q=4.0,
        gamma=120.0,
        start=str(start),
        acquisition_days=540,
        observation_days=observation_days,
        time_unit="D",
        seed=seed,
    )
    if len(transactions) > n_orders:  # trim to the target volume, keeping the order of time
        keep = np.sort(rng.choice(len(transactions), size=n_orders, replace=False))
        transactions = transactions.iloc[keep]
    now = timezone.now()
    now_text = now.isoformat()
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM customers_customer")
        base_id = cursor.fetchone()[0]
    ids = base_id + 1 + np.arange(n_customers)
    cities = np.array(["Shanghai", "Beijing", "Shenzhen", "Guangzhou", "Hangzhou", "Chengdu"])
    customers = pd.DataFrame(
        {
            "id": ids,
            "kind": "person",
            "name": [f"Bench {i}" for i in ids],
            "email": [f"bench{i}@example.com" for i in ids],
            "phone": "",
            "country": "CN",
            "province": "",
            "city": cities[rng.integers(0, len(cities), n_customers)],
            "street": "",
            "postcode": "",
            "gender": rng.choice(["female", "male", "unknown"], n_customers),
            "income_band": "",
            "occupation": "",
            "source": "store",
            "email_consent": "f",
            "sms_consent": "f",
            "external_id": "",
            "custom_fields": "{}",
            "search_text": [f"bench {i}" for i in ids],
            "search_han_grams": "{}",  # no Han characters in the text (customers.search_index)
            "search_inner_han": "{}",
            "total_spent": 0,
            "orders_count": 0,
            "created_at": now_text,
            "updated_at": now_text,
        }
    )
    _copy_frame("customers_customer", customers)
    seconds = rng.integers(8 * 3600, 22 * 3600, len(transactions))
    placed = pd.to_datetime(transactions["date"].to_numpy()).tz_localize("UTC") + pd.to_timedelta(
        seconds, unit="s"
    )
    placed = placed.where(placed <= now, now)
    orders = pd.DataFrame(
        {
            "number": [f"B{i:08d}" for i in range(len(transactions))],
            "customer_id": ids[transactions["customer_id"].to_numpy()],
            "placed_at": placed.strftime("%Y-%m-%d %H:%M:%S+00"),
            "status": np.where(rng.random(len(transactions)) < 0.03, "refunded", "paid"),
            "channel": "store",
            "currency": "CNY",
            "total": np.round(transactions["amount"].to_numpy() + 1.0, 2),
            "refunded_total": 0.0,
            "external_id": "",
            "created_at": now_text,
            "updated_at": now_text,
        }
    )
    orders.loc[orders["status"] == "refunded", "refunded_total"] = orders.loc[
        orders["status"] == "refunded", "total"
    ]
    _copy_frame("customers_order", orders)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('customers_customer', 'id'), %s)", [int(ids[-1])]
        )
        cursor.execute("ANALYZE customers_customer")
        cursor.execute("ANALYZE customers_order")
    return n_customers, len(orders)


def baseline() -> float:
    """COPY the same purchases out, one pandas groupby, COPY a row per customer into a temp table (with the
    same binary COPY the recompute uses, so the ratio measures the recompute's own work)."""
    started = time.perf_counter()
    customer, placed_us, amount = copy_out_arrays(
        "SELECT customer_id, placed_at, (total - refunded_total)::float8 "
        "FROM customers_order WHERE status = ANY(%s) AND placed_at <= %s",
        (["paid", "partially_refunded"], timezone.now()),
        ["int8", "timestamptz", "float8"],
    )
    frame = pd.DataFrame({"customer_id": customer, "placed_us": placed_us, "amount": amount})
    grouped = frame.groupby("customer_id").agg(
        last=("placed_us", "max"), orders=("placed_us", "size"), total=("amount", "sum")
    )
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_baseline")
        cursor.execute(
            "CREATE TEMP TABLE bench_baseline (customer_id int8, last timestamptz, orders int8, total float8)"
        )
    copy_in_arrays(
        "bench_baseline",
        [
            ("customer_id", "int8", grouped.index.to_numpy()),
            ("last", "timestamptz", grouped["last"].to_numpy()),
            ("orders", "int8", grouped["orders"].to_numpy()),
            ("total", "float8", grouped["total"].to_numpy()),
        ],
    )
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_baseline")
    return time.perf_counter() - started


def test_recompute(committed_tenant, django_db_blocker):
    tenant = committed_tenant("bench-seg", "Benchmark Segmentation")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        started = time.perf_counter()
        customers, orders = generate()
        generate_seconds = time.perf_counter() - started
        print(f"\ngenerated {customers:,} customers / {orders:,} orders in {generate_seconds:.1f} s")

        # The machine is shared: every figure is the best of several runs (as timeit does).
        baseline_runs = []
        for _ in range(3):
            cpu = _cpu_seconds()
            baseline_runs.append((baseline(), _cpu_seconds() - cpu))
        baseline_seconds = min(wall for wall, _cpu in baseline_runs)
        baseline_cpu = min(cpu for _wall, cpu in baseline_runs)

        def timed_run(trigger: str, incremental: bool | None = False) -> tuple[RecomputeRun, float, float]:
            """Seconds until the scores, history and alerts are committed, and until the end (the
            holdout check of the model runs after that, off the user's critical path)."""
            marks = {}

            def written(_run):
                marks["written"] = time.perf_counter()
                marks["cpu"] = _cpu_seconds()

            cpu = _cpu_seconds()
            started = time.perf_counter()
            run = recompute(trigger=trigger, on_scores_written=written, incremental=incremental)
            assert run.status == RecomputeRun.Status.SUCCEEDED
            run.cpu_seconds = marks["cpu"] - cpu
            return run, marks["written"] - started, time.perf_counter() - started

        # First run on a fresh tenant: every score inserted. Then the nightly case: every score updated.
        memory_before = _peak_memory_mb()
        _reset_peak_memory()
        first, first_seconds, first_total = timed_run(RecomputeRun.Trigger.MANUAL)
        nightly = [timed_run(RecomputeRun.Trigger.NIGHTLY) for _ in range(3)]
        peak_mb = _peak_memory_mb()
        best, seconds, total = min(nightly, key=lambda item: item[1])
        assert CustomerScore.objects.count() == customers
        ratio = seconds / baseline_seconds
        print(f"baseline (COPY out + groupby + COPY in): {baseline_seconds:.2f} s")
        print(f"recompute, first run:   {first_seconds:.2f} s ({first_total:.2f} s with the holdout check)")
        print(f"  phases: {first.timings}")
        print(f"recompute, nightly runs: {', '.join(f'{n[1]:.2f}' for n in nightly)} s; best {best.timings}")
        print(f"CLV model: {first.clv_model} ({first.model_report.get('reason')})")
        print(f"ratio (best nightly run / baseline): {ratio:.2f}")
        cpu_seconds = min(n[0].cpu_seconds for n in nightly)
        cpu_ratio = cpu_seconds / baseline_cpu
        print(f"CPU seconds (client + database): recompute {cpu_seconds:.2f}, baseline {baseline_cpu:.2f}")
        print(f"CPU ratio: {cpu_ratio:.2f}")
        print(
            f"peak memory of the runs: {peak_mb:,.0f} MiB "
            f"(before the runs, with the generated data: {memory_before:,.0f})"
        )
        record_benchmark(
            f"recompute_{scale.scale_name()}",
            seconds=round(seconds, 3),
            baseline_seconds=round(baseline_seconds, 3),
            ratio=round(ratio, 2),
            first_run_seconds=round(first_seconds, 3),
            nightly_runs_seconds=[round(n[1], 3) for n in nightly],
            with_holdout_seconds=round(total, 3),
            cpu_seconds=round(cpu_seconds, 3),
            baseline_cpu_seconds=round(baseline_cpu, 3),
            cpu_ratio=round(cpu_ratio, 2),
            customers=customers,
            orders=orders,
            clv_model=first.clv_model,
            phases_first=first.timings,
            phases_best=best.timings,
            peak_memory_mb=round(peak_mb),
            load=load_text(),
        )
        _incremental(tenant, timed_run, customers, full_seconds=seconds)
        assert seconds < TARGET_SECONDS, (
            f"nightly recompute took {seconds:.1f} s (target < {TARGET_SECONDS} s)"
        )
        assert first_seconds < 1.5 * TARGET_SECONDS, f"first recompute took {first_seconds:.1f} s"
        assert peak_mb < MEMORY_LIMIT_MB, f"peak memory {peak_mb:,.0f} MiB (limit {MEMORY_LIMIT_MB:,} MiB)"
        # Where the time goes beyond the baseline's read: two maximum-likelihood fits on 100,000
        # customers (warm-started from the last run), the CLV sum over monthly steps, and writing
        # 100,000 score rows into a fresh table whose five indexes are built once (segmentation.
        # tableswap) instead of updating every row and its index entries in place.
        assert ratio <= TARGET_RATIO, f"recompute / baseline = {ratio:.2f} (target {TARGET_RATIO})"
        assert cpu_ratio <= TARGET_RATIO, (
            f"recompute / baseline CPU = {cpu_ratio:.2f} (target {TARGET_RATIO})"
        )


INCREMENTAL_SHARE = 0.01  # a day of new orders: 1% of the customers buy
INCREMENTAL_TARGET_SECONDS = 2.0  # issue 18 (the ratio to the full run is recorded, not asserted)


def _incremental(tenant, timed_run, customers: int, *, full_seconds: float) -> None:
    """After the full runs, 1% of the customers buy (one order each, placed since the last run, written
    with COPY like an import); the next recompute re-reads only them. Best of three such rounds."""
    rng = np.random.default_rng(11)
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM customers_customer")
        low, high = cursor.fetchone()
    rounds = []
    for round_number in range(3):
        buyers = rng.choice(np.arange(low, high + 1), size=int(INCREMENTAL_SHARE * customers), replace=False)
        last = RecomputeRun.objects.filter(status=RecomputeRun.Status.SUCCEEDED).latest("finished_at").as_of
        placed = last + (timezone.now() - last) / 2
        now_text = timezone.now().isoformat()
        _copy_frame(
            "customers_order",
            pd.DataFrame(
                {
                    "number": [f"I{round_number}-{i}" for i in range(len(buyers))],
                    "customer_id": buyers,
                    "placed_at": placed.isoformat(),
                    "status": "paid",
                    "channel": "online",
                    "currency": "CNY",
                    "total": np.round(rng.gamma(6.0, 20.0, len(buyers)) + 1.0, 2),
                    "refunded_total": 0.0,
                    "external_id": "",
                    "created_at": now_text,
                    "updated_at": now_text,
                }
            ),
        )
        rounds.append(timed_run(RecomputeRun.Trigger.IMPORT, incremental=None))
    best, seconds, _total = min(rounds, key=lambda item: item[1])
    assert all(run.kind == RecomputeRun.Kind.INCREMENTAL for run, _s, _t in rounds), [
        r.kind for r, _s, _t in rounds
    ]
    ratio = seconds / full_seconds
    print(
        f"incremental recompute after {len(buyers):,} customers bought: "
        f"{', '.join(f'{r[1]:.2f}' for r in rounds)} s; best {best.timings}; "
        f"{best.changed_customers:,} re-read, ratio to the full run {ratio:.2f}"
    )
    record_benchmark(
        f"recompute_incremental_{scale.scale_name()}",
        seconds=round(seconds, 3),
        runs_seconds=[round(r[1], 3) for r in rounds],
        changed_customers=best.changed_customers,
        refitted=[r.changed_since_fit == 0 for r, _s, _t in rounds],
        ratio_to_full=round(ratio, 3),
        customers=customers,
        phases_best=best.timings,
        load=load_text(),
    )
    assert seconds < INCREMENTAL_TARGET_SECONDS, f"incremental recompute took {seconds:.2f} s"
