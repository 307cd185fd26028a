"""Run the body of a background job: the one place that owns a job's lifecycle.

A Celery task takes the job id and hands its work to `run_job`::

    @shared_task(acks_late=True, max_retries=0)
    def export_task(job_id: int) -> None:
        from .services import export_run  # def export_run(run: JobRun) -> None

        run_job(job_id, export_run, failure_message=gettext_noop("The export failed. Please try again."))

`run_job` then
- starts the job: a job already finished (a redelivered or duplicated message, acks_late) or whose
  params no longer match `start_if` is left alone and the body does not run (returns None);
- runs the body in the job's language (`params["language"]`, else the tenant's default language),
  so a file it writes (an export's headers) is in the language of whoever asked for it; its progress
  and result messages are stored as a key and parameters (`crm.jobs.messages.JobMessage`) and
  translated for whoever reads them;
- gives the body a `JobRun`: `run.job`, `run.params`, `run.progress(percent, message)`,
  `run.save_output(name, content)`, `run.succeed(result=..., message=..., params=...)` and
  `run.fail(message, params=...)`;
- finishes the job: a body that returns without calling `succeed`/`fail` succeeds with an empty
  result; a body that raises `crm.errors.ApplicationError` fails with that (user-readable) message;
  any other exception is logged with its traceback, the job fails with `failure_message` (never the
  exception's text) and the exception is re-raised so Celery records it.

Where a job keeps its state is a `JobRecord`: a `BackgroundJob` row in the tenant's schema
(`BackgroundJobRecord`, used by `run_job`) or, for the platform's tenant provisioning, the `Tenant`
row in the public schema (`crm.tenancy.services.ProvisioningRecord`); `run_record` runs a body for
any record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, Protocol, TypeVar

from django.core.files import File
from django.db import connection
from django.utils import translation

from crm.errors import ApplicationError

from . import services
from .messages import JobMessage, message_and_params
from .models import BackgroundJob

logger = logging.getLogger(__name__)

T = TypeVar("T")


class JobRecord(Protocol):
    """Where one job's state is kept; the runner calls these in order: start, (progress...), then one
    of succeed / fail, then close."""

    label: str  # for the log, e.g. "customers.export job 12"

    def start(self) -> bool: ...  # False: already finished or taken (a redelivered message)

    def language(self) -> str | None: ...  # None: leave the active language alone

    def progress(self, percent: int, message: str) -> None: ...

    def succeed(self, *, result: dict[str, Any], message: str, params: dict[str, Any] | None) -> None: ...

    def fail(self, *, message: str, params: dict[str, Any] | None) -> None: ...

    # The body returned without succeed/fail: succeed, unless something else finished the job meanwhile.
    def succeed_unless_finished(self) -> None: ...

    def close(self) -> None: ...


class JobRun:
    """What a job body gets: the job, progress, output files and an explicit finish."""

    def __init__(self, record: JobRecord):
        self.record = record
        self.finished = False
        self._last_progress: tuple | None = None

    @property
    def job(self) -> BackgroundJob:
        return self.record.job  # type: ignore[attr-defined]

    @property
    def job_id(self) -> int:
        return self.job.pk

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.job.params or {})

    def progress(self, percent: int, message: str = "") -> None:
        """Report progress (0-100) with a short message; repeated identical reports are not written."""
        current = (
            max(0, min(100, int(percent))),
            message if isinstance(message, JobMessage) else str(message),
        )
        if (current[0], current[1], getattr(message, "params", None)) != self._last_progress:
            self._last_progress = (current[0], current[1], getattr(message, "params", None))
            self.record.progress(*current)

    def save_output(self, name: str, content: bytes | File) -> str:
        """Store the file the job produced (bytes or a Django File) as its download; returns its name."""
        return services.job_save_output(job_id=self.job_id, name=name, content=content)

    def succeed(
        self, *, result: dict[str, Any] | None = None, message: str = "", params: dict[str, Any] | None = None
    ) -> None:
        """Finish successfully; `params` are merged into the job's (a multi-step job's next stage).
        May be called inside the body's own transaction, so the finish commits with its writes."""
        self.record.succeed(result=result or {}, message=_keep(message), params=params)
        self.finished = True

    def fail(self, message: str, *, params: dict[str, Any] | None = None) -> None:
        """Finish with a failure the user can read (the message is shown as it is)."""
        self.record.fail(message=_keep(message), params=params)
        self.finished = True


def _keep(message) -> str:
    """The message as given: a JobMessage keeps its parameters, anything else becomes text."""
    return message if isinstance(message, JobMessage) else str(message or "")


