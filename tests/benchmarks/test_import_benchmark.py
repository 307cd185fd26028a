"""Benchmark: 100,000 customer rows validated and written by the import.

Issue 18's target is under 10 s for 100,000 rows (and 120 s for 1,000,000); the assertion here is a
looser guard (30 s per 100,000 rows) because the machine is shared and its load moves every figure.

Runs the same service the Celery task runs (`customers.imports.services.import_run`): read the file,
check every row, match against existing customers, COPY into staging tables, INSERT ... SELECT,
tags, audit rows and order figures, in one transaction. The result carries the seconds of each
phase (read, validate, plan, customers_new_copy, customers_new_insert, write_tags, analyse,
order_stats, audit, constraints), printed here. Run with `make bench`; IMPORT_BENCH_ROWS=300000
measures a bigger file (for extrapolating to 1,000,000).
"""

import os
import random
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from crm.audit.models import AuditEvent
from customers.imports import parsing, services
from customers.models import Customer


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    """Uploaded and generated job files go to a temporary folder, not the shared test media."""
    settings.MEDIA_ROOT = tmp_path


ROWS = int(os.environ.get("IMPORT_BENCH_ROWS", "100000"))
TARGET_SECONDS = 30 * max(1, ROWS // 100_000)
ISSUE_TARGET_SECONDS = 10 * ROWS / 100_000  # issue 18: 10 s per 100,000 rows (120 s for 1,000,000)

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


def _csv(rows: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    lines = ["外部编号,姓名,手机号,邮箱,城市,省份,生日,性别,来源,标签"]
    for i in range(rows):
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


def test_import_100k_customers(tenant, manager_user, record_benchmark, monkeypatch, settings):
    data = _csv(ROWS)
    # A measurement beyond the upload limits (IMPORT_BENCH_ROWS): the limits are not what is measured.
    monkeypatch.setattr(parsing, "MAX_UPLOAD_BYTES", max(parsing.MAX_UPLOAD_BYTES, len(data)))
    settings.IMPORT_MAX_ROWS = max(settings.IMPORT_MAX_ROWS, ROWS)
    job = services.import_upload(actor=manager_user, uploaded_file=SimpleUploadedFile("bench.csv", data))
    job = services.import_set_mapping(
        actor=manager_user, job=job, mapping=job.params["mapping"], policy="update"
    )
    # The preview (every row checked, nothing written) runs before the user confirms; not timed here.
    services.import_validate(job_id=job.pk)
    job.refresh_from_db()
    assert job.result["preview"]["errors_total"] == 0, job.result["preview"]["errors"][:5]
    services.import_confirm(actor=manager_user, job=job, skip_invalid=False)

    backend_before, python_before = _backend_cpu_seconds(), time.process_time()
    started = time.perf_counter()
    result = services.import_run(job_id=job.pk)
    seconds = time.perf_counter() - started
    python_cpu = time.process_time() - python_before
    backend_after = _backend_cpu_seconds()
    backend_cpu = None if backend_after is None else round(backend_after - backend_before, 2)

    assert result is not None
    assert result["written"]["customers_created"] == ROWS
    assert Customer.objects.count() == ROWS
    assert AuditEvent.objects.filter(action="customer.imported").count() == ROWS
    print(
        f"\nimport of {ROWS:,} customer rows: {seconds:.1f} s (issue target {ISSUE_TARGET_SECONDS:.0f} s, "
        f"load {os.getloadavg()[0]:.1f}); CPU: Python {python_cpu:.1f} s, PostgreSQL {backend_cpu} s; "
        f"phases: {result['seconds']}"
    )
    record_benchmark(
        "import_100k_customers",
        seconds=round(seconds, 2),
        target_seconds=TARGET_SECONDS,
        issue_target_seconds=ISSUE_TARGET_SECONDS,
        load_average=os.getloadavg()[0],
        python_cpu_seconds=round(python_cpu, 2),
        postgres_cpu_seconds=backend_cpu,
        rows=ROWS,
        phases=result["seconds"],
    )
    assert seconds < TARGET_SECONDS


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


def test_search_text_follow_up_after_a_big_import(tenant, manager_user, record_benchmark):
    """The pinyin of Chinese names, added by a follow-up task after a big import (not part of the
    import's 30 s; measured so its cost is known)."""
    data = _csv(ROWS)
    job = services.import_upload(actor=manager_user, uploaded_file=SimpleUploadedFile("bench.csv", data))
    services.import_set_mapping(actor=manager_user, job=job, mapping=job.params["mapping"], policy="update")
    services.import_validate(job_id=job.pk)
    job.refresh_from_db()
    services.import_confirm(actor=manager_user, job=job, skip_invalid=False)
    result = services.import_run(job_id=job.pk)
    pending = result["search_text_pending"]
    assert pending > ROWS // 2  # most generated names are Chinese
    runs = services.id_runs(list(Customer.objects.values_list("pk", flat=True)))

    started = time.perf_counter()
    written = services.search_text_refresh(runs=runs)
    seconds = time.perf_counter() - started
    assert written == pending
    print(f"\nsearch text follow-up for {pending:,} Chinese names: {seconds:.1f} s")
    record_benchmark("import_100k_search_text_followup", seconds=round(seconds, 2), customers=pending)
