"""The import job: upload -> column mapping -> preview (every row validated) -> import.

One BackgroundJob (kind "customers.import") carries the whole conversation; `params["stage"]` says
where it stands, so the page at /customers/import/<job id>/ survives a reload:

- "mapping": the file is stored and readable; the user maps columns (guessed from the headers);
- "validating": a task reads and checks every row and plans the writes (nothing is written);
- "preview": counts, every problem (row, column, message) and an error CSV; the user fixes the file
  and uploads it again, or imports (only the valid rows, if there are problems);
- "importing": a task checks everything again and writes it in one transaction;
- "done" / "failed" / "cancelled".

The import task is idempotent: it takes a transaction-scoped advisory lock on the job and does
nothing unless the job is still waiting to be imported, and it marks the job finished in the same
transaction that writes the rows. A crash rolls back everything; a redelivered message either finds
the job finished (no-op) or imports from scratch. Imports of one tenant write one after another.
"""

import csv
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from crm.accounts.models import User
from crm.accounts.permissions import MANAGERS, user_has_role
from crm.audit.services import audit_record
from crm.jobs.messages import JobMessage
from crm.jobs.models import BackgroundJob
from crm.jobs.runner import JobRun, run_job
from crm.jobs.services import job_cancel, job_create, job_enqueue, job_requeue, job_wait_for_user
from crm.memory import cyclic_gc_paused
from customers.models import Customer, CustomFieldDefinition, Order, OrderLine
from customers.phone import region_for_tenant
from customers.search import build_search_text
from customers.search_index import SEARCH_COLUMNS, search_columns
from customers.services import customer_refresh_order_stats
from customers.signals import REASON_IMPORT, customers_changed_on_commit

from . import columns, parsing
from .planning import (
    POLICIES,
    POLICY_UPDATE,
    SEARCH_TEXT_NONE,
    ImportOptions,
    ImportPlan,
    Planner,
)
from .validation import CustomFieldSpec, ImportContext, RowError, validate_mapping, validate_rows
from .values import unescape_formula
from .writing import NewCustomerWriter, audit_plan, write_plan

logger = logging.getLogger(__name__)

JOB_KIND = "customers.import"
STAGE_MAPPING = "mapping"
STAGE_VALIDATING = "validating"
STAGE_PREVIEW = "preview"
STAGE_IMPORTING = "importing"
STAGE_DONE = "done"
STAGE_FAILED = "failed"
STAGE_CANCELLED = "cancelled"
PREVIEW_ERRORS_SHOWN = 500
# At most this many customer ids travel with the customers_changed signal after an import (about
# 1.5 MB of task message); a bigger import says "everyone" (None).
SIGNAL_IDS_LIMIT = 200_000
SAMPLE_ROWS = 5


# --- context ----------------------------------------------------------------------------------------


def import_context() -> tuple[ImportContext, dict[int, str]]:
    """The tenant-specific facts validation needs, and user id -> name for audit diffs."""
    tenant = getattr(connection, "tenant", None)
    definitions = list(CustomFieldDefinition.objects.filter(is_active=True).order_by("position", "label"))
    owners: dict[str, int] = {}
    labels: dict[int, str] = {}
    names: dict[str, list[int]] = {}
    for user in User.objects.filter(is_active=True).only("id", "email", "full_name"):
        owners[user.email.lower()] = user.pk
        labels[user.pk] = user.get_full_name()
        if user.full_name:
            names.setdefault(user.full_name.strip().lower(), []).append(user.pk)
    for name, ids in names.items():
        if len(ids) == 1:
            owners.setdefault(name, ids[0])
    try:
        zone = ZoneInfo(getattr(tenant, "time_zone", "") or "UTC")
    except (ValueError, KeyError):
        zone = ZoneInfo("UTC")
    context = ImportContext(
        custom_fields=[CustomFieldSpec.from_definition(d) for d in definitions],
        owners=owners,
        region=region_for_tenant(tenant),
        zone=zone,
        currency=getattr(tenant, "currency", "") or "CNY",
    )
    return context, labels


