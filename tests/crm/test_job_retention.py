"""Job files (import uploads and error reports, exports) are deleted after the retention period,
in the tenant's own folder only, and the pages say so instead of failing."""

from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.jobs.models import BackgroundJob
from crm.jobs.services import job_files_delete_expired


def job_with_files(
    *, ended_days_ago: float, status=BackgroundJob.Status.SUCCEEDED, **fields
) -> BackgroundJob:
    job = BackgroundJob.objects.create(kind="customers.export", status=status, **fields)
    job.input_file.save("upload.csv", ContentFile(b"name\nAda\n"), save=False)
    job.output_file.save("export.csv", ContentFile(b"name\nAda\n"), save=False)
    job.finished_at = timezone.now() - timedelta(days=ended_days_ago)
    job.save()
    return job


def test_files_past_the_retention_period_are_deleted_and_the_job_remembers_why(tenant, tenant_b):
    old = job_with_files(ended_days_ago=settings.JOB_FILE_RETENTION_DAYS + 1)
    recent = job_with_files(ended_days_ago=settings.JOB_FILE_RETENTION_DAYS - 1)
    running = job_with_files(ended_days_ago=90, status=BackgroundJob.Status.RUNNING)
    paths = {job.pk: (job.input_file.path, job.output_file.path) for job in (old, recent, running)}
    assert f"/{tenant.schema_name}/" in paths[old.pk][0]  # files live in the tenant's own folder
    with schema_context(tenant_b.schema_name):
        foreign = job_with_files(ended_days_ago=90)
        foreign_paths = (foreign.input_file.path, foreign.output_file.path)

    assert job_files_delete_expired() == 1
    assert job_files_delete_expired() == 0  # idempotent

    old.refresh_from_db()
    assert not old.input_file and not old.output_file
    assert (
        old.result["files_deleted_at"]
        and old.result["files_retention_days"] == settings.JOB_FILE_RETENTION_DAYS
    )
    assert not any(map(_exists, paths[old.pk]))
    assert all(map(_exists, paths[recent.pk])) and all(map(_exists, paths[running.pk]))
    assert all(map(_exists, foreign_paths))  # the other tenant's files are its own business
    with schema_context(tenant_b.schema_name):
        assert job_files_delete_expired() == 1
    assert not any(map(_exists, foreign_paths))


def test_a_file_already_gone_does_not_stop_the_clean_up(tenant):
    job = job_with_files(ended_days_ago=60)
    job.output_file.storage.delete(job.output_file.name)
    assert job_files_delete_expired() == 1
    job.refresh_from_db()
    assert not job.input_file and not job.output_file


def test_downloading_a_deleted_file_explains_instead_of_failing(tenant, manager_client, manager_user):
    job = job_with_files(ended_days_ago=60, created_by=manager_user)
    job_files_delete_expired(retention_days=7)
    response = manager_client.get(reverse("jobs:download", args=[job.pk]))
    assert response.status_code == 410
    assert "kept for 7 days" in response.content.decode()
    bar = manager_client.get(reverse("jobs:status", args=[job.pk])).content.decode()
    assert 'data-testid="job-files-deleted"' in bar and "Download" not in bar


def test_every_beat_entry_names_a_registered_task_and_the_clean_up_runs_once_a_day():
    from datetime import UTC, datetime, timedelta

    from crm.celery import app

    app.loader.import_default_modules()
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, f"beat entry {name} names no registered task: {entry['task']}"
    schedule = settings.CELERY_BEAT_SCHEDULE["delete-expired-job-files"]["schedule"]
    # Walk two days minute by minute from a run: it is due again exactly once a day.
    start = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    schedule.nowfun = lambda: now
    last, runs = start, []
    for minute in range(1, 2 * 24 * 60 + 1):
        now = start + timedelta(minutes=minute)
        if schedule.is_due(last).is_due:
            runs.append(now)
            last = now
    assert len(runs) == 2 and runs[1] - runs[0] == timedelta(days=1)


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).exists()