class BackgroundJobRecord:
    """A `BackgroundJob` row of the current tenant (see crm.jobs.services for the writes).

    With `separate_progress_connection`, progress is written through a second, autocommit database
    connection: for a body that runs in one long transaction (the import), where progress written on
    the same connection would stay invisible to the user polling it until the end."""

    def __init__(
        self,
        job_id: int,
        *,
        start_if: dict[str, Any] | None = None,
        separate_progress_connection: bool = False,
    ):
        self.job_id = job_id
        self.job: BackgroundJob | None = None
        self.start_if = start_if
        self.label = f"job {job_id}"
        self.side = SideConnection() if separate_progress_connection else None  # opened when used

    def start(self) -> bool:
        self.job = services.job_start(job_id=self.job_id, params_match=self.start_if)
        if self.job is not None:
            self.label = f"{self.job.kind} job {self.job_id}"
        return self.job is not None

    def language(self) -> str | None:
        language = (self.job.params or {}).get("language") if self.job is not None else None
        return language or getattr(getattr(connection, "tenant", None), "default_language", None) or None

    def progress(self, percent: int, message: str) -> None:
        if self.side is not None:
            self.side.progress(self.job_id, min(99, percent), message)
        else:
            services.job_progress(job_id=self.job_id, progress=percent, message=message)

    def succeed(self, *, result: dict[str, Any], message: str, params: dict[str, Any] | None) -> None:
        services.job_succeed(job_id=self.job_id, result=result, message=message, params=params)

    def succeed_unless_finished(self) -> None:
        # e.g. a second delivery that waited on the first one's lock and found the job finished
        services.job_succeed(job_id=self.job_id, only_if_running=True)

    def fail(self, *, message: str, params: dict[str, Any] | None) -> None:
        services.job_fail(job_id=self.job_id, message=message, params=params)

    def close(self) -> None:
        if self.side is not None:
            self.side.close()


class SideConnection:
    """A second, autocommit connection to the current schema for progress writes, opened at the first
    one; if it cannot be opened (or a write fails), progress is simply not shown: it is never a
    reason to fail a job."""

    def __init__(self):
        self.conn = None
        self.opened = False

    def _open(self) -> None:
        self.opened = True
        try:
            import psycopg

            params = {
                key: value
                for key, value in connection.get_connection_params().items()
                if key not in ("cursor_factory", "context", "prepare_threshold")
            }
            self.conn = psycopg.connect(**params, autocommit=True)
            self.conn.execute("SELECT set_config('search_path', %s, false)", [connection.schema_name])
            # Never wait for a lock on the job row (a caller holding it would wait for us in turn).
            self.conn.execute("SET lock_timeout = '1s'")
        except Exception:  # noqa: BLE001
            logger.warning("Job progress connection could not be opened", exc_info=True)
            self.conn = None

    def progress(self, job_id: int, percent: int, message: str) -> None:
        if not self.opened:
            self._open()
        if self.conn is None:
            return
        try:
            from psycopg.types.json import Jsonb

            text, params = message_and_params(message)
            self.conn.execute(
                f"UPDATE {BackgroundJob._meta.db_table} SET progress = %s, message = %s, "  # noqa: S608
                "message_params = %s, updated_at = now() WHERE id = %s",
                [percent, text, Jsonb(params), job_id],
            )
        except Exception:  # noqa: BLE001
            logger.warning("Job progress could not be written", exc_info=True)
            self.close()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


FailureMessage = str | Callable[[BaseException], str]


def run_record(
    record: JobRecord, body: Callable[[JobRun], T], *, failure_message: FailureMessage
) -> T | None:
    """Run `body` for any `JobRecord` (see the module doc); `run_job` is this for a BackgroundJob.

    `failure_message` is shown when the body raises something other than ApplicationError: a text
    (translated in the job's language when it is a gettext_noop msgid) or a function of the
    exception (the platform console shows its operators the error's first line)."""
    try:
        if not record.start():
            logger.info("%s: already finished or taken; nothing to do", record.label)
            return None
        run = JobRun(record)
        language = record.language()
        with translation.override(language) if language else nullcontext():
            try:
                value = body(run)
            except ApplicationError as error:
                logger.info("%s failed: %s", record.label, error)
                run.fail(_keep(error.message))
                return None
            except Exception as error:
                logger.exception("%s failed", record.label)
                if callable(failure_message):
                    message = failure_message(error)
                else:
                    # Stored as the key (the English msgid of a gettext_noop or gettext_lazy text) and
                    # translated for whoever reads it.
                    with translation.override("en"):
                        message = JobMessage(str(failure_message))
                record.fail(message=message, params=None)
                raise
            if not run.finished:
                record.succeed_unless_finished()
            return value
    finally:
        record.close()


def run_job(
    job_id: int,
    body: Callable[[JobRun], T],
    *,
    failure_message: FailureMessage,
    start_if: dict[str, Any] | None = None,
    separate_progress_connection: bool = False,
) -> T | None:
    """Run a task body for the BackgroundJob `job_id` of the current tenant (see the module doc).

    `start_if` (e.g. `{"stage": "validating"}`) starts the job only while its params say so;
    `separate_progress_connection` is for a body that runs in one transaction (see
    BackgroundJobRecord). Returns the body's value, or None when the job was not started or failed
    with an ApplicationError."""
    record = BackgroundJobRecord(
        job_id, start_if=start_if, separate_progress_connection=separate_progress_connection
    )
    return run_record(record, body, failure_message=failure_message)
