"""The interactions export: the filtered interactions page written to CSV or XLSX by a background
job (crm.jobs), with the shared spreadsheet-safe writers of customers.exports.formats (formula
escaping, UTF-8 with BOM)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from django.core.files import File
from django.http import QueryDict
from django.utils import timezone, translation
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from crm.accounts.models import User
from crm.errors import ApplicationError
from crm.jobs.messages import JobMessage
from crm.jobs.models import BackgroundJob
from crm.jobs.runner import JobRun, run_job
from crm.jobs.services import job_create, job_enqueue
from customers.exports.formats import csv_lines, write_xlsx

from .forms import InteractionFilterForm
from .labels import channel_label, direction_label
from .selectors import interaction_list

EXPORT_KIND = "interactions.export"
FORMATS = ("csv", "xlsx")
CHUNK = 2_000


def export_header() -> list[str]:
    return [
        _t("ID"),
        _t("Customer ID"),
        _t("Customer"),
        _t("When"),
        _t("Channel"),
        _t("Direction"),
        _t("Duration (minutes)"),
        _t("Subject"),
        _t("Notes"),
        _t("Outcome"),
        _t("Author (user email)"),
        _t("Order"),
    ]


def export_queryset(*, user: User, query: QueryDict):
    form = InteractionFilterForm(query, user=user)
    form.is_valid()  # an invalid filter is ignored, as on the page
    return interaction_list(user=user, filters=form.filters()).order_by("-occurred_at", "-pk")


def interaction_rows(qs, *, progress: Callable[[int], None] | None = None) -> Iterator[list[Any]]:
    """One list of cells per interaction, in the order of `export_header`, read in chunks."""
    rows = qs.select_related(None).values_list(
        "pk",
        "customer_id",
        "customer__name",
        "occurred_at",
        "channel",
        "direction",
        "duration_minutes",
        "subject",
        "notes",
        "outcome__key",
        "outcome__name",
        "author__email",
        "order__number",
    )
    from .labels import DEFAULT_OUTCOMES

    for done, row in enumerate(rows.iterator(chunk_size=CHUNK), start=1):
        (
            pk,
            customer_id,
            customer,
            when,
            channel,
            direction,
            duration,
            subject,
            notes,
            key,
            name,
            author,
            order,
        ) = row
        outcome = name or (str(DEFAULT_OUTCOMES[key]) if key in DEFAULT_OUTCOMES else key) or ""
        yield [
            pk,
            customer_id,
            customer,
            timezone.localtime(when),
            channel_label(channel),
            direction_label(direction),
            duration,
            subject,
            notes,
            outcome,
            author or "",
            order or "",
        ]
        if progress is not None and done % CHUNK == 0:
            progress(done)


def export_filename(file_format: str) -> str:
    return f"interactions-{timezone.localtime():%Y%m%d-%H%M}.{file_format}"


def export_start(*, actor: User, query: QueryDict, file_format: str) -> BackgroundJob:
    """Queue the export of the filtered interactions as a background job."""
    if file_format not in FORMATS:
        file_format = "csv"
    job = job_create(
        kind=EXPORT_KIND,
        created_by=actor,
        params={"query": query.urlencode(), "format": file_format, "language": translation.get_language()},
    )
    from .tasks import export_task

    job_enqueue(job=job, task=export_task)
    return job


def export_run(*, job_id: int) -> None:
    """Task body: write the export file of a job (a finished job is left alone)."""
    run_job(job_id, _export, failure_message=_("The export failed. Please try again."))


def _export(run: JobRun) -> None:
    user = run.job.created_by
    if user is None or not user.is_active:
        raise ApplicationError(
            JobMessage(gettext_noop("The user who asked for this export is no longer active."))
        )
    query = QueryDict(run.params.get("query", ""))
    qs = export_queryset(user=user, query=query)
    total = max(1, qs.order_by().count())
    file_format = run.params.get("format", "csv")

    def progress(done: int) -> None:
        run.progress(min(95, done * 95 // total), JobMessage(gettext_noop("Writing rows")))

    written = [0]

    def counted(rows):
        for row in rows:
            written[0] += 1
            yield row

    rows = counted(interaction_rows(qs, progress=progress))
    with tempfile.NamedTemporaryFile(suffix=f".{file_format}") as tmp:
        if file_format == "xlsx":
            write_xlsx(tmp.name, export_header(), rows, title=_t("Interactions"))
        else:
            with open(tmp.name, "w", encoding="utf-8", newline="") as out:
                for piece in csv_lines(export_header(), rows):
                    out.write(piece)
        with open(tmp.name, "rb") as handle:
            run.save_output(export_filename(file_format), File(handle))
    count = written[0]
    run.succeed(
        result={"rows": count}, message=JobMessage(gettext_noop("%(count)d interactions"), count=count)
    )
