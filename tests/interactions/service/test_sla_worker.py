"""The SLA scan through real Celery workers: a worker SIGKILLed in the middle of a scan leaves nothing
behind, and the next scan (another worker) raises every warning and escalation exactly once."""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from interactions.service import services
from interactions.service.models import ServiceSettings, SlaEvent, SlaPolicy, Ticket
from interactions.service.tasks import sla_scan_task
from tests.conftest import REPO_ROOT, _test_database_url
from tests.worker_kill import raw_connection, waiting_on_lock

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]

ALL_DAY = {str(day): [["00:00", "24:00"]] for day in range(7)}


def _start_worker(queue: str, log: Path) -> subprocess.Popen:
    from django.conf import settings

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm.settings.test",
        "DATABASE_URL": _test_database_url(),
        "CONN_MAX_AGE": "0",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "TEST_CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
    }
    celery_bin = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    process = subprocess.Popen(
        [
            celery_bin,
            "-A",
            "crm",
            "worker",
            "--pool=solo",
            "-Q",
            queue,
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"{uuid.uuid4().hex[:6]}@%h",
            "--loglevel=INFO",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{log.read_text()}")
        if "ready." in log.read_text():
            return process
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"worker did not start:\n{log.read_text()}")


def test_a_worker_killed_mid_scan_leaves_nothing_and_the_next_scan_raises_each_event_once(
    committed_tenant, django_db_blocker, tmp_path
):
    tenant = committed_tenant()
    queue = f"test-sla-{uuid.uuid4().hex[:8]}"
    workers = []
    with django_db_blocker.unblock():
        with tenant_context(tenant):
            ServiceSettings.objects.update_or_create(
                pk=1, defaults={"working_hours": ALL_DAY, "holiday_country": ""}
            )
            SlaPolicy.objects.create(priority="normal", first_response_minutes=60, resolution_minutes=600)
            from crm.accounts.models import User

            manager = User.objects.get(email=f"manager@{tenant.slug}.test")
            tickets = [
                services.ticket_open(actor=manager, subject=f"t{i}", email=f"k{i}@example.com")
                for i in range(20)
            ]
            now = timezone.now()
            # ten past 80% of the first response, ten past its due time
            Ticket.objects.filter(pk__in=[t.pk for t in tickets[:10]]).update(
                first_response_warn_at=now - timedelta(minutes=5),
                first_response_due_at=now + timedelta(hours=1),
            )
            Ticket.objects.filter(pk__in=[t.pk for t in tickets[10:]]).update(
                first_response_warn_at=now - timedelta(hours=2),
                first_response_due_at=now - timedelta(hours=1),
            )
            last = tickets[9]
        blocker = raw_connection()
        try:
            # Another transaction holds the claim of one warning: the scan's INSERT waits on it, mid-scan.
            with blocker.cursor() as cursor:
                cursor.execute(f'SET search_path TO "{tenant.schema_name}", public')
                cursor.execute(
                    "INSERT INTO service_slaevent (ticket_id, target, level, cycle, due_at, created_at) "
                    "VALUES (%s, 'first_response', 'warning', 1, now(), now())",
                    [last.pk],
                )
            workers.append(_start_worker(queue, tmp_path / "worker-1.log"))
            with tenant_context(tenant):
                sla_scan_task.apply_async(queue=queue)
            deadline = time.monotonic() + 120  # a loaded machine takes its time
            while not waiting_on_lock("%service_slaevent%"):
                assert time.monotonic() < deadline, (tmp_path / "worker-1.log").read_text()
                time.sleep(0.2)
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(timeout=10)
        finally:
            blocker.rollback()
            blocker.close()
        with schema_context(tenant.schema_name):
            time.sleep(1)  # the killed worker's backend finds its client gone and rolls back
            assert SlaEvent.objects.count() == 0, "a killed scan must leave no rows behind"

        # The next scan (beat sends one every minute) runs on a fresh worker, twice.
        workers.append(_start_worker(queue, tmp_path / "worker-2.log"))
        with tenant_context(tenant):
            first = sla_scan_task.apply_async(queue=queue).get(timeout=60)
            again = sla_scan_task.apply_async(queue=queue).get(timeout=60)
        assert (first, again) == (20, 0)
        with schema_context(tenant.schema_name):
            rows = list(SlaEvent.objects.values_list("ticket_id", "target", "level"))
        assert len(rows) == len(set(rows)) == 20
        assert {level for _t, _target, level in rows} == {"warning", "breach"}
        connection.set_schema_to_public()
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=60)
