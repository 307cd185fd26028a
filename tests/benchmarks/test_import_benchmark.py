"""Benchmark: customer rows validated and written by the import, at 100,000 rows (`make bench`) and
1,000,000 (`make bench SCALE=1m`; IMPORT_BENCH_ROWS gives another size).

Issue 18's targets are 100,000 rows under 10 s and 1,000,000 under 120 s: the cost of a row may grow
by at most a fifth from one size to ten times it. That is what is asserted, as a ratio measured in
the same run: a reference import of a tenth of the rows first, then the full file into the same
tenant; (seconds per row of the full file) / (seconds per row of the reference) < 1.2. The absolute
figures, the issue's targets beside them, the phases, the machine's load and the peak memory
(resident set) of reading, checking and writing are printed and recorded, not asserted.

Runs the same service the Celery task runs (`customers.imports.services.import_run`): read the file
as a stream, check every row, match against existing customers, compute the search text (pinyin
included), COPY into staging tables, INSERT ... SELECT, tags, audit rows and order figures, in one
transaction. The result carries the seconds of each phase (read, validate, plan, customers_new_copy,
customers_new_insert, write_tags, analyse, order_stats, audit, constraints). A customer list is
checked and written in chunks (customers.imports.services._write_customer_list): validate and plan
then run while the writer's thread inserts (customers_new_insert, which includes the new customers'
audit rows, tag links and foreign-key checks), and write_customers_new is the whole of it.
"""

import os
import random
import resource
import time

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from crm.audit.models import AuditEvent
from customers.imports import parsing, services
from customers.models import Customer
from customers.search import build_search_text
from tests.benchmarks.scale import size


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    """Uploaded and generated job files go to a temporary folder, not the shared test media."""
    settings.MEDIA_ROOT = tmp_path


