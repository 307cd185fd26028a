"""Build exports. Reads go through `customers.selectors.customer_list` (the user's visibility and
the list's filters), in chunks: one query per 2,000 customers plus one for their tags."""

import io
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.files import File
from django.db import connection
from django.db.models import F, QuerySet
from django.http import QueryDict
from django.utils import timezone, translation
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from crm.accounts.models import User
from crm.accounts.permissions import MANAGERS, user_has_role
from crm.audit.services import audit_record
from crm.errors import ApplicationError
from crm.jobs.messages import JobMessage
from crm.jobs.models import BackgroundJob
from crm.jobs.runner import JobRun, run_job
from crm.jobs.services import job_create, job_enqueue
from crm.spreadsheets import formula_escaped_sql
from customers.forms import CustomerFilterForm
from customers.imports.columns import BUILTIN_BY_KEY
from customers.models import BehaviourEvent, Customer, CustomFieldDefinition, Order, OrderLine, Refund, Tag
from customers.selectors import customer_list, parse_sort

from .formats import CSV_BOM, csv_lines, write_xlsx

EXPORT_KIND = "customers.export"
EXPORT_ALL_KIND = "customers.export_all"
STREAM_LIMIT = 5_000
CHUNK = 2_000
FORMATS = ("csv", "xlsx")

# The columns an import understands (by the same labels), then read-only figures.
IMPORTABLE = (
    "id",
    "external_id",
    "name",
    "kind",
    "email",
    "phone",
    "country",
    "province",
    "city",
    "street",
    "postcode",
    "birthday",
    "gender",
    "income_band",
    "occupation",
    "source",
    "owner",
    "tags",
    "email_consent",
    "sms_consent",
)
VALUE_FIELDS = (
    "id",
    "external_id",
    "name",
    "kind",
    "email",
    "phone",
    "country",
    "province",
    "city",
    "street",
    "postcode",
    "birthday",
    "gender",
    "income_band",
    "occupation",
    "source",
    "owner__email",
    "email_consent",
    "sms_consent",
    "custom_fields",
    "total_spent",
    "orders_count",
    "first_order_at",
    "last_order_at",
    "created_at",
)


def _figure_labels() -> list[str]:
    return [_t("Total spent"), _t("Orders"), _t("First purchase"), _t("Last purchase"), _t("Created")]


def export_header(definitions: list[CustomFieldDefinition], *, with_deleted: bool = False) -> list[str]:
    header = [str(BUILTIN_BY_KEY[key].label) for key in IMPORTABLE]
    header += [d.label for d in definitions]
    header += _figure_labels()
    if with_deleted:
        header.append(_t("Deleted at"))
    return header


def _custom_text(value: Any) -> Any:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return value


def _local(value: datetime | None) -> datetime | None:
    return timezone.localtime(value) if value is not None else None


