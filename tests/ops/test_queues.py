"""One queue per workload (issue 16, item 6): a long import does not delay a due reminder.

Two real worker processes as docker-compose runs them (WORKER_WORKLOADS default,reminders and
imports,recompute), each with one execution slot, on queues of this test's own. A customer import
of 30,000 rows keeps the bulk worker busy; a task on the reminders queue sent meanwhile comes back at
once, while the import is still running. The control case, one worker with one slot on every queue
(the split undone), shows the same task waiting for the import: the test can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django_tenants.utils import tenant_context

from crm.accounts.models import User
from crm.celery import app as celery_app
from crm.celery import queue_name, workload_for
from crm.jobs.models import BackgroundJob
from crm.ops.tasks import ping_task
from customers.imports import services as imports
from tests.conftest import REPO_ROOT, _test_database_url

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]
ROWS = 30_000


@pytest.mark.parametrize(
    ("task_name", "workload"),
    [
        ("customers.imports.tasks.import_validate_task", "imports"),
        ("customers.imports.tasks.import_run_task", "imports"),
        ("customers.imports.tasks.import_kind_check_task", "imports"),
        ("customers.imports.tasks.import_kind_write_task", "imports"),
        ("customers.exports.tasks.export_all_task", "imports"),
        ("customers.dedupe.tasks.duplicate_scan_task", "imports"),
        ("segmentation.tasks.recompute_task", "recompute"),
        ("segmentation.tasks.recompute_all_tenants", "recompute"),
        ("crm.notifications.tasks.notification_emails_task", "reminders"),
        ("crm.notifications.tasks.notification_digest_all_tenants", "reminders"),
        ("dashboards.tasks.weekly_summary_task", "reminders"),
        ("interactions.followups.tasks.followup_reminders_task", "reminders"),
        ("interactions.followups.tasks.apply_followup_rules_task", "reminders"),
        ("interactions.service.tasks.sla_scan_task", "reminders"),
        ("interactions.service.tasks.sla_scan_all_tenants", "reminders"),
        ("interactions.service.tasks.ticket_reply_send_task", "default"),
        ("interactions.surveys.tasks.invitations_send_task", "default"),
        ("interactions.surveys.tasks.invitations_send_all_tenants", "default"),
        ("interactions.surveys.tasks.survey_bulk_send_task", "imports"),
        ("interactions.tasks.export_task", "imports"),
        ("loyalty.tasks.points_earn_task", "imports"),
        ("loyalty.tasks.opening_import_task", "imports"),
        ("loyalty.tasks.points_nightly_all_tenants", "recompute"),
        ("loyalty.tasks.points_earn_all_tenants", "recompute"),
        ("loyalty.tasks.loyalty_check_balances_task", "recompute"),
        ("loyalty.rewards.tasks.vouchers_expire_task", "recompute"),
        ("loyalty.rewards.tasks.vouchers_expire_all_tenants", "recompute"),
        ("crm.tenancy.tasks.provision_tenant_task", "default"),
        ("customers.tasks.purge_bin_all_tenants", "default"),
    ],
)
def test_the_routing_table_sends_each_task_to_its_workload_queue(task_name, workload):
    assert workload_for(task_name) == workload
    route = celery_app.amqp.router.route({}, task_name)
    assert route["queue"].name == queue_name(workload)


def test_an_explicit_queue_still_wins_over_the_table():
    route = celery_app.amqp.router.route({"queue": "elsewhere"}, "customers.imports.tasks.import_run_task")
    assert route["queue"].name == "elsewhere"


@contextmanager
def workers(tmp_path: Path, database_url: str, groups: list[str]):
    """One solo-pool worker per group of workloads, on this test's queues; yields the prefix."""
    run_id = f"split-{uuid.uuid4().hex[:8]}"
    celery_bin = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    processes, logs = [], []
    for index, workloads in enumerate(groups):
        log = tmp_path / f"worker{index}.log"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "crm.settings.test",
            "DATABASE_URL": database_url,
            "CONN_MAX_AGE": "0",
            "CELERY_TASK_DEFAULT_QUEUE": run_id,
            "TASK_QUEUE_PREFIX": f"{run_id}-",
            "WORKER_WORKLOADS": workloads,
            "TEST_CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        }
        with open(log, "w") as log_file:
            processes.append(
                subprocess.Popen(
                    [celery_bin, "-A", "crm", "worker", "--pool=solo", "--without-heartbeat",
                     "--without-gossip", "--without-mingle", "-n", f"{run_id}-{index}@%h", "--loglevel=INFO"],
                    cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        logs.append(log)
    previous = celery_app.conf.task_default_queue, settings.TASK_QUEUE_PREFIX
    celery_app.conf.task_default_queue, settings.TASK_QUEUE_PREFIX = run_id, f"{run_id}-"
    try:
        deadline = time.monotonic() + 300
        while not all("ready." in log.read_text() for log in logs):
            for process, log in zip(processes, logs, strict=True):
                assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, [log.read_text() for log in logs]
            time.sleep(0.3)
        yield run_id
    finally:
        celery_app.conf.task_default_queue, settings.TASK_QUEUE_PREFIX = previous
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _csv(rows: int) -> bytes:
    lines = ["name,email,city"] + [f"Customer {i},c{i}@split.example,Shanghai" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def _reminder_while_importing(tenant) -> tuple[float, bool]:
    """Start a long import, then send a task to the reminders queue; how long it took to come back,
    and whether the import was still running when it did."""
    with tenant_context(tenant):
        manager = User.objects.get(email=f"manager@{tenant.slug}.test")
        job = imports.import_upload(actor=manager, uploaded_file=SimpleUploadedFile("big.csv", _csv(ROWS)))
        imports.import_set_mapping(actor=manager, job=job, mapping=job.params["mapping"], policy="update")
        deadline = time.monotonic() + 60
        while BackgroundJob.objects.get(pk=job.pk).status != BackgroundJob.Status.RUNNING:
            assert time.monotonic() < deadline, "the import never started"
            time.sleep(0.05)
        sent = time.monotonic()
        ping_task.apply_async(args=["reminders"], queue=queue_name("reminders")).get(timeout=120)
        waited = time.monotonic() - sent
        still_running = BackgroundJob.objects.get(pk=job.pk).is_active
        deadline = time.monotonic() + 180
        while BackgroundJob.objects.filter(status__in=BackgroundJob.ACTIVE_STATUSES).exists():
            assert time.monotonic() < deadline, "the import did not finish"
            time.sleep(0.3)
    connection.set_schema_to_public()
    return waited, still_running


def test_a_long_import_does_not_delay_a_due_reminder(committed_tenant, django_db_blocker, tmp_path):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        database_url = _test_database_url()
        with workers(tmp_path, database_url, ["default,reminders", "imports,recompute"]):
            waited, still_running = _reminder_while_importing(tenant)
    assert still_running, "the import ended before the reminder came back: make it longer"
    assert waited < 3, f"the reminder waited {waited:.1f} s behind the import"


def test_control_without_the_split_the_reminder_waits_for_the_import(
    committed_tenant, django_db_blocker, tmp_path
):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        database_url = _test_database_url()
        with workers(tmp_path, database_url, [",".join(settings.TASK_WORKLOADS)]):
            waited, still_running = _reminder_while_importing(tenant)
    assert not still_running  # it came back only once the import was done
