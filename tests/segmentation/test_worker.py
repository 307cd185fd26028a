"""The recompute through a real Celery worker process: it runs in the tenant that asked, only there."""

import time

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from crm.jobs.models import BackgroundJob
from segmentation.models import CustomerScore, RecomputeRun
from segmentation.services import RECOMPUTE_JOB_KIND, recompute_request
from tests.factories import CustomerFactory

from .conftest import customer_with_orders

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]


def _wait_for_job(tenant, job_id: int, log, timeout: float = 60) -> BackgroundJob:
    deadline = time.monotonic() + timeout
    seen_progress = set()
    while time.monotonic() < deadline:
        with schema_context(tenant.schema_name):
            job = BackgroundJob.objects.get(pk=job_id)
        seen_progress.add(job.progress)
        if not job.is_active:
            job.seen_progress = seen_progress
            return job
        time.sleep(0.2)
    raise AssertionError(f"recompute job did not finish in {timeout} s:\n{log.read_text()[-3000:]}")


def test_a_recompute_runs_in_the_requesting_tenant_only(celery_worker, committed_tenant, django_db_blocker):
    with_orders, without_orders = committed_tenant(), committed_tenant()
    with django_db_blocker.unblock():
        with schema_context(with_orders.schema_name):
            buyers = [customer_with_orders([30, 10]), customer_with_orders([5])]
            CustomerFactory()
            job = recompute_request(trigger="manual")  # autocommit: the task is sent at once
            again = recompute_request(trigger="import")
            assert again.pk == job.pk or again.status != BackgroundJob.Status.PENDING
        with schema_context(without_orders.schema_name):
            CustomerFactory.create_batch(2)

        finished = _wait_for_job(with_orders, job.pk, celery_worker["log"])
        assert finished.status == BackgroundJob.Status.SUCCEEDED, finished.message
        assert finished.progress == 100 and finished.result["customers"] == 3
        with schema_context(with_orders.schema_name):
            assert CustomerScore.objects.count() == 3
            assert set(
                CustomerScore.objects.filter(frequency__gt=0).values_list("customer_id", flat=True)
            ) == {b.pk for b in buyers}
            run = RecomputeRun.objects.get(job_id=job.pk)
            assert run.status == RecomputeRun.Status.SUCCEEDED and run.orders_count == 3
        with schema_context(without_orders.schema_name):
            assert CustomerScore.objects.count() == 0
            assert not RecomputeRun.objects.exists()
            assert not BackgroundJob.objects.filter(kind=RECOMPUTE_JOB_KIND).exists()
        connection.set_schema_to_public()