def customer_rows(
    qs: QuerySet[Customer],
    definitions: list[CustomFieldDefinition],
    *,
    with_deleted: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Iterator[list[Any]]:
    """One list of cell values per customer, in the order of `export_header`."""
    through = Customer.tags.through
    keys = [d.key for d in definitions]
    fields = VALUE_FIELDS + (("deleted_at",) if with_deleted else ())
    done = 0
    ordered = qs.order_by("pk") if not qs.query.order_by else qs
    buffer: list[tuple] = []

    def flush(rows: list[tuple]) -> Iterator[list[Any]]:
        tags: dict[int, list[str]] = {}
        for customer_id, name in (
            through.objects.filter(customer_id__in=[r[0] for r in rows], tag__deleted_at__isnull=True)
            .order_by("tag__name")
            .values_list("customer_id", "tag__name")
        ):
            tags.setdefault(customer_id, []).append(name)
        for row in rows:
            values = dict(zip(fields, row, strict=True))
            custom = values["custom_fields"] or {}
            cells = [values[f] for f in IMPORTABLE[:16]]
            cells += [
                values["owner__email"] or "",
                ", ".join(tags.get(values["id"], [])),
                values["email_consent"],
                values["sms_consent"],
            ]
            cells += [_custom_text(custom.get(key)) for key in keys]
            cells += [
                values["total_spent"],
                values["orders_count"],
                _local(values["first_order_at"]),
                _local(values["last_order_at"]),
                _local(values["created_at"]),
            ]
            if with_deleted:
                cells.append(_local(values["deleted_at"]))
            yield cells

    for row in ordered.values_list(*fields).iterator(chunk_size=CHUNK):
        buffer.append(row)
        if len(buffer) >= CHUNK:
            yield from flush(buffer)
            done += len(buffer)
            buffer = []
            if progress is not None:
                progress(done)
    if buffer:
        yield from flush(buffer)
        done += len(buffer)
        if progress is not None:
            progress(done)


# --- the filtered list ------------------------------------------------------------------------------


def export_queryset(*, user: User, query: QueryDict) -> QuerySet[Customer]:
    """The customers the list shows for this querystring (the user's scope, filters and sort)."""
    form = CustomerFilterForm(query, user=user)
    form.is_valid()  # an invalid filter is ignored, as on the list page
    filters = form.filters()
    qs = customer_list(user=user, filters=filters)
    option, descending = parse_sort(filters.get("sort"))
    expression = F(option.path).desc(nulls_last=True) if descending else F(option.path).asc(nulls_last=True)
    return qs.order_by(expression, F("pk").desc() if descending else F("pk").asc())


def export_definitions() -> list[CustomFieldDefinition]:
    return list(CustomFieldDefinition.objects.filter(is_active=True).order_by("position", "label"))


def export_filename(file_format: str, stem: str = "customers") -> str:
    return f"{stem}-{timezone.localtime():%Y%m%d-%H%M}.{file_format}"


def export_stream_csv(*, user: User, query: QueryDict) -> Iterator[str]:
    definitions = export_definitions()
    qs = export_queryset(user=user, query=query)
    return csv_lines(export_header(definitions), customer_rows(qs, definitions))


def export_xlsx_bytes(*, user: User, query: QueryDict) -> bytes:
    definitions = export_definitions()
    qs = export_queryset(user=user, query=query)
    buffer = io.BytesIO()
    write_xlsx(buffer, export_header(definitions), customer_rows(qs, definitions), title=_t("Customers"))
    return buffer.getvalue()


def export_count(*, user: User, query: QueryDict, limit: int = STREAM_LIMIT) -> int:
    """How many rows the export has, counted up to limit + 1 (enough to choose stream or job)."""
    qs = export_queryset(user=user, query=query)
    return qs.order_by().values("pk")[: limit + 1].count()


def export_start(*, actor: User, query: QueryDict, file_format: str) -> BackgroundJob:
    """A background export of the filtered list (for more rows than are streamed directly)."""
    if file_format not in FORMATS:
        raise ValueError(file_format)
    job = job_create(
        kind=EXPORT_KIND,
        created_by=actor,
        params={"query": query.urlencode(), "format": file_format, "language": translation.get_language()},
    )
    from .tasks import export_task

    job_enqueue(job=job, task=export_task)
    return job


def export_run(*, job_id: int) -> None:
    """Task body: write the export file of a job. A finished job is left alone."""
    run_job(job_id, _export, failure_message=_("The export failed. Please try again."))


def _export(run: JobRun) -> None:
    user = run.job.created_by
    if user is None or not user.is_active:
        raise ApplicationError(
            JobMessage(gettext_noop("The user who asked for this export is no longer active."))
        )
    params = run.params
    query = QueryDict(params.get("query", ""))
    definitions = export_definitions()
    qs = export_queryset(user=user, query=query)
    total = max(1, export_count(user=user, query=query, limit=10**9))

    def progress(done: int) -> None:
        run.progress(min(95, done * 95 // total), JobMessage(gettext_noop("Writing rows")))

    file_format = params.get("format", "csv")
    written = [0]

    def counted(rows):
        for row in rows:
            written[0] += 1
            yield row

    rows = counted(customer_rows(qs, definitions, progress=progress))
    with tempfile.NamedTemporaryFile(suffix=f".{file_format}") as tmp:
        if file_format == "xlsx":
            write_xlsx(tmp.name, export_header(definitions), rows, title=_t("Customers"))
        else:
            with open(tmp.name, "w", encoding="utf-8", newline="") as out:
                for piece in csv_lines(export_header(definitions), rows):
                    out.write(piece)
        count = written[0]
        with open(tmp.name, "rb") as handle:
            run.save_output(export_filename(file_format), File(handle))
    run.succeed(result={"rows": count}, message=JobMessage(gettext_noop("%(count)d customers"), count=count))


# --- all tenant data ----------------------------------------------------------------------------------


def _escaped(column: str) -> str:
    """SQL for a text column with formula-like values prefixed by an apostrophe (crm.spreadsheets)."""
    return formula_escaped_sql(column)


def _copy_csv(cursor, select_sql: str, out) -> None:
    out.write(CSV_BOM.encode("utf-8"))
    with cursor.copy(f"COPY ({select_sql}) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
        for data in copy:
            out.write(bytes(data))


def _table_exports() -> list[tuple[str, str]]:
    """(file name, SELECT) for the tables exported with COPY."""
    orders = Order._meta.db_table
    lines = OrderLine._meta.db_table
    refunds = Refund._meta.db_table
    events = BehaviourEvent._meta.db_table
    tags = Tag._meta.db_table
    through = Customer.tags.through._meta.db_table
    definitions = CustomFieldDefinition._meta.db_table
    return [
        (
            "orders.csv",
            f"SELECT id, {_escaped('number')}, customer_id, placed_at, status, channel, currency, total, "
            f"refunded_total, {_escaped('external_id')}, created_at, updated_at FROM {orders} ORDER BY id",
        ),
        (
            "order_lines.csv",
            f"SELECT id, order_id, {_escaped('sku')}, {_escaped('product_name')}, {_escaped('category')}, "
            f"quantity, unit_price FROM {lines} ORDER BY id",
        ),
        (
            "refunds.csv",
            f"SELECT id, order_id, amount, {_escaped('reason')}, refunded_at, created_at "
            f"FROM {refunds} ORDER BY id",
        ),
        (
            "events.csv",
            f"SELECT id, customer_id, event_type, occurred_at, properties FROM {events} ORDER BY id",
        ),
        ("tags.csv", f"SELECT id, {_escaped('name')}, color FROM {tags} ORDER BY id"),
        ("customer_tags.csv", f"SELECT customer_id, tag_id FROM {through} ORDER BY customer_id, tag_id"),
        (
            "custom_fields.csv",
            f"SELECT {_escaped('key')}, {_escaped('label')}, field_type, required, choices, is_active "
            f"FROM {definitions} ORDER BY position, id",
        ),
    ]


def export_all_start(*, actor: User) -> BackgroundJob:
    if not user_has_role(actor, MANAGERS):
        raise PermissionDenied(_t("Only managers and admins can export all data."))
    job = job_create(kind=EXPORT_ALL_KIND, created_by=actor, params={"language": translation.get_language()})
    audit_record(actor=actor, action="customers.export_all_requested", target=job, changes={})
    from .tasks import export_all_task

    job_enqueue(job=job, task=export_all_task)
    return job


def export_all_run(*, job_id: int) -> None:
    """Task body: a zip of customers.csv (every customer, the recycle bin included) and one CSV per
    table of customer data, each UTF-8 with BOM and formula-escaped."""
    run_job(job_id, _export_all, failure_message=_("The export failed. Please try again."))


def _export_all(run: JobRun) -> None:
    definitions = list(CustomFieldDefinition.objects.order_by("position", "label"))
    total = max(1, Customer._base_manager.count())
    tables = _table_exports()
    steps = len(tables) + 1

    def progress(done: int) -> None:
        run.progress(min(60, done * 60 // total), JobMessage(gettext_noop("Customers")))

    with tempfile.NamedTemporaryFile(suffix=".zip") as tmp:
        with zipfile.ZipFile(tmp.name, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            with archive.open("customers.csv", "w") as entry:
                text = io.TextIOWrapper(entry, encoding="utf-8", newline="")
                for piece in csv_lines(
                    export_header(definitions, with_deleted=True),
                    customer_rows(
                        Customer._base_manager.all(), definitions, with_deleted=True, progress=progress
                    ),
                ):
                    text.write(piece)
                text.flush()
                text.detach()
            with connection.cursor() as cursor:
                for step, (name, sql) in enumerate(tables, start=2):
                    run.progress(60 + 35 * step // steps, name)
                    with archive.open(name, "w") as entry:
                        _copy_csv(cursor, sql, entry)
        with open(tmp.name, "rb") as handle:
            run.save_output(
                f"{connection.schema_name}-data-{timezone.localtime():%Y%m%d-%H%M}.zip", File(handle)
            )
    run.succeed(result={"customers": total}, message=JobMessage(gettext_noop("Ready to download")))
