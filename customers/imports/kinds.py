"""Import kinds: how another app imports its own rows from CSV / XLSX with this package's machinery.

The customer import (services.py) is one big special case; an *import kind* is the small, generic
path every other import takes. An app describes what is particular to its rows in an `ImportKind`
(the fields a column can fill, how a mapping is checked, how rows are checked and how they are
written) and registers it from its AppConfig.ready(); this module owns everything else, the same for
every kind:

- reading the file (`parsing`: size, row, column and cell limits, encodings, XLSX bombs, formula
  unescaping) and guessing the mapping from the headers (in every language of the site);
- one BackgroundJob per file (kind = `ImportKind.key`) whose `params["stage"]` says where it stands,
  so its page survives a reload:
  "mapping" -> (user maps columns) -> "checking" (task: every row checked, nothing written)
  -> "preview" (counts, every problem with row and column, the first rows as they will be written)
  -> (user confirms; only when no row has a problem) -> "importing" (task: rows checked again and
  written in one transaction with the job's finish) -> "done"; "failed" for an unreadable file;
- the tasks (`tasks.import_kind_check_task` / `import_kind_write_task`, queue "imports"), progress,
  the role check in every step, and idempotence: the write takes a transaction-scoped advisory lock
  per kind and tenant and does nothing unless the job still waits to be imported, so a redelivered
  message never writes twice; a crash rolls everything back.

Nothing is half-written: a file with any problem is refused as a whole at the preview (fix the file
and upload it again). Example (interactions/imports.py): ``register_import_kind(ImportKind(key=
"interactions.import", targets=TARGETS, check_mapping=..., check_rows=..., write=...))``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from crm.accounts.models import User
from crm.accounts.permissions import MANAGERS, user_has_role
from crm.audit.services import audit_record
from crm.jobs.messages import JobMessage
from crm.jobs.models import BackgroundJob
from crm.jobs.runner import JobRun, run_job
from crm.jobs.services import job_create, job_enqueue, job_requeue, job_wait_for_user
from customers.signals import records_imported

from . import parsing
from .columns import normalise_header
from .values import unescape_formula

STAGE_MAPPING = "mapping"
STAGE_CHECKING = "checking"
STAGE_PREVIEW = "preview"
STAGE_IMPORTING = "importing"
STAGE_DONE = "done"
STAGE_FAILED = "failed"
SAMPLE_ROWS = 5
PREVIEW_ROWS = 10
ERRORS_KEPT = 500
PROGRESS_EVERY = 2_000


@dataclass(frozen=True)
class Target:
    """A field a column can fill: `key` (what check_rows receives), its label, and header names that
    map to it by themselves (the key and the label in every language always do)."""

    key: str
    label: str | Promise
    synonyms: tuple[str, ...] = ()


@dataclass
class RowProblem:
    row: int  # the row's number in the file (the header is row 1)
    column: str  # the file's header of the column, or "" for the whole row
    message: str


@dataclass
class CheckedRows:
    """What `check_rows` returns: the clean rows (whatever `write` takes, in file order), every
    problem, and for the preview the first rows as they will be written ({target key: shown value})."""

    rows: list[Any]
    problems: list[RowProblem] = field(default_factory=list)
    preview: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ImportKind:
    key: str  # the BackgroundJob kind, e.g. "interactions.import"
    noun: str | Promise  # what is imported, plural, for messages ("interactions")
    targets: tuple[Target, ...]
    # (mapping: per column a target key or "") -> messages; empty when the mapping can be used
    check_mapping: Callable[[list[str]], list[str]]
    # (rows: [(row number, {target key: cell})], labels: {target key: header}) -> CheckedRows;
    # loads what rows are matched against in bulk, never per row; writes nothing
    check_rows: Callable[[list[tuple[int, dict[str, str]]], dict[str, str]], CheckedRows]
    # (actor, clean rows, job) -> rows written; runs inside the import's transaction
    write: Callable[[User, list[Any], BackgroundJob], int]
    # the tasks of the kind live in this package; the app's views link to its own pages
    roles: tuple[str, ...] = tuple(MANAGERS)
    refused: str | Promise = _("Only managers and admins can import.")
    # audit actions (default "<key>.uploaded" / "<key>.written")
    audit_uploaded: str = ""
    audit_imported: str = ""

    def target_keys(self) -> set[str]:
        return {target.key for target in self.targets}

    def label_of(self, key: str) -> str:
        return next((str(t.label) for t in self.targets if t.key == key), key)


_KINDS: dict[str, ImportKind] = {}


def register_import_kind(kind: ImportKind) -> None:
    _KINDS[kind.key] = kind


def import_kind(key: str) -> ImportKind:
    return _KINDS[key]


def every_language(label) -> set[str]:
    names = {str(label)}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            names.add(str(label))
    return names


def guess_mapping(kind: ImportKind, headers: Sequence[str]) -> list[str]:
    """Per column the target its header names (its key, a synonym or its label in any language), each
    target at most once; "" for a column not recognised."""
    lookup: dict[str, str] = {}
    for target in kind.targets:
        for name in (target.key, *target.synonyms, *every_language(target.label)):
            lookup.setdefault(normalise_header(name), target.key)
    used: set[str] = set()
    mapping = []
    for header in headers:
        key = lookup.get(normalise_header(header), "")
        mapping.append(key if key and key not in used else "")
        used.add(key)
    return mapping


def _require(kind: ImportKind, actor) -> None:
    if actor is None or not user_has_role(actor, kind.roles):
        raise PermissionDenied(str(kind.refused))


# --- steps in the request ------------------------------------------------------------------------------


def kind_upload(*, kind: ImportKind, actor: User, uploaded_file) -> BackgroundJob:
    """Store the file as a new job (stage "mapping") with a guessed mapping; a file that cannot be
    read is refused here with its message, before anything is stored."""
    _require(kind, actor)
    size = getattr(uploaded_file, "size", None)
    if size is not None and size > parsing.MAX_UPLOAD_BYTES:
        raise ValidationError(
            _("The file is larger than %(size)d MB. Split it into smaller files."),
            params={"size": parsing.MAX_UPLOAD_BYTES // (1024 * 1024)},
        )
    try:
        parsed = parsing.parse_upload(uploaded_file, uploaded_file.name, preview_rows=SAMPLE_ROWS)
    except parsing.ImportFileError as error:
        raise ValidationError(error.message)
    uploaded_file.seek(0)
    filename = (uploaded_file.name or "upload").rsplit("/", 1)[-1][:150]
    job = job_create(
        kind=kind.key,
        created_by=actor,
        input_file=uploaded_file,
        input_name=filename,
        params={
            "stage": STAGE_MAPPING,
            "filename": filename,
            "row_count": parsed.row_count,
            "headers": parsed.headers,
            "sample": [cells for _n, cells in parsed.rows[:SAMPLE_ROWS]],
            "mapping": guess_mapping(kind, parsed.headers),
            "language": translation.get_language(),
        },
    )
    job = job_wait_for_user(job=job)
    audit_record(
        actor=actor,
        action=kind.audit_uploaded or f"{kind.key}.uploaded",
        target=job,
        changes={"file": filename},
        label=filename,
    )
    return job


def kind_set_mapping(
    *, kind: ImportKind, actor: User, job: BackgroundJob, mapping: list[str]
) -> BackgroundJob:
    """Save the mapping and check every row in the background (stage "checking"; writes nothing).
    Also from the preview: map again and check again."""
    from .tasks import import_kind_check_task

    _require(kind, actor)
    params = dict(job.params)
    if job.is_active or params.get("stage") not in (STAGE_MAPPING, STAGE_PREVIEW):
        raise ValidationError(_("This import has already been started."))
    headers = params.get("headers", [])
    if len(mapping) != len(headers) or any(key and key not in kind.target_keys() for key in mapping):
        raise ValidationError(_("Choose a field (or “do not import”) for every column."))
    chosen = [key for key in mapping if key]
    errors = []
    if len(chosen) != len(set(chosen)):
        errors.append(_t("Each field can be chosen for one column only."))
    errors.extend(str(message) for message in kind.check_mapping(mapping))
    if errors:
        raise ValidationError(errors)
    params.update({"stage": STAGE_CHECKING, "mapping": mapping, "language": translation.get_language()})
    job = job_requeue(job=job, params=params, clear_result=True)
    job_enqueue(job=job, task=import_kind_check_task)
    return job


def kind_confirm(*, kind: ImportKind, actor: User, job: BackgroundJob) -> BackgroundJob:
    """The user read a clean preview: import (stage "importing", in the background)."""
    from .tasks import import_kind_write_task

    _require(kind, actor)
    params = dict(job.params)
    preview = (job.result or {}).get("preview", {})
    if job.is_active or params.get("stage") != STAGE_PREVIEW:
        raise ValidationError(_("This import has already been started."))
    if preview.get("error_count") or not preview.get("valid_rows"):
        raise ValidationError(_("Nothing can be imported from this file: fix it and upload it again."))
    params["stage"] = STAGE_IMPORTING
    job = job_requeue(job=job, params=params, clear_result=False)
    job_enqueue(job=job, task=import_kind_write_task)
    return job


# --- the task bodies -------------------------------------------------------------------------------------


def _mapped_rows(run: JobRun) -> tuple[list[tuple[int, dict[str, str]]], dict[str, str], parsing.ParsedFile]:
    params = run.params
    with run.job.input_file.open("rb") as handle:
        parsed = parsing.parse_upload(handle, params.get("filename", "upload"))
    mapping = params["mapping"]
    labels = {key: header for key, header in zip(mapping, parsed.headers, strict=False) if key}
    rows = [
        (number, {key: unescape_formula(cell) for key, cell in zip(mapping, cells, strict=False) if key})
        for number, cells in parsed.rows
    ]
    return rows, labels, parsed


def _check(kind: ImportKind, run: JobRun) -> tuple[CheckedRows, int]:
    run.progress(5, JobMessage(gettext_noop("Checking rows")))
    rows, labels, parsed = _mapped_rows(run)
    checked = kind.check_rows(rows, labels)
    for number in sorted(parsed.width_errors):
        checked.problems.append(
            RowProblem(number, "", _t("This row has a different number of columns than the header."))
        )
    checked.problems.sort(key=lambda p: p.row)
    return checked, len(rows)


def _preview(kind: ImportKind, checked: CheckedRows, total: int) -> dict[str, Any]:
    return {
        "rows": total,
        "valid_rows": len(checked.rows),
        "error_count": len(checked.problems),
        "errors": [p.__dict__ for p in checked.problems[:ERRORS_KEPT]],
        "columns": [[key, kind.label_of(key)] for key in (checked.preview[0] if checked.preview else {})],
        "sample": [list(row.values()) for row in checked.preview[:PREVIEW_ROWS]],
    }


def _msgid(text) -> str:
    """The English source of a gettext_lazy text (its catalogue key)."""
    from django.utils import translation

    with translation.override("en"):
        return str(text)


def _preview_message(kind: ImportKind, preview: dict[str, Any]) -> str:
    if preview["error_count"]:
        return JobMessage(
            gettext_noop(
                "%(count)d problems found; nothing can be imported. Fix the file and upload it again."
            ),
            count=preview["error_count"],
        )
    return JobMessage(gettext_noop("%(count)d rows ready to import."), count=preview["valid_rows"])


def kind_check(*, job_id: int) -> None:
    """Task body: check every row and store the preview (writes none of the kind's rows)."""
    run_job(
        job_id,
        _check_body,
        failure_message=_("The file could not be checked. Nothing was written. Please try again."),
        start_if={"stage": STAGE_CHECKING},
    )


def _check_body(run: JobRun) -> None:
    kind = import_kind(run.job.kind)
    params = dict(run.params)
    if run.job.created_by is None or not user_has_role(run.job.created_by, kind.roles):
        run.fail(
            JobMessage(gettext_noop("The user who started this import may no longer import.")),
            params={"stage": STAGE_FAILED},
        )
        return
    checked, total = _check(kind, run)
    preview = _preview(kind, checked, total)
    params["stage"] = STAGE_PREVIEW
    run.succeed(result={"preview": preview}, message=_preview_message(kind, preview), params=params)


def kind_write(*, job_id: int) -> None:
    """Task body: check the rows again (the data may have changed since the preview) and write them all
    in one transaction with the job's finish, or none (back to the preview with the problems)."""
    run_job(
        job_id,
        _write_body,
        failure_message=_("The import failed. Nothing was written. Please try again."),
        start_if={"stage": STAGE_IMPORTING},
    )


def _write_body(run: JobRun) -> None:
    job = run.job
    kind = import_kind(job.kind)
    params = dict(run.params)
    actor = job.created_by
    if actor is None or not user_has_role(actor, kind.roles):
        run.fail(
            JobMessage(gettext_noop("The user who started this import may no longer import.")),
            params={"stage": STAGE_FAILED},
        )
        return
    with transaction.atomic():
        with connection.cursor() as cursor:  # one import of this kind writes at a time per tenant
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{kind.key}:{connection.schema_name}"]
            )
        if BackgroundJob.objects.get(pk=job.pk).params.get("stage") != STAGE_IMPORTING:
            return  # a redelivered message: already imported
        checked, total = _check(kind, run)
        if checked.problems:
            preview = _preview(kind, checked, total)
            params["stage"] = STAGE_PREVIEW
            run.succeed(result={"preview": preview}, message=_preview_message(kind, preview), params=params)
            return
        run.progress(70, JobMessage(gettext_noop("Writing")))
        written = kind.write(actor, checked.rows, job)
        transaction.on_commit(
            lambda: records_imported.send_robust(sender=ImportKind, kind=kind.key, rows=written)
        )
        audit_record(
            actor=actor,
            action=kind.audit_imported or f"{kind.key}.written",
            target=job,
            changes={"file": params.get("filename"), "rows": written},
            label=params.get("filename", ""),
        )
        params["stage"] = STAGE_DONE
        result = dict(job.result or {})
        result.update(imported=written)
        run.succeed(
            result=result,
            message=JobMessage(
                gettext_noop("%(count)d %(noun)s imported."), count=written, noun__msgid=_msgid(kind.noun)
            ),
            params=params,
        )