ROWS = size("IMPORT_BENCH_ROWS", 100_000)
REFERENCE_ROWS = max(1_000, ROWS // 10)
# issue 18: 100,000 rows in 10 s, 1,000,000 in 120 s (a row may cost a fifth more at ten times the size)
ISSUE_TARGET_SECONDS = 10 * ROWS / 100_000 * (1.2 if ROWS >= 1_000_000 else 1.0)
# The issue's 1,000,000 rows in 120 s against 100,000 in 10 s: a row may cost a fifth more at ten
# times the size.
PER_ROW_GROWTH_TARGET = 1.2

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"
ENGLISH_FIRST = ["Anna", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Henry", "Iris", "Jack"]
ENGLISH_LAST = ["Smith", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas", "Walker"]
CITIES = [
    ("上海", "上海"),
    ("北京", "北京"),
    ("广州", "广东"),
    ("深圳", "广东"),
    ("杭州", "浙江"),
    ("成都", "四川"),
]
SOURCES = ["门店", "website", "referral", "social", "电话"]
MOBILE_BLOCKS = ["135", "136", "138", "139", "150", "151", "186", "187", "199"]
TAGS = ["VIP", "老客户", "newsletter", "wholesale", ""]


def _backend_cpu_seconds() -> float | None:
    """CPU seconds the PostgreSQL backend of this connection has used (it runs on this machine in the
    benchmark), or None where /proc cannot tell. Beside the wall time, it shows how much of an import
    is the database's own work, which the machine's load does not change."""
    connection.ensure_connection()
    try:
        with open(f"/proc/{connection.connection.info.backend_pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _csv(rows: int, seed: int = 7, first: int = 0) -> bytes:
    """`rows` customers numbered from `first` (external id, phone and e-mail unique per number)."""
    rng = random.Random(seed)
    lines = ["外部编号,姓名,手机号,邮箱,城市,省份,生日,性别,来源,标签"]
    for i in range(first, first + rows):
        if rng.random() < 0.7:
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        else:
            name = f"{rng.choice(ENGLISH_FIRST)} {rng.choice(ENGLISH_LAST)}"
        city, province = rng.choice(CITIES)
        phone = f"{rng.choice(MOBILE_BLOCKS)}{i:08d}"
        birthday = f"{rng.randrange(1950, 2005)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        gender = rng.choice(("男", "女", "female", "male", ""))
        lines.append(
            f"B-{i:07d},{name},{phone},user{i}@example.com,{city},{province},{birthday},{gender},"
            f"{rng.choice(SOURCES)},{rng.choice(TAGS)}"
        )
    return ("\n".join(lines) + "\n").encode("utf-8")


def _wal_position() -> str:
    """Where PostgreSQL's write-ahead log ends now. The WAL an import writes (the difference of two
    positions) hardly moves with the machine's speed, unlike its seconds: it tells two versions'
    database work apart where the wall time on a shared machine cannot (it includes any other
    writer's WAL meanwhile, and full-page images after checkpoints)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        return cursor.fetchone()[0]


def _wal_megabytes_since(position: str) -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)", [position])
        return round(float(cursor.fetchone()[0]) / 1024 / 1024, 1)


def _reset_peak_memory() -> None:
    """Start a new high-water mark of this process's resident set (Linux: /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def _peak_memory_mb() -> float:
    """The process's peak resident set since the last reset (VmHWM), else since it started."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed_import(manager_user, data: bytes) -> dict:
    """Upload, map, preview (every row checked, not timed), confirm, then the timed import."""
    job = services.import_upload(actor=manager_user, uploaded_file=SimpleUploadedFile("bench.csv", data))
    job = services.import_set_mapping(
        actor=manager_user, job=job, mapping=job.params["mapping"], policy="update"
    )
    _reset_peak_memory()
    started = time.perf_counter()
    services.import_validate(job_id=job.pk)
    preview_seconds = time.perf_counter() - started
    preview_peak = _peak_memory_mb()
    job.refresh_from_db()
    assert job.result["preview"]["errors_total"] == 0, job.result["preview"]["errors"][:5]
    services.import_confirm(actor=manager_user, job=job, skip_invalid=False)

    _reset_peak_memory()
    wal_before = _wal_position()
    backend_before, python_before = _backend_cpu_seconds(), time.process_time()
    started = time.perf_counter()
    result = services.import_run(job_id=job.pk)
    seconds = time.perf_counter() - started
    python_cpu = time.process_time() - python_before
    backend_after = _backend_cpu_seconds()
    wal_mb = _wal_megabytes_since(wal_before)
    assert result is not None
    return {
        "result": result,
        "seconds": seconds,
        "preview_seconds": preview_seconds,
        "preview_peak_mb": preview_peak,
        "import_peak_mb": _peak_memory_mb(),
        "python_cpu": python_cpu,
        "backend_cpu": None if backend_after is None else round(backend_after - backend_before, 2),
        "wal_mb": wal_mb,
    }


@pytest.mark.at_scale
def test_import_customers(tenant, manager_user, record_benchmark, monkeypatch, settings):
    data = _csv(ROWS, first=REFERENCE_ROWS)
    if len(data) > parsing.MAX_CSV_UPLOAD_BYTES or ROWS > django_settings.IMPORT_MAX_CSV_ROWS:
        # A size beyond the upload bounds (IMPORT_BENCH_ROWS): the bounds are not what is measured.
        monkeypatch.setattr(parsing, "MAX_CSV_UPLOAD_BYTES", len(data))
        settings.IMPORT_MAX_CSV_ROWS = ROWS
    reference = _timed_import(manager_user, _csv(REFERENCE_ROWS, seed=11))
    assert reference["result"]["written"]["customers_created"] == REFERENCE_ROWS

    load_before = os.getloadavg()[0]
    measured = _timed_import(manager_user, data)
    result, seconds = measured["result"], measured["seconds"]
    assert result["written"]["customers_created"] == ROWS
    assert Customer.objects.count() == REFERENCE_ROWS + ROWS
    assert AuditEvent.objects.filter(action="customer.imported").count() == REFERENCE_ROWS + ROWS
    # the search text is complete when the import commits (no follow-up rewrites it)
    sample = Customer.objects.filter(
        external_id__in=[
            f"B-{i:07d}" for i in range(REFERENCE_ROWS, REFERENCE_ROWS + ROWS, max(1, ROWS // 50))
        ]
    )
    for customer in sample:
        assert customer.search_text == build_search_text(
            name=customer.name, email=customer.email, phone=customer.phone, external_id=customer.external_id
        )

    growth = (seconds / ROWS) / (reference["seconds"] / REFERENCE_ROWS)
    load = os.getloadavg()[0]
    print(
        f"\nimport of {ROWS:,} customer rows into {REFERENCE_ROWS:,}: {seconds:.1f} s (issue target "
        f"{ISSUE_TARGET_SECONDS:.0f} s; load {load_before:.1f} before, {load:.1f} after); reference "
        f"{REFERENCE_ROWS:,} rows: {reference['seconds']:.1f} s; per-row growth {growth:.2f} "
        f"(target < {PER_ROW_GROWTH_TARGET}); CPU: Python {measured['python_cpu']:.1f} s, PostgreSQL "
        f"{measured['backend_cpu']} s; WAL {measured['wal_mb']:,.0f} MB; "
        f"peak memory: preview {measured['preview_peak_mb']:,.0f} MB "
        f"({measured['preview_seconds']:.1f} s), import {measured['import_peak_mb']:,.0f} MB; "
        f"phases: {result['seconds']}"
    )
    record_benchmark(
        "import_customers",
        rows=ROWS,
        seconds=round(seconds, 2),
        issue_target_seconds=ISSUE_TARGET_SECONDS,
        reference_rows=REFERENCE_ROWS,
        reference_seconds=round(reference["seconds"], 2),
        per_row_growth=round(growth, 3),
        per_row_growth_target=PER_ROW_GROWTH_TARGET,
        load_average=load,
        python_cpu_seconds=round(measured["python_cpu"], 2),
        postgres_cpu_seconds=measured["backend_cpu"],
        wal_mb=measured["wal_mb"],
        preview_seconds=round(measured["preview_seconds"], 2),
        preview_peak_rss_mb=round(measured["preview_peak_mb"]),
        import_peak_rss_mb=round(measured["import_peak_mb"]),
        phases=result["seconds"],
    )
    assert growth < PER_ROW_GROWTH_TARGET, f"per-row cost grew {growth:.2f}x from {REFERENCE_ROWS:,} rows"


def _import(manager_user, data: bytes) -> tuple[dict, float]:
    job = services.import_upload(actor=manager_user, uploaded_file=SimpleUploadedFile("bench.csv", data))
    services.import_set_mapping(actor=manager_user, job=job, mapping=job.params["mapping"], policy="update")
    services.import_validate(job_id=job.pk)
    job.refresh_from_db()
    services.import_confirm(actor=manager_user, job=job, skip_invalid=False)
    started = time.perf_counter()
    result = services.import_run(job_id=job.pk)
    return result, time.perf_counter() - started


def test_reimporting_100k_unchanged_rows_writes_nothing(tenant, manager_user, record_benchmark):
    data = _csv(ROWS)
    _import(manager_user, data)
    customer_audit = AuditEvent.objects.filter(target_type="customers.customer")
    audit_rows = customer_audit.count()
    result, seconds = _import(manager_user, data)
    assert result["written"]["customers_created"] == 0 and result["written"]["customers_updated"] == 0
    assert result["unchanged"]["customers"] == ROWS
    assert customer_audit.count() == audit_rows  # no per-customer history rows
    print(f"\nre-import of {ROWS:,} unchanged rows: {seconds:.1f} s; phases: {result['seconds']}")
    record_benchmark("import_100k_reimport_unchanged", seconds=round(seconds, 2), rows=ROWS)


def _orders_csv(orders: int, customers: int, seed: int = 3) -> bytes:
    """One row per order line (1-2 lines per order), customers named by phone and name."""
    rng = random.Random(seed)
    lines = ["订单号,下单时间,手机号,姓名,商品名称,SKU,数量,单价"]
    for number in range(orders):
        customer = rng.randrange(customers)
        placed = f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d} {rng.randrange(8, 22):02d}:00"
        for line in range(rng.choice((1, 2))):
            lines.append(
                f"SO-{number:07d},{placed},138{customer:08d},客户{customer},茶叶{line},T-{line},"
                f"{rng.randrange(1, 4)},{rng.randrange(10, 300)}"
            )
    return ("\n".join(lines) + "\n").encode("utf-8")


def test_import_50k_orders_with_lines(tenant, manager_user, record_benchmark):
    result, seconds = _import(manager_user, _orders_csv(50_000, 20_000))
    written = result["written"]
    assert written["orders_created"] == 50_000
    assert written["lines_created"] > 50_000
    assert Customer.objects.filter(orders_count__gt=0).count() == written["customers_created"]
    lines = written["lines_created"]
    print(f"\nimport of 50,000 orders ({lines:,} lines): {seconds:.1f} s; {result['seconds']}")
    record_benchmark(
        "import_50k_orders",
        seconds=round(seconds, 2),
        lines=written["lines_created"],
        phases=result["seconds"],
    )
