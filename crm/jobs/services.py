"""Create, advance and finish background jobs: the only module that writes `BackgroundJob` rows.

Apps create and queue jobs with `job_create` / `job_get_or_create_active` + `job_enqueue` (and
`job_requeue`, `job_cancel`, `job_wait_for_user` for a job that talks with its user in steps, like the
import); a task body runs through `crm.jobs.runner.run_job`, which calls the lifecycle functions
below (start, progress, succeed, fail, save output). Progress writes commit immediately (their own
autocommit statement), so a user polling the job sees them while the job's own transaction runs."""

import io
import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .messages import message_and_params
from .models import BackgroundJob

logger = logging.getLogger(__name__)


def job_create(
    *, kind: str, created_by=None, params: dict | None = None, input_file=None, input_name: str = ""
) -> BackgroundJob:
    """A new waiting job; `input_file` (an upload) is stored under `input_name` (default its own)."""
    job = BackgroundJob(kind=kind, created_by=created_by, params=params or {})
    job.full_clean(exclude=["input_file", "output_file"])
    job.save()
    if input_file is not None:
        job.input_file.save(input_name or input_file.name, input_file, save=False)
        BackgroundJob.objects.filter(pk=job.pk).update(input_file=job.input_file.name)
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


def job_wait_for_user(*, job: BackgroundJob, params: dict[str, Any] | None = None) -> BackgroundJob:
    """A step done in the request (e.g. an upload stored): the job now waits for its user, not for a
    worker, so it is not active and the stale-job sweeper leaves it alone."""
    fields: dict[str, Any] = {"status": BackgroundJob.Status.SUCCEEDED, "progress": 100}
    if params is not None:
        fields["params"] = params
    BackgroundJob.objects.filter(pk=job.pk).update(
        **fields, finished_at=timezone.now(), updated_at=timezone.now()
    )
    job.refresh_from_db()
    return job


def job_requeue(*, job: BackgroundJob, params: dict[str, Any], clear_result: bool) -> BackgroundJob:
    """Send a job that waited for its user back to the queue for its next step (then `job_enqueue`).
    `clear_result` also forgets the result and output file of the previous step."""
    fields: dict[str, Any] = {}
    if clear_result:
        _delete_output_file(job)
        fields.update(result={}, output_file="")
    BackgroundJob.objects.filter(pk=job.pk).update(
        **fields,
        params=params,
        status=BackgroundJob.Status.PENDING,
        progress=0,
        message="",
        started_at=None,
        finished_at=None,
        updated_at=timezone.now(),
    )
    job.refresh_from_db()
    return job


def job_cancel(*, job: BackgroundJob, params: dict[str, Any] | None = None) -> BackgroundJob:
    fields: dict[str, Any] = {} if params is None else {"params": params}
    BackgroundJob.objects.filter(pk=job.pk).update(
        **fields, status=BackgroundJob.Status.CANCELLED, finished_at=timezone.now(), updated_at=timezone.now()
    )
    job.refresh_from_db()
    return job


# --- the lifecycle of a running job: called by crm.jobs.runner ------------------------------------


def job_start(*, job_id: int, params_match: dict[str, Any] | None = None) -> BackgroundJob | None:
    """Mark a job running; returns None if it already finished (a redelivered message is a no-op) or,
    with `params_match`, if its params no longer say so (e.g. an import that moved to another stage)."""
    match = {f"params__{key}": value for key, value in (params_match or {}).items()}
    updated = BackgroundJob.objects.filter(
        pk=job_id, status__in=BackgroundJob.ACTIVE_STATUSES, **match
    ).update(status=BackgroundJob.Status.RUNNING, started_at=timezone.now(), updated_at=timezone.now())
    return BackgroundJob.objects.get(pk=job_id) if updated else None


def job_progress(*, job_id: int, progress: int, message: str = "") -> None:
    """`message`: text, or a JobMessage stored as its key and parameters (crm/jobs/messages.py)."""
    text, message_params = message_and_params(message)
    BackgroundJob.objects.filter(pk=job_id).update(
        progress=max(0, min(100, int(progress))),
        message=text,
        message_params=message_params,
        updated_at=timezone.now(),
    )


def job_succeed(
    *,
    job_id: int,
    result: dict[str, Any] | None = None,
    message: str = "",
    params: dict[str, Any] | None = None,
    only_if_running: bool = False,
) -> bool:
    """Finish a job. `params` (merged into the job's) records where a multi-step job now stands;
    `only_if_running` leaves alone a job something else has finished meanwhile."""
    return _finish(
        job_id,
        BackgroundJob.Status.SUCCEEDED,
        params=params,
        only_if_running=only_if_running,
        progress=100,
        result=result or {},
        **_message_fields(message),
        updated_at=timezone.now(),
    )


