"""A real Celery worker process runs tenant tasks in the schema they were sent from, and only there."""

import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from crm.jobs.models import BackgroundJob
from crm.jobs.tasks import fail_stale_jobs_all_tenants, fail_stale_jobs_task

pytestmark = pytest.mark.celery_worker


def _stale_job(tenant) -> int:
    with schema_context(tenant.schema_name):
        job = BackgroundJob.objects.create(kind="test.stale", status=BackgroundJob.Status.RUNNING)
        BackgroundJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(hours=7))
        return job.pk


def _status(tenant, job_id: int) -> str:
    with schema_context(tenant.schema_name):
        return BackgroundJob.objects.get(pk=job_id).status


def test_worker_runs_a_task_in_the_sending_tenant_only(celery_worker, committed_tenant, django_db_blocker):
    tenant_a, tenant_b = committed_tenant(), committed_tenant()
    with django_db_blocker.unblock():
        job_a, job_b = _stale_job(tenant_a), _stale_job(tenant_b)
        with tenant_context(tenant_a):
            result = fail_stale_jobs_task.delay(max_age_hours=6)
        assert result.get(timeout=30) == 1
        assert _status(tenant_a, job_a) == BackgroundJob.Status.FAILED
        assert _status(tenant_b, job_b) == BackgroundJob.Status.RUNNING
        connection.set_schema_to_public()


def test_task_results_are_kept_under_the_runs_prefix_and_removed_with_its_keys(
    celery_worker, committed_tenant, django_db_blocker
):
    """The worker stores a finished task's result in Redis under this run's prefix, so the suite's
    clean-up removes it: results of test runs do not pile up in a Redis others use."""
    from django.conf import settings

    from tests.conftest import clear_run_cache

    tenant = committed_tenant()
    with django_db_blocker.unblock(), tenant_context(tenant):
        result = fail_stale_jobs_task.delay(max_age_hours=6)
        assert result.get(timeout=30) == 0
    connection.set_schema_to_public()
    redis = cache._cache.get_client(write=True)
    stored = [key.decode() for key in redis.scan_iter(match=f"*celery-task-meta-{result.id}")]
    assert stored == [f"{settings.CACHES['default']['KEY_PREFIX']}:celery:celery-task-meta-{result.id}"]
    clear_run_cache()
    assert list(redis.scan_iter(match=f"*celery-task-meta-{result.id}")) == []


def test_beat_dispatcher_reaches_every_active_tenant(celery_worker, committed_tenant, django_db_blocker):
    tenant_a, tenant_b = committed_tenant(), committed_tenant()
    with django_db_blocker.unblock():
        job_a, job_b = _stale_job(tenant_a), _stale_job(tenant_b)
        connection.set_schema_to_public()
        sent = fail_stale_jobs_all_tenants.delay().get(timeout=30)
        assert sent >= 2
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if {_status(tenant_a, job_a), _status(tenant_b, job_b)} == {BackgroundJob.Status.FAILED}:
                break
            time.sleep(0.3)
        assert _status(tenant_a, job_a) == BackgroundJob.Status.FAILED
        assert _status(tenant_b, job_b) == BackgroundJob.Status.FAILED
        connection.set_schema_to_public()


@pytest.mark.django_db
def test_cache_keys_are_scoped_to_the_tenant(tenant_a, tenant_b):
    with tenant_context(tenant_a):
        cache.set("greeting", "hello from alpha", 30)
        assert cache.get("greeting") == "hello from alpha"
    with tenant_context(tenant_b):
        assert cache.get("greeting") is None
    with tenant_context(tenant_a):
        cache.delete("greeting")


@pytest.mark.django_db
def test_stored_files_are_kept_under_the_tenant_folder(tenant_a, tenant_b):
    with tenant_context(tenant_a):
        name = default_storage.save("exports/report.csv", ContentFile(b"a,b\n"))
        path_a = default_storage.path(name)
    with tenant_context(tenant_b):
        path_b = default_storage.path(name)
        assert not default_storage.exists(name)
    assert f"/{tenant_a.schema_name}/" in path_a and f"/{tenant_b.schema_name}/" in path_b
    with tenant_context(tenant_a):
        default_storage.delete(name)


def test_the_job_file_clean_up_runs_in_every_tenant_through_a_real_worker(
    celery_worker, committed_tenant, django_db_blocker
):
    from crm.jobs.tasks import delete_expired_job_files_all_tenants

    tenant_a, tenant_b = committed_tenant(), committed_tenant()
    with django_db_blocker.unblock():
        jobs = {}
        for tenant in (tenant_a, tenant_b):
            with schema_context(tenant.schema_name):
                job = BackgroundJob.objects.create(
                    kind="customers.export", status=BackgroundJob.Status.SUCCEEDED
                )
                job.output_file.save("old.csv", ContentFile(b"x"), save=False)
                job.finished_at = timezone.now() - timedelta(days=400)
                job.save()
                jobs[tenant.schema_name] = (job.pk, job.output_file.path)
        connection.set_schema_to_public()
        assert delete_expired_job_files_all_tenants.delay().get(timeout=30) >= 2

        def cleared(tenant) -> bool:
            with schema_context(tenant.schema_name):
                return not BackgroundJob.objects.get(pk=jobs[tenant.schema_name][0]).output_file

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (cleared(tenant_a) and cleared(tenant_b)):
            time.sleep(0.3)
        assert cleared(tenant_a) and cleared(tenant_b)
        from pathlib import Path

        assert not any(Path(path).exists() for _pk, path in jobs.values())
        connection.set_schema_to_public()