def _require_manager(actor) -> None:
    if not user_has_role(actor, MANAGERS):
        raise PermissionDenied(_t("Only managers and admins can import customers."))


# --- the whole import as one function (the task and the benchmark use it) ---------------------------


@dataclass
class ImportOutcome:
    parsed: parsing.ParsedFile
    plan: ImportPlan
    errors: list[RowError]
    written: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def invalid_row_count(self) -> int:
        return len(self.plan.invalid_rows)

    @property
    def valid_row_count(self) -> int:
        return self.parsed.row_count - self.invalid_row_count


def _invalid_order_numbers(
    parsed: parsing.ParsedFile, mapping: list[str], invalid_rows: set[int]
) -> set[str]:
    if "order_number" not in mapping or not invalid_rows:
        return set()
    index = mapping.index("order_number")
    return {
        unescape_formula(cells[index])
        for number, cells in parsed.rows
        if number in invalid_rows and index < len(cells) and cells[index]
    }


def import_analyse(
    parsed: parsing.ParsedFile,
    *,
    mapping: list[str],
    options: ImportOptions,
    progress: Callable[[int, str], None] | None = None,
) -> ImportOutcome:
    """Validate every row and plan the writes (reads the database, writes nothing)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    context, owner_labels = import_context()
    report = (
        (
            lambda done, total: progress(
                int(60 * done / max(total, 1)), JobMessage(gettext_noop("Checking rows"))
            )
        )
        if progress
        else None
    )
    with cyclic_gc_paused():
        clean_rows, errors = validate_rows(parsed, mapping, context, progress=report)
    timings["validate"] = time.perf_counter() - started
    started = time.perf_counter()
    if progress:
        progress(60, JobMessage(gettext_noop("Matching existing customers")))
    planner = Planner(
        rows=clean_rows,
        errors=errors,
        mapping=mapping,
        headers=parsed.headers,
        context=context,
        options=options,
        invalid_order_numbers=_invalid_order_numbers(parsed, mapping, {e.row for e in errors}),
        owner_labels=owner_labels,
    )
    with cyclic_gc_paused():
        plan = planner.run()
    timings["plan"] = time.perf_counter() - started
    return ImportOutcome(parsed=parsed, plan=plan, errors=plan.errors, timings=timings)


def import_rows(
    parsed: parsing.ParsedFile,
    *,
    actor,
    mapping: list[str],
    options: ImportOptions,
    skip_invalid: bool,
    job_id: int | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> ImportOutcome:
    """Validate, plan and write, in the caller's transaction. Writes nothing when there are problems
    and `skip_invalid` is False (the outcome then lists them). Every row is written with its full
    search text (pinyin included, see planning.Planner._search_text): nothing is rewritten later.

    An order list is checked and planned whole, then written. A customer list is checked, planned
    and written in chunks (`_write_customer_list`): PostgreSQL inserts a chunk's customers while the
    next chunk is checked."""
    now = timezone.now()
    if "order_number" not in mapping:
        outcome = _write_customer_list(
            parsed,
            actor=actor,
            mapping=mapping,
            options=options,
            skip_invalid=skip_invalid,
            job_id=job_id,
            now=now,
            progress=progress,
        )
        if outcome.errors and not skip_invalid:
            return outcome
    else:
        outcome = import_analyse(
            parsed,
            mapping=mapping,
            options=options,
            progress=(lambda p, m: progress(p * 2 // 3, m)) if progress else None,
        )
        if outcome.errors and not skip_invalid:
            return outcome
        started = time.perf_counter()

        def write_progress(percent: int, message: str = "") -> None:
            if progress:
                progress(45 + percent * 50 // 100, JobMessage(gettext_noop("Writing")))

        outcome.written = write_plan(
            outcome.plan,
            actor=actor,
            job_id=job_id,
            now=now,
            progress=write_progress,
            timings=outcome.timings,
        )
        outcome.timings["write"] = time.perf_counter() - started
    _finish_import(outcome, actor=actor, job_id=job_id, now=now)
    return outcome


# A customer list is checked and planned this many rows at a time (the first chunk small, so that
# PostgreSQL starts inserting soon).
FIRST_CHUNK_ROWS = 5_000
CHUNK_ROWS = 20_000


class _Discard(Exception):
    """Roll back what a chunked import wrote: a row has a problem and only a clean file is imported."""


def _write_customer_list(
    parsed: parsing.ParsedFile,
    *,
    actor,
    mapping: list[str],
    options: ImportOptions,
    skip_invalid: bool,
    job_id: int | None,
    now,
    progress: Callable[[int, str], None] | None,
) -> ImportOutcome:
    """Check, plan and write a customer list chunk by chunk (Planner.plan_chunk says why a chunk's
    new customers are final when it has been planned): the customers a chunk creates go to
    NewCustomerWriter, whose thread inserts them while this one checks the next chunk. The existing
    customers matched are planned and updated after the last chunk (write_plan).

    Inside a savepoint: when a problem turns up and `skip_invalid` is False, nothing more is queued,
    the remaining rows are still checked (the outcome lists every problem) and everything written is
    rolled back."""
    timings: dict[str, float] = {"validate": 0.0, "plan": 0.0}
    context, owner_labels = import_context()
    planner = Planner(
        rows=[],
        errors=[],
        mapping=mapping,
        headers=parsed.headers,
        context=context,
        options=options,
        invalid_order_numbers=set(),
        owner_labels=owner_labels,
    )
    total = len(parsed.rows)
    started = time.perf_counter()
    try:
        with transaction.atomic():
            with NewCustomerWriter(
                given=planner.new_customer_columns(), actor=actor, job_id=job_id, now=now, timings=timings
            ) as writer:
                start, size = 0, FIRST_CHUNK_ROWS
                while start < total:
                    if progress:
                        progress(2 + 70 * start // total, JobMessage(gettext_noop("Writing")))
                    chunk = replace(parsed, rows=parsed.rows[start : start + size])
                    checked = time.perf_counter()
                    clean_rows, errors = validate_rows(chunk, mapping, context)
                    planned = time.perf_counter()
                    timings["validate"] += planned - checked
                    created = planner.plan_chunk(clean_rows, errors)
                    timings["plan"] += time.perf_counter() - planned
                    if skip_invalid or not planner.plan.errors:
                        writer.add(created)
                    start, size = start + size, CHUNK_ROWS
            timings["write_customers_new"] = time.perf_counter() - started
            planned = time.perf_counter()
            plan = planner.finish_chunks()
            timings["plan"] += time.perf_counter() - planned
            outcome = ImportOutcome(parsed=parsed, plan=plan, errors=plan.errors, timings=timings)
            if plan.errors and not skip_invalid:
                raise _Discard
            if {c.row for c in plan.new_customers} & plan.invalid_rows:  # plan_chunk's promise broken
                raise RuntimeError("a customer was written for a row found invalid later")
            if progress:
                progress(75, JobMessage(gettext_noop("Writing")))
            started = time.perf_counter()
            outcome.written = write_plan(
                plan, actor=actor, job_id=job_id, now=now, timings=timings, writer=writer
            )
            timings["write"] = time.perf_counter() - started
    except _Discard:
        pass
    return outcome


def _finish_import(outcome: ImportOutcome, *, actor, job_id: int | None, now) -> None:
    """What every import does after writing its plan: statistics, order figures, audit rows and the
    deferred foreign-key checks."""
    started = time.perf_counter()
    _analyse_after_bulk_writes(outcome.written)
    outcome.timings["analyse"] = time.perf_counter() - started
    started = time.perf_counter()
    touched = set(outcome.plan.touched_customer_ids)
    touched |= {o.customer_id for o in outcome.plan.new_orders}
    touched |= {o.customer_id for o in outcome.plan.order_changes}
    if touched:
        customer_refresh_order_stats(customer_ids=touched)
    outcome.timings["order_stats"] = time.perf_counter() - started
    started = time.perf_counter()
    outcome.written["audit_events"] = outcome.written.get("audit_events", 0) + audit_plan(
        outcome.plan, actor=actor, job_id=job_id, now=now
    )
    outcome.timings["audit"] = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Run the deferred foreign-key checks of everything written now, inside the import (and its
        # timing) rather than at commit; then defer again for whatever the caller does next.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    outcome.timings["constraints"] = time.perf_counter() - started


ANALYZE_AFTER_ROWS = 5_000


def _analyse_after_bulk_writes(written: dict[str, int]) -> None:
    """Refresh the planner's statistics of tables this transaction has just filled.

    Autovacuum cannot see uncommitted rows, so after a big import the planner still believes the
    tables are as small as before and picks nested loops for the queries that follow (refreshing
    order figures took 100 s instead of 1 s for 50,000 new orders). ANALYZE inside the transaction
    counts our own new rows.

    The customer table is analysed on its id alone: that sets its size (reltuples, which the queries
    that follow and the list's total estimate use) and the statistics the order figures' join
    needs. A full ANALYZE also sampled search_text, whose statistics target is 1,000 (up to 300,000
    rows of long text: 0.3-0.45 s of a 10,000-row import here, against 0.02-0.05 s now); autovacuum
    analyses the whole table after the commit anyway, as the import's rows count towards its
    threshold only then.
    """
    tables = []
    if written.get("customers_created", 0) >= ANALYZE_AFTER_ROWS:
        tables.append(f"{Customer._meta.db_table} (id)")
    if written.get("orders_created", 0) >= ANALYZE_AFTER_ROWS:
        tables.append(Order._meta.db_table)
    if written.get("lines_created", 0) >= ANALYZE_AFTER_ROWS:
        tables.append(OrderLine._meta.db_table)
    if tables:
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {', '.join(tables)}")


def id_runs(ids: list[int]) -> list[list[int]]:
    """Sorted ids as [first, last] runs of consecutive ids (a short message for many new customers)."""
    runs: list[list[int]] = []
    for pk in sorted(ids):
        if runs and pk == runs[-1][1] + 1:
            runs[-1][1] = pk
        else:
            runs.append([pk, pk])
    return runs


def search_text_refresh(*, runs: list[list[int]], batch_size: int = 2000) -> int:
    """Rebuild search_text (customers.search.build_search_text, with pinyin) for the customers in the
    id runs; writes only rows whose text differs, so a re-run changes nothing. Returns rows written.

    Imports no longer need it (they write the full text with each row). It stays for the follow-up
    messages that an earlier version queued before an upgrade (tasks.search_text_refresh_task)."""
    ids = [pk for first, last in runs for pk in range(int(first), int(last) + 1)]
    written = 0
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        changed: list[Customer] = []
        for pk, name, email, phone, external_id, current in Customer._base_manager.filter(
            id__in=chunk
        ).values_list("id", "name", "email", "phone", "external_id", "search_text"):
            text = build_search_text(name=name, email=email, phone=phone, external_id=external_id)
            if text != current:
                changed.append(Customer(id=pk, search_text=text, **search_columns(text, name)))
        if changed:
            # one statement per batch: atomic on its own, and each batch stands alone (a re-run
            # rewrites only what still differs)
            written += Customer._base_manager.bulk_update(changed, ["search_text", *SEARCH_COLUMNS])
    return written


# --- job steps --------------------------------------------------------------------------------------


def _params(job: BackgroundJob) -> dict[str, Any]:
    return dict(job.params or {})


def import_upload(*, actor: User, uploaded_file) -> BackgroundJob:
    """Store an uploaded file as a new import job and guess the column mapping.

    Reads the whole file once (so an unreadable file is refused here, with a message) but keeps only
    the header and a few sample rows, in memory and in the job.
    """
    _require_manager(actor)
    size = getattr(uploaded_file, "size", None)
    bound = parsing.upload_bound(large_csv=True)
    if size is not None and size > bound:
        raise ValidationError(
            _("The file is larger than %(size)d MB. Split it into smaller files."),
            params={"size": bound // (1024 * 1024)},
        )
    try:
        # Every row is read (and counted), a line at a time; only the sample rows are kept.
        parsed = parsing.parse_upload(
            uploaded_file, uploaded_file.name, preview_rows=SAMPLE_ROWS, large_csv=True
        )
    except parsing.ImportFileError as error:
        raise ValidationError(error.message)
    context, _labels = import_context()
    definitions = context.custom_fields
    mapping = columns.guess_mapping(parsed.headers, definitions)
    uploaded_file.seek(0)
    filename = (uploaded_file.name or "upload").rsplit("/", 1)[-1][:150]
    job = job_create(
        kind=JOB_KIND,
        created_by=actor,
        input_file=uploaded_file,
        input_name=filename,
        params={
            "stage": STAGE_MAPPING,
            "filename": filename,
            "file_format": parsed.file_format,
            "encoding": parsed.encoding,
            "row_count": parsed.row_count,
            "row_count_estimated": parsed.estimated_rows is not None,
            "headers": parsed.headers,
            "sample": [cells for _number, cells in parsed.rows[:SAMPLE_ROWS]],
            "mapping": mapping,
            "policy": POLICY_UPDATE,
            "default_owner_id": None,
        },
    )
    # The upload step is done; the job waits for the user to map the columns.
    job = job_wait_for_user(job=job)
    audit_record(
        actor=actor,
        action="customers.import_uploaded",
        target=job,
        changes={"file": filename, "rows": parsed.row_count},
        label=filename,
    )
    return job


def import_set_mapping(
    *, actor: User, job: BackgroundJob, mapping: list[str], policy: str, default_owner_id: int | None = None
) -> BackgroundJob:
    """Save the mapping and options and start checking every row (in the background)."""
    _require_manager(actor)
    params = _params(job)
    if job.is_active or params.get("stage") not in (STAGE_MAPPING, STAGE_PREVIEW, STAGE_VALIDATING):
        raise ValidationError(_("This import can no longer be changed."))
    headers = params.get("headers", [])
    mapping = [(m or "") for m in mapping][: len(headers)]
    mapping += [""] * (len(headers) - len(mapping))
    if policy not in POLICIES:
        raise ValidationError(_("Choose what to do with customers that already exist."))
    context, _labels = import_context()
    problems = validate_mapping(mapping, headers, context)
    if problems:
        raise ValidationError(problems)
    if default_owner_id is not None and default_owner_id not in set(context.owners.values()):
        raise ValidationError(_("Choose an active user as owner."))
    params.update(
        mapping=mapping,
        policy=policy,
        default_owner_id=default_owner_id,
        stage=STAGE_VALIDATING,
        language=translation.get_language(),  # the checks' messages are written in it
    )
    params.pop("skip_invalid", None)
    job = job_requeue(job=job, params=params, clear_result=True)
    from .tasks import import_validate_task

    job_enqueue(job=job, task=import_validate_task)
    return job


def _options(params: dict[str, Any]) -> ImportOptions:
    return ImportOptions(
        policy=params.get("policy", POLICY_UPDATE), default_owner_id=params.get("default_owner_id")
    )


def _read_job_file(job: BackgroundJob) -> parsing.ParsedFile:
    with job.input_file.open("rb") as handle:
        return parsing.parse_upload(handle, job.params.get("filename", job.input_file.name), large_csv=True)


def error_csv_bytes(parsed: parsing.ParsedFile, errors: list[RowError]) -> bytes:
    """Every problem (row, column, message) followed by the row's original cells; UTF-8 with BOM."""
    cells_of = dict(parsed.rows)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_t("Row"), _t("Column"), _t("Problem"), *parsed.headers])
    from customers.exports.formats import escape_formula

    for error in errors:
        cells = cells_of.get(error.row, [])
        writer.writerow(
            [
                error.row,
                escape_formula(error.column),
                escape_formula(error.message),
                *map(escape_formula, cells),
            ]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _summary(outcome: ImportOutcome) -> dict[str, Any]:
    counts = dict(outcome.plan.counts)
    return {
        "rows": outcome.parsed.row_count,
        "valid_rows": outcome.valid_row_count,
        "invalid_rows": outcome.invalid_row_count,
        "errors_total": len(outcome.errors),
        "errors": [[e.row, e.column, e.message] for e in outcome.errors[:PREVIEW_ERRORS_SHOWN]],
        "counts": counts,
    }


def _save_error_file(run: JobRun, outcome: ImportOutcome, filename: str) -> str:
    stem = filename.rsplit(".", 1)[0][:80] or "import"
    return run.save_output(f"{stem}-errors.csv", error_csv_bytes(outcome.parsed, outcome.errors))


def import_validate(*, job_id: int) -> None:
    """Task body: check every row and plan the import; store the preview. Writes no customer data.
    A job no longer waiting to be checked (a redelivered message, or moved on) is left alone."""
    run_job(
        job_id,
        _validate,
        start_if={"stage": STAGE_VALIDATING},
        failure_message=_("The file could not be checked. Please upload it again."),
    )


def _validate(run: JobRun) -> None:
    params = run.params

    def progress(percent: int, message: str = "") -> None:
        run.progress(min(95, percent), message)

    try:
        options = replace(_options(params), search_text=SEARCH_TEXT_NONE)  # the preview writes nothing
        with cyclic_gc_paused():
            parsed = _read_job_file(run.job)
            outcome = import_analyse(parsed, mapping=params["mapping"], options=options, progress=progress)
    except parsing.ImportFileError as error:
        run.fail(error.message, params={"stage": STAGE_FAILED})
        return
    if outcome.errors:
        _save_error_file(run, outcome, params.get("filename", "import"))
    message = (
        JobMessage(gettext_noop("%(count)d problems found"), count=len(outcome.errors))
        if outcome.errors
        else JobMessage(gettext_noop("No problems found"))
    )
    run.succeed(result={"preview": _summary(outcome)}, message=message, params={"stage": STAGE_PREVIEW})


def import_confirm(*, actor: User, job: BackgroundJob, skip_invalid: bool) -> BackgroundJob:
    """The user read the preview and starts the import."""
    _require_manager(actor)
    params = _params(job)
    retry = params.get("stage") == STAGE_IMPORTING and job.status == BackgroundJob.Status.FAILED
    if job.is_active or not (params.get("stage") == STAGE_PREVIEW or retry):
        raise ValidationError(_("This import is not waiting to be started."))
    preview = (job.result or {}).get("preview", {})
    if preview.get("errors_total") and not skip_invalid:
        raise ValidationError(
            _("The file has problems. Fix them and upload it again, or import only the valid rows.")
        )
    if preview.get("valid_rows", 0) == 0:
        raise ValidationError(_("No row can be imported. Fix the file and upload it again."))
    params.update(stage=STAGE_IMPORTING, skip_invalid=bool(skip_invalid))
    job = job_requeue(job=job, params=params, clear_result=False)
    from .tasks import import_run_task

    job_enqueue(job=job, task=import_run_task)
    return job


def import_cancel(*, actor: User, job: BackgroundJob) -> BackgroundJob:
    """Abandon an import that has not started writing (e.g. to fix the file and upload it again)."""
    _require_manager(actor)
    params = _params(job)
    if params.get("stage") not in (STAGE_MAPPING, STAGE_PREVIEW, STAGE_VALIDATING):
        raise ValidationError(_("This import can no longer be cancelled."))
    params["stage"] = STAGE_CANCELLED
    return job_cancel(job=job, params=params)


def _lock_imports() -> None:
    """One import writes at a time per tenant (held until the transaction ends): a second delivery of
    the same job waits here and then finds it finished, and two files naming the same new customer
    cannot both create it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{JOB_KIND}:{connection.schema_name}"])


def import_run(*, job_id: int) -> dict[str, Any] | None:
    """Task body: import the job's file. Returns the result, or None when there was nothing to do.

    Progress is written through a second connection: the import runs in one transaction."""
    return run_job(
        job_id,
        _import,
        start_if={"stage": STAGE_IMPORTING},
        separate_progress_connection=True,
        failure_message=_("The import failed and nothing was written. Please try again."),
    )


def _import(run: JobRun) -> dict[str, Any] | None:
    try:
        with transaction.atomic():
            _lock_imports()
            # Re-read under the lock: a second delivery of the message waits above, then stops here.
            job = BackgroundJob.objects.get(pk=run.job_id)
            params = _params(job)
            if not job.is_active or params.get("stage") != STAGE_IMPORTING:
                return None
            actor = job.created_by
            run.progress(1, JobMessage(gettext_noop("Reading the file")))
            started = time.perf_counter()
            with cyclic_gc_paused():
                parsed = _read_job_file(job)
                read_seconds = time.perf_counter() - started
                outcome = import_rows(
                    parsed,
                    actor=actor,
                    mapping=params["mapping"],
                    options=_options(params),
                    skip_invalid=bool(params.get("skip_invalid")),
                    job_id=run.job_id,
                    progress=run.progress,
                )
            outcome.timings["read"] = read_seconds
            if outcome.errors and not params.get("skip_invalid"):
                transaction.set_rollback(True)
                failed = outcome
            else:
                failed = None
                result = _import_result(outcome)
                audit_record(
                    actor=actor,
                    action="customers.imported",
                    target=job,
                    changes={
                        "file": params.get("filename", ""),
                        **result["written"],
                        "skipped_rows": outcome.invalid_row_count,
                    },
                    label=params.get("filename", ""),
                )
                if outcome.plan.writes_anything:  # segmentation, for one, recomputes its scores
                    # The customers concerned, so that receivers (loyalty's earning) can limit their
                    # work to them; None ("everyone") past a size that would swell the task messages.
                    changed = outcome.plan.changed_customer_ids()
                    customers_changed_on_commit(
                        reason=REASON_IMPORT,
                        customer_ids=changed if len(changed) <= SIGNAL_IDS_LIMIT else None,
                        actor=actor,
                    )
                # Finished in the transaction that wrote the rows: a crash can leave neither alone.
                run.succeed(result=result, message=_done_message(result), params={"stage": STAGE_DONE})
    except parsing.ImportFileError as error:
        run.fail(error.message, params={"stage": STAGE_FAILED})
        return None
    if failed is not None:
        # The data changed since the preview and rows no longer pass: nothing was written.
        _save_error_file(run, failed, params.get("filename", "import"))
        run.succeed(
            result={"preview": _summary(failed)},
            message=JobMessage(gettext_noop("Problems were found when importing; nothing was written.")),
            params={"stage": STAGE_PREVIEW},
        )
        return None
    return result


def _import_result(outcome: ImportOutcome) -> dict[str, Any]:
    summary = _summary(outcome)
    summary.pop("errors", None)
    return {
        "import": summary,
        "written": {
            key: outcome.written.get(key, 0)
            for key in (
                "customers_created",
                "customers_updated",
                "orders_created",
                "orders_updated",
                "lines_created",
            )
        },
        "unchanged": {
            "customers": outcome.plan.counts.get("customers_unchanged", 0),
            "orders": outcome.plan.counts.get("orders_unchanged", 0),
        },
        "skipped": {
            "customers": outcome.plan.counts.get("customers_skipped", 0),
            "orders": outcome.plan.counts.get("orders_skipped", 0),
        },
        "seconds": {k: round(v, 2) for k, v in outcome.timings.items()},
    }


def _done_message(result: dict[str, Any]) -> str:
    written = result["written"]
    return JobMessage(
        gettext_noop("%(created)d customers created, %(updated)d updated, %(orders)d orders imported"),
        created=written["customers_created"],
        updated=written["customers_updated"],
        orders=written["orders_created"] + written["orders_updated"],
    )