def job_fail(*, job_id: int, message: str, params: dict[str, Any] | None = None) -> bool:
    return _finish(
        job_id,
        BackgroundJob.Status.FAILED,
        params=params,
        only_if_running=False,
        **_message_fields(message),
        updated_at=F("updated_at"),
    )


def _message_fields(message) -> dict[str, Any]:
    text, message_params = message_and_params(message)
    return {"message": text, "message_params": message_params}


def _finish(job_id: int, status: str, *, params, only_if_running: bool, **fields) -> bool:
    jobs = BackgroundJob.objects.filter(pk=job_id)
    if only_if_running:
        jobs = jobs.filter(status=BackgroundJob.Status.RUNNING)
    if params:
        current = jobs.values_list("params", flat=True).first()
        if current is None:
            return False
        fields["params"] = {**current, **params}
    return bool(jobs.update(status=status, finished_at=timezone.now(), **fields))


def job_save_output(*, job_id: int, name: str, content: bytes | File) -> str:
    """Store the file a job produced (an export, an error report) as the job's output, replacing (and
    deleting) an earlier one; returns the stored name. `content` is bytes or a Django File."""
    job = BackgroundJob.objects.get(pk=job_id)
    _delete_output_file(job)
    job.output_file.save(name, ContentFile(content) if isinstance(content, bytes) else content, save=False)
    BackgroundJob.objects.filter(pk=job_id).update(output_file=job.output_file.name)
    return job.output_file.name


def _delete_output_file(job: BackgroundJob) -> None:
    if job.output_file:
        job.output_file.storage.delete(job.output_file.name)  # a missing file is not an error


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


def job_redact(*, values: list[str]) -> int:
    """Personal-data erasure: replace the given strings (a person's name, e-mail, phone...) in every
    job's parameters, result and message (an import keeps sample rows there). Returns how many jobs
    changed. Job files (uploads, exports) are deleted JOB_FILE_RETENTION_DAYS after their job."""
    from crm.audit.services import redact_values

    values = [value for value in dict.fromkeys(values) if value and len(value) >= 3]
    if not values:
        return 0
    mentions = Q()
    for value in values:
        mentions |= Q(params__icontains=value) | Q(result__icontains=value) | Q(message__contains=value)
    changed = 0
    for job in BackgroundJob.objects.filter(mentions).only("pk", "params", "result", "message"):
        BackgroundJob.objects.filter(pk=job.pk).update(
            params=redact_values(job.params, values),
            result=redact_values(job.result, values),
            message=redact_values(job.message, values),
        )
        changed += 1
    return changed


FILE_SCAN_ENCODINGS = ("utf-8", "utf-16-le", "gb18030")  # how an uploaded CSV may spell a value


def _file_mentions(field, needles: list[bytes]) -> bool:
    """Whether a job file holds one of the byte strings: read as it is, and inside each member when
    it is a zip (XLSX keeps its cells in XML members). Job files are bounded by the upload and
    export limits, so reading one whole is fine."""
    import zipfile

    try:
        with field.storage.open(field.name, "rb") as handle:
            content = handle.read()
    except (FileNotFoundError, OSError):
        return False
    lowered = content.lower()
    if any(needle in lowered for needle in needles):
        return True
    if content[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                for member in archive.infolist()[:200]:
                    if member.file_size > 50 * 1024 * 1024:
                        continue
                    if any(needle in archive.read(member).lower() for needle in needles):
                        return True
        except (zipfile.BadZipFile, OSError, RuntimeError):
            return True  # unreadable: it cannot be shown free of the person, so it goes
    return False


def job_files_redact(*, values: list[str]) -> int:
    """Personal-data erasure: delete every job file (uploaded imports, error reports, exports) that
    holds one of `values` (the person's name, e-mail, phone...), whatever its age; the job row stays,
    with `result["files_deleted_at"]` and `"files_erased": true`. Returns how many jobs lost files.
    Deleting happens after the erasure commits (a rollback keeps them)."""
    values = [value for value in dict.fromkeys(values) if value and len(value) >= 3]
    if not values:
        return 0
    needles = list({value.lower().encode(encoding) for value in values for encoding in FILE_SCAN_ENCODINGS})
    at = timezone.now()
    doomed: list[tuple[Any, str]] = []
    changed = 0
    for job in (
        BackgroundJob.objects.exclude(input_file="", output_file="").order_by("pk").iterator(chunk_size=200)
    ):
        fields = [f for f in (job.input_file, job.output_file) if f and _file_mentions(f, needles)]
        if not fields:
            continue
        update: dict[str, Any] = {f.field.name: "" for f in fields}
        update["result"] = {**(job.result or {}), "files_deleted_at": at.isoformat(), "files_erased": True}
        BackgroundJob.objects.filter(pk=job.pk).update(**update)
        doomed += [(f.storage, f.name) for f in fields]
        changed += 1

    def delete() -> None:
        for storage, name in doomed:
            storage.delete(name)

    if doomed:
        transaction.on_commit(delete)
    return changed
