"""Import of historical interactions (CSV / XLSX): upload -> column mapping -> a background job that
checks every row and, only when every row is good, writes them all in one transaction.

It stands on the customers import's reading and cleaning modules (`customers.imports.parsing`:
size, row, column and cell limits, encodings, XLSX bombs; `customers.imports.values`: dates in the
tenant's time zone, e-mail, phone, formula unescaping) and on the job runner (progress, failure
message). Customers are matched by CRM id, else e-mail, else phone; a row that matches no live
customer, or several, is an error at its row and column. Nothing is half-written: with any row
error the job ends with the list of errors (row, column, message) and writes nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from crm.accounts.models import User
from crm.accounts.permissions import MANAGERS, user_has_role
from crm.audit.services import audit_record
from crm.jobs.models import BackgroundJob
from crm.jobs.runner import JobRun, run_job
from crm.jobs.services import job_create, job_enqueue, job_requeue, job_wait_for_user
from customers.imports import parsing
from customers.imports.columns import normalise_header
from customers.imports.values import CellError, PhoneNormaliser, clean_datetime, clean_email, unescape_formula
from customers.models import Customer, Order
from customers.phone import current_region

from .labels import DEFAULT_OUTCOMES, Channel, Direction
from .models import Interaction, InteractionOutcome
from .services import DURATION_MAX, NOTES_MAX, SUBJECT_MAX, future_limit

JOB_KIND = "interactions.import"
STAGE_MAPPING = "mapping"
STAGE_CHECKING = "checking"
STAGE_DONE = "done"
STAGE_REFUSED = "refused"
ERRORS_KEPT = 500
BATCH = 2_000


@dataclass(frozen=True)
class Target:
    key: str
    label: Any
    synonyms: tuple[str, ...] = ()


TARGETS = (
    Target("customer_id", _("Customer ID"), ("crm id", "customer", "客户id", "客户编号")),
    Target("customer_email", _("Customer email"), ("email", "e-mail", "邮箱", "电子邮件")),
    Target("customer_phone", _("Customer phone"), ("phone", "mobile", "手机", "电话号码")),
    Target("occurred_at", _("When"), ("date", "time", "occurred at", "日期", "时间")),
    Target("channel", _("Channel"), ("type", "渠道")),
    Target("direction", _("Direction"), ("方向",)),
    Target("duration_minutes", _("Duration (minutes)"), ("duration", "minutes", "时长")),
    Target("subject", _("Subject"), ("title", "主题")),
    Target("notes", _("Notes"), ("note", "comment", "备注")),
    Target("outcome", _("Outcome"), ("result", "结果")),
    Target("author", _("Author (user email)"), ("user", "author", "记录人")),
    Target("order", _("Order number"), ("order", "订单号")),
)
TARGET_KEYS = {t.key for t in TARGETS}
REQUIRED = ("occurred_at", "channel")
MATCH_KEYS = ("customer_id", "customer_email", "customer_phone")


def _every_language(label) -> set[str]:
    names = {str(label)}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            names.add(str(label))
    return names


def guess_mapping(headers: list[str]) -> list[str]:
    lookup: dict[str, str] = {}
    for target in TARGETS:
        for name in (target.key, *target.synonyms, *_every_language(target.label)):
            lookup.setdefault(normalise_header(name), target.key)
    used: set[str] = set()
    mapping = []
    for header in headers:
        key = lookup.get(normalise_header(header), "")
        mapping.append(key if key and key not in used else "")
        used.add(key)
    return mapping


def _require_manager(actor) -> None:
    if not user_has_role(actor, MANAGERS):
        raise PermissionDenied(_t("Only managers and admins can import interactions."))


def import_upload(*, actor: User, uploaded_file) -> BackgroundJob:
    """Store the file as a new import job and guess the column mapping (a file that cannot be read
    is refused here with its message)."""
    _require_manager(actor)
    size = getattr(uploaded_file, "size", None)
    if size is not None and size > parsing.MAX_UPLOAD_BYTES:
        raise ValidationError(
            _("The file is larger than %(size)d MB. Split it into smaller files."),
            params={"size": parsing.MAX_UPLOAD_BYTES // (1024 * 1024)},
        )
    try:
        parsed = parsing.parse_upload(uploaded_file, uploaded_file.name, preview_rows=5)
    except parsing.ImportFileError as error:
        raise ValidationError(error.message)
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
            "row_count": parsed.row_count,
            "headers": parsed.headers,
            "sample": [cells for _n, cells in parsed.rows[:5]],
            "mapping": guess_mapping(parsed.headers),
            "language": translation.get_language(),
        },
    )
    job = job_wait_for_user(job=job)
    audit_record(
        actor=actor,
        action="interactions.import_uploaded",
        target=job,
        changes={"file": filename},
        label=filename,
    )
    return job


def import_start(*, actor: User, job: BackgroundJob, mapping: list[str]) -> BackgroundJob:
    """Save the mapping and check (and, if every row is good, write) the rows in the background."""
    _require_manager(actor)
    params = dict(job.params)
    if params.get("stage") != STAGE_MAPPING:
        raise ValidationError(_("This import has already been started."))
    headers = params.get("headers", [])
    if len(mapping) != len(headers) or any(key and key not in TARGET_KEYS for key in mapping):
        raise ValidationError(_("Choose a field (or “do not import”) for every column."))
    chosen = [key for key in mapping if key]
    errors = []
    if len(chosen) != len(set(chosen)):
        errors.append(_("Each field can be chosen for one column only."))
    for key in REQUIRED:
        if key not in chosen:
            label = next(str(t.label) for t in TARGETS if t.key == key)
            errors.append(_("Choose the column for “%(field)s”.") % {"field": label})
    if not any(key in chosen for key in MATCH_KEYS):
        errors.append(_("Choose a column that identifies the customer: CRM id, e-mail or phone."))
    if errors:
        raise ValidationError(errors)
    params.update({"stage": STAGE_CHECKING, "mapping": mapping, "language": translation.get_language()})
    job = job_requeue(job=job, params=params, clear_result=True)
    from .tasks import import_task

    job_enqueue(job=job, task=import_task)
    return job


# --- the job body ------------------------------------------------------------------------------------


@dataclass
class RowProblem:
    row: int
    column: str
    message: str


class _Lookups:
    """Everything a row is matched against, loaded once per import (in bulk, never per row)."""

    def __init__(self, rows: list[tuple[int, dict[str, str]]]):
        self.zone = (
            ZoneInfo(connection.tenant.time_zone) if hasattr(connection, "tenant") else ZoneInfo("UTC")
        )
        self.phone = PhoneNormaliser(current_region())
        self.channels = self._choice_lookup(Channel)
        self.directions = self._choice_lookup(Direction)
        self.directions.update({"inbound": "in", "outbound": "out", "呼入": "in", "呼出": "out"})
        self.outcomes: dict[str, InteractionOutcome] = {}
        for outcome in InteractionOutcome.objects.all():
            names = {outcome.key, outcome.name} if outcome.name else {outcome.key}
            if not outcome.name and outcome.key in DEFAULT_OUTCOMES:
                names |= _every_language(DEFAULT_OUTCOMES[outcome.key])
            for name in names:
                if name:
                    self.outcomes.setdefault(name.strip().casefold(), outcome)
        self.users = {u.email.lower(): u.pk for u in User.objects.filter(is_active=True).exclude(role="")}
        ids, emails, phones, numbers = set(), set(), set(), set()
        for _n, values in rows:
            if values.get("customer_id", "").strip().isdigit():
                ids.add(int(values["customer_id"].strip()))
            if values.get("customer_email"):
                emails.add(values["customer_email"].strip().lower())
            if values.get("customer_phone"):
                with contextlib.suppress(CellError):
                    phones.add(self.phone(values["customer_phone"]))
            if values.get("order"):
                numbers.add(values["order"].strip())
        live = Customer.objects.filter(deleted_at__isnull=True)
        self.by_id = set(live.filter(pk__in=ids).values_list("pk", flat=True)) if ids else set()
        self.by_email: dict[str, list[int]] = {}
        for pk, email in live.filter(email__in=emails).values_list("pk", "email") if emails else []:
            self.by_email.setdefault(email, []).append(pk)
        self.by_phone: dict[str, list[int]] = {}
        for pk, phone in live.filter(phone__in=phones).values_list("pk", "phone") if phones else []:
            self.by_phone.setdefault(phone, []).append(pk)
        self.orders = {
            number: (pk, customer_id)
            for pk, number, customer_id in Order.objects.filter(number__in=numbers).values_list(
                "pk", "number", "customer_id"
            )
        }

    @staticmethod
    def _choice_lookup(choices) -> dict[str, str]:
        lookup = {}
        for value, label in choices.choices:
            for name in (value, *_every_language(label)):
                lookup[name.strip().casefold()] = value
        return lookup


def _clean_row(values: dict[str, str], lookups: _Lookups, labels: dict[str, str], now) -> tuple[dict, list]:
    """(interaction fields, [(column label, message)]) for one row."""
    problems: list[tuple[str, str]] = []
    fields: dict[str, Any] = {}

    def problem(key: str, message: str) -> None:
        problems.append((labels.get(key, key), message))

    customer_id = None
    raw_id = values.get("customer_id", "").strip()
    raw_email = values.get("customer_email", "").strip()
    raw_phone = values.get("customer_phone", "").strip()
    if raw_id:
        if raw_id.isdigit() and int(raw_id) in lookups.by_id:
            customer_id = int(raw_id)
        else:
            problem("customer_id", _t("No customer has CRM id “%(value)s”.") % {"value": raw_id[:40]})
    elif raw_email:
        try:
            matches = lookups.by_email.get(clean_email(raw_email), [])
        except CellError as error:
            problem("customer_email", error.message)
            matches = None
        if matches is not None:
            if len(matches) == 1:
                customer_id = matches[0]
            elif not matches:
                problem("customer_email", _t("No customer has this e-mail."))
            else:
                problem("customer_email", _t("Several customers have this e-mail; use the CRM id."))
    elif raw_phone:
        try:
            matches = lookups.by_phone.get(lookups.phone(raw_phone), [])
        except CellError as error:
            problem("customer_phone", error.message)
            matches = None
        if matches is not None:
            if len(matches) == 1:
                customer_id = matches[0]
            elif not matches:
                problem("customer_phone", _t("No customer has this phone number."))
            else:
                problem("customer_phone", _t("Several customers have this phone number; use the CRM id."))
    else:
        key = next((k for k in MATCH_KEYS if k in values), "customer_id")
        problem(key, _t("Give the customer's CRM id, e-mail or phone."))
    fields["customer_id"] = customer_id

    channel = lookups.channels.get(values.get("channel", "").strip().casefold())
    if channel is None:
        problem(
            "channel", _t("“%(value)s” is not a known channel.") % {"value": values.get("channel", "")[:40]}
        )
    fields["channel"] = channel
    raw_direction = values.get("direction", "").strip()
    direction = lookups.directions.get(raw_direction.casefold()) if raw_direction else Direction.INBOUND
    if direction is None:
        problem("direction", _t("Use “in” or “out”."))
    fields["direction"] = direction

    raw_when = values.get("occurred_at", "").strip()
    try:
        when = clean_datetime(raw_when, lookups.zone)
        if when > now + future_limit():
            problem("occurred_at", _t("An interaction cannot be dated in the future."))
        fields["occurred_at"] = when
    except CellError as error:
        problem("occurred_at", error.message)

    raw_duration = values.get("duration_minutes", "").strip()
    fields["duration_minutes"] = None
    if raw_duration:
        if raw_duration.isdigit() and int(raw_duration) <= DURATION_MAX:
            fields["duration_minutes"] = int(raw_duration)
        else:
            problem(
                "duration_minutes",
                _t("Enter a duration between 0 and %(max)d minutes.") % {"max": DURATION_MAX},
            )
    for key, limit in (("subject", SUBJECT_MAX), ("notes", NOTES_MAX)):
        text = values.get(key, "").strip()
        if len(text) > limit:
            problem(
                key,
                _t("Too long: %(length)s characters (at most %(max)s).")
                % {"length": len(text), "max": limit},
            )
        fields[key] = " ".join(text.split()) if key == "subject" else text

    raw_outcome = values.get("outcome", "").strip()
    fields["outcome_id"] = None
    if raw_outcome:
        outcome = lookups.outcomes.get(raw_outcome.casefold())
        if outcome is None:
            problem("outcome", _t("“%(value)s” is not one of the outcomes.") % {"value": raw_outcome[:40]})
        else:
            fields["outcome_id"] = outcome.pk
    raw_author = values.get("author", "").strip().lower()
    fields["author_id"] = None
    if raw_author:
        if raw_author in lookups.users:
            fields["author_id"] = lookups.users[raw_author]
        else:
            problem("author", _t("No active user has the e-mail “%(value)s”.") % {"value": raw_author[:60]})
    raw_order = values.get("order", "").strip()
    fields["order_id"] = None
    if raw_order:
        order = lookups.orders.get(raw_order)
        if order is None:
            problem("order", _t("No order has the number “%(value)s”.") % {"value": raw_order[:60]})
        elif customer_id is not None and order[1] != customer_id:
            problem("order", _t("This order belongs to another customer."))
        else:
            fields["order_id"] = order[0]
    return fields, problems


def import_run(*, job_id: int) -> None:
    run_job(
        job_id,
        _import,
        failure_message=_("The import failed. Nothing was written. Please try again."),
        start_if={"stage": STAGE_CHECKING},
    )


def _import(run: JobRun) -> None:
    job = run.job
    params = dict(run.params)
    actor = job.created_by
    if actor is None or not user_has_role(actor, MANAGERS):
        run.fail(message=_t("The user who started this import may no longer import."), params=params)
        return
    with job.input_file.open("rb") as handle:
        parsed = parsing.parse_upload(handle, params.get("filename", "upload"))
    mapping = params["mapping"]
    labels = {key: headers for key, headers in zip(mapping, parsed.headers, strict=False) if key}
    rows = [
        (number, {key: unescape_formula(cell) for key, cell in zip(mapping, cells, strict=False) if key})
        for number, cells in parsed.rows
    ]
    run.progress(5, _t("Checking rows"))
    lookups = _Lookups(rows)
    now = timezone.now()
    problems: list[RowProblem] = []
    cleaned: list[dict] = []
    total = max(1, len(rows))
    for index, (number, values) in enumerate(rows, start=1):
        fields, row_problems = _clean_row(values, lookups, labels, now)
        for column, message in row_problems:
            problems.append(RowProblem(number, column, str(message)))
        if not row_problems:
            cleaned.append(fields)
        if index % BATCH == 0:
            run.progress(5 + 60 * index // total, _t("Checking rows"))
    for number in sorted(parsed.width_errors):
        problems.append(
            RowProblem(number, "", _t("This row has a different number of columns than the header."))
        )
    if problems:
        params["stage"] = STAGE_REFUSED
        run.succeed(
            result={
                "rows": len(rows),
                "error_count": len(problems),
                "errors": [p.__dict__ for p in problems[:ERRORS_KEPT]],
            },
            message=_t("%(count)d problems found; nothing was imported. Fix the file and upload it again.")
            % {"count": len(problems)},
            params=params,
        )
        return
    run.progress(70, _t("Writing interactions"))
    with transaction.atomic():
        objects = [Interaction(author_id=f.pop("author_id") or actor.pk, **f) for f in cleaned]
        Interaction.objects.bulk_create(objects, batch_size=BATCH)
        audit_record(
            actor=actor,
            action="interactions.imported",
            target=job,
            changes={"file": params.get("filename"), "rows": len(objects)},
            label=params.get("filename", ""),
        )
        params["stage"] = STAGE_DONE
        run.succeed(
            result={"rows": len(rows), "imported": len(objects), "error_count": 0, "errors": []},
            message=_t("%(count)d interactions imported.") % {"count": len(objects)},
            params=params,
        )
