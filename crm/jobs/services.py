"""Create, advance and finish background jobs. Progress writes commit immediately (their own
autocommit statement), so a user polling the job sees them while the job's own transaction runs."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import BackgroundJob

logger = logging.getLogger(__name__)


def job_create(*, kind: str, created_by=None, params: dict | None = None, input_file=None) -> BackgroundJob:
    job = BackgroundJob(kind=kind, created_by=created_by, params=params or {})
    if input_file is not None:
        job.input_file = input_file
    job.full_clean(exclude=["input_file", "output_file"])
    job.save()
    return job


def job_get_or_create_active(
    *, kind: str, created_by=None, params: dict | None = None, same_params: tuple[str, ...] = ()
) -> tuple[BackgroundJob, bool]:
    """Join a job of this kind that is already waiting or running instead of starting a second one.

    `same_params` names the params a job must share to be joined (e.g. `("scope",)`: one running job
    per scope rather than per kind)."""
    match = {f"params__{name}": (params or {}).get(name) for name in same_params}
    with transaction.atomic():
        # One job of a kind at a time: lock the existing active row (if any) while deciding.
        existing = (
            BackgroundJob.objects.select_for_update()
            .filter(kind=kind, status__in=BackgroundJob.ACTIVE_STATUSES, **match)
            .order_by("created_at")
            .first()
        )
        if existing is not None:
            return existing, False
        return job_create(kind=kind, created_by=created_by, params=params), True


def job_enqueue(*, job: BackgroundJob, task, **task_kwargs) -> None:
    """Send the Celery task once the job row is committed; the task receives the job id."""

    def send():
        result = task.apply_async(kwargs={"job_id": job.pk, **task_kwargs})
        BackgroundJob.objects.filter(pk=job.pk).update(celery_task_id=result.id or "")

    transaction.on_commit(send)


def job_start(*, job_id: int) -> BackgroundJob | None:
    """Mark a job running; returns None if it already finished (a redelivered message is a no-op)."""
    updated = BackgroundJob.objects.filter(pk=job_id, status__in=BackgroundJob.ACTIVE_STATUSES).update(
        status=BackgroundJob.Status.RUNNING, started_at=timezone.now(), updated_at=timezone.now()
    )
    return BackgroundJob.objects.get(pk=job_id) if updated else None


def job_progress(*, job_id: int, progress: int, message: str = "") -> None:
    BackgroundJob.objects.filter(pk=job_id).update(
        progress=max(0, min(100, int(progress))), message=message[:500], updated_at=timezone.now()
    )


def job_progress_callback(job_id: int) -> Callable[[int, str], None]:
    return lambda progress, message="": job_progress(job_id=job_id, progress=progress, message=message)


def job_succeed(*, job_id: int, result: dict[str, Any] | None = None, message: str = "") -> None:
    BackgroundJob.objects.filter(pk=job_id).update(
        status=BackgroundJob.Status.SUCCEEDED,
        progress=100,
        result=result or {},
        message=message[:500],
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )


def job_fail(*, job_id: int, message: str) -> None:
    BackgroundJob.objects.filter(pk=job_id).update(
        status=BackgroundJob.Status.FAILED,
        message=message[:500],
        finished_at=timezone.now(),
        updated_at=F("updated_at"),
    )


def job_files_delete_expired(*, now: datetime | None = None, retention_days: int | None = None) -> int:
    """Delete the files of jobs that ended more than `retention_days` (default
    `settings.JOB_FILE_RETENTION_DAYS`) ago: uploaded import files, error reports and exports hold
    customers' personal data and must not pile up forever. The job row stays, as history, with
    `result["files_deleted_at"]` so the pages can say why there is nothing to download.

    Runs in the current tenant's schema (its files live under its own folder). Idempotent: a file
    already gone is skipped, and a crash between deleting files and clearing the row is finished by
    the next run. Returns the number of jobs whose files were deleted."""
    days = settings.JOB_FILE_RETENTION_DAYS if retention_days is None else int(retention_days)
    at = now or timezone.now()
    cutoff = at - timedelta(days=days)
    expired = (
        BackgroundJob.objects.exclude(status__in=BackgroundJob.ACTIVE_STATUSES)
        .filter(Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, updated_at__lt=cutoff))
        .exclude(input_file="", output_file="")
        .order_by("pk")
    )
    deleted = 0
    for job in expired.iterator(chunk_size=200):
        for field in (job.input_file, job.output_file):
            if field:
                field.storage.delete(field.name)  # a missing file is not an error
        BackgroundJob.objects.filter(pk=job.pk).update(
            input_file="",
            output_file="",
            result={**(job.result or {}), "files_deleted_at": at.isoformat(), "files_retention_days": days},
        )
        deleted += 1
    if deleted:
        logger.info("deleted the files of %s job(s) older than %s days", deleted, days)
    return deleted
