"""Import of opening balances (migration from another loyalty system), CSV / XLSX: upload -> column
mapping -> a background check that ends in a preview -> confirm -> a background write, all rows in
one transaction or none.

It stands on the customers import's reading and cleaning modules (`customers.imports.parsing`: size,
row, column and cell limits, encodings, XLSX bombs; `customers.imports.values`: dates, e-mail, phone
normalisation, formula unescaping) and on the job runner (progress, failure message), like
`interactions.imports`.

A row names its member by member number, or its customer by e-mail or phone (normalised, like the
customer import); a customer who is not a member yet is enrolled (without the sign-up bonus: the old
system gave it). Its points become one ledger entry of kind "opening" (a lot: it expires on the row's
date, or by the programme's rule from the import day), keyed by the file's SHA-256 and the row
number: importing the same file again writes nothing twice, and a member who already has an opening
balance from another file is refused at their row. Optional columns set the member's tier and
member number.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
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
from crm.jobs.services import job_create, job_enqueue, job_requeue, job_wait_for_user
from customers.imports import parsing
from customers.imports.columns import normalise_header
from customers.imports.values import CellError, PhoneNormaliser, clean_date, clean_email, unescape_formula
from customers.models import Customer
from customers.phone import current_region

from .models import Member, PointsEntry, Programme, Tier, TierChange

JOB_KIND = "loyalty.opening_import"
STAGE_MAPPING = "mapping"
STAGE_CHECKING = "checking"
STAGE_PREVIEW = "preview"
STAGE_WRITING = "writing"
STAGE_DONE = "done"
STAGE_REFUSED = "refused"
ERRORS_KEPT = 500
BATCH = 2_000
MAX_POINTS = 10_000_000
KEY_PREFIX = "opening:"
_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-]{0,19}$")
_OWN_NUMBER = re.compile(r"^M\d{8}$")  # the numbers the CRM gives (M + customer id)
_LOCK = "loyalty.opening_import"


@dataclass(frozen=True)
class Target:
    key: str
    label: Any
    synonyms: tuple[str, ...] = ()


TARGETS = (
    Target(
        "member_number", _("Member number"), ("member", "member no", "card", "会员号", "会员编号", "会员卡号")
    ),
    Target("customer_email", _("Customer email"), ("email", "e-mail", "邮箱", "电子邮件")),
    Target("customer_phone", _("Customer phone"), ("phone", "mobile", "手机", "电话号码")),
    Target("points", _("Points"), ("balance", "opening balance", "积分", "积分余额")),
    Target("expires_on", _("Points expire on"), ("expiry", "expires", "expiry date", "到期日", "过期日期")),
    Target("tier", _("Tier"), ("level", "vip", "等级", "会员等级")),
    Target("new_number", _("Member number to set"), ("new member number", "新会员号")),
)
TARGET_KEYS = {t.key for t in TARGETS}
MATCH_KEYS = ("member_number", "customer_email", "customer_phone")


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
        raise PermissionDenied(_t("Only managers and admins can import opening balances."))


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
        action="loyalty.opening_import_uploaded",
        target=job,
        changes={"file": filename},
        label=filename,
    )
    return job


def import_start(*, actor: User, job: BackgroundJob, mapping: list[str]) -> BackgroundJob:
    """Save the mapping and check every row in the background (it ends in a preview or the errors)."""
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
    if "points" not in chosen:
        errors.append(_("Choose the column for “%(field)s”.") % {"field": _t("Points")})
    if not any(key in chosen for key in MATCH_KEYS):
        errors.append(_("Choose a column that identifies the member: member number, e-mail or phone."))
    if errors:
        raise ValidationError(errors)
    params.update({"stage": STAGE_CHECKING, "mapping": mapping, "language": translation.get_language()})
    job = job_requeue(job=job, params=params, clear_result=True)
    _enqueue(job)
    return job


def import_confirm(*, actor: User, job: BackgroundJob) -> BackgroundJob:
    """After the preview: write every row in the background (checked again inside the transaction)."""
    _require_manager(actor)
    params = dict(job.params)
    if params.get("stage") != STAGE_PREVIEW:
        raise ValidationError(_("This import cannot be confirmed now."))
    params.update({"stage": STAGE_WRITING, "language": translation.get_language()})
    job = job_requeue(job=job, params=params, clear_result=False)
    _enqueue(job)
    audit_record(
        actor=actor,
        action="loyalty.opening_import_confirmed",
        target=job,
        changes={"file": params.get("filename")},
        label=params.get("filename", ""),
    )
    return job


def _enqueue(job: BackgroundJob) -> None:
    from .tasks import opening_import_task

    job_enqueue(job=job, task=opening_import_task)


# --- checking rows ------------------------------------------------------------------------------------


@dataclass
class RowProblem:
    row: int
    column: str
    message: str


@dataclass
class CleanRow:
    row: int
    customer_id: int
    member_id: int | None  # None: to enrol
    points: int
    expires_on: date | None
    tier_id: int | None
    new_number: str
    key: str


class _Lookups:
    """Everything a row is matched against, loaded once per import (in bulk, never per row)."""

    def __init__(self, rows: list[tuple[int, dict[str, str]]]):
        self.phone = PhoneNormaliser(current_region())
        self.tiers: dict[str, int] = {}
        for pk, name in Tier.objects.values_list("pk", "name"):
            self.tiers[name.strip().casefold()] = pk
        numbers, emails, phones, new_numbers = set(), set(), set(), set()
        for _n, values in rows:
            if values.get("member_number", "").strip():
                numbers.add(_member_number(values["member_number"]))
            if values.get("customer_email", "").strip():
                with contextlib.suppress(CellError):
                    emails.add(clean_email(values["customer_email"]))
            if values.get("customer_phone", "").strip():
                with contextlib.suppress(CellError):
                    phones.add(self.phone(values["customer_phone"]))
            if values.get("new_number", "").strip():
                new_numbers.add(values["new_number"].strip().upper()[:20])
        live = Customer.objects.filter(deleted_at__isnull=True, merged_into__isnull=True)
        members = Member.objects.filter(customer__deleted_at__isnull=True)
        self.by_number = dict(members.filter(number__in=numbers).values_list("number", "customer_id"))
        self.by_email: dict[str, list[int]] = {}
        for pk, email in live.filter(email__in=emails).values_list("pk", "email") if emails else []:
            self.by_email.setdefault(email, []).append(pk)
        self.by_phone: dict[str, list[int]] = {}
        for pk, phone in live.filter(phone__in=phones).values_list("pk", "phone") if phones else []:
            self.by_phone.setdefault(phone, []).append(pk)
        customer_ids = set(self.by_number.values())
        customer_ids |= {pk for pks in (*self.by_email.values(), *self.by_phone.values()) for pk in pks}
        self.member_of = dict(
            Member.objects.filter(customer_id__in=customer_ids).values_list("customer_id", "pk")
        )
        self.numbers_taken = dict(
            Member.objects.filter(number__in=new_numbers).values_list("number", "customer_id")
        )
        # Members who already have an opening balance, and from which file (the key's hash part).
        self.opened: dict[int, str] = {}
        for member_id, key in PointsEntry.objects.filter(
            kind=PointsEntry.Kind.OPENING, member_id__in=set(self.member_of.values())
        ).values_list("member_id", "source_key"):
            self.opened.setdefault(member_id, key)


def _member_number(raw: str) -> str:
    return raw.strip().upper()[:20]


def _points(raw: str) -> int:
    text = raw.strip().replace(",", "").replace(" ", "")
    if not text:
        raise CellError(_t("Give the points."))
    if len(text) > 12 or not re.fullmatch(r"-?\d+", text):
        raise CellError(_t("Enter a whole number of points."))
    value = int(text)
    if value < 0:
        raise CellError(_t("Points cannot be negative."))
    if value > MAX_POINTS:
        raise CellError(_t("At most %(max)s points.") % {"max": f"{MAX_POINTS:,}"})
    return value


def _customer_for(values: dict[str, str], lookups: _Lookups, problem) -> int | None:
    raw_number = values.get("member_number", "").strip()
    raw_email = values.get("customer_email", "").strip()
    raw_phone = values.get("customer_phone", "").strip()
    if raw_number:
        customer_id = lookups.by_number.get(_member_number(raw_number))
        if customer_id is None:
            problem("member_number", _t("No member has the number “%(value)s”.") % {"value": raw_number[:40]})
        return customer_id
    for key, raw, index, noun in (
        ("customer_email", raw_email, "by_email", "e-mail"),
        ("customer_phone", raw_phone, "by_phone", "phone"),
    ):
        if not raw:
            continue
        try:
            normalised = clean_email(raw) if key == "customer_email" else lookups.phone(raw)
        except CellError as error:
            problem(key, error.message)
            return None
        matches = getattr(lookups, index).get(normalised, [])
        if len(matches) == 1:
            return matches[0]
        if not matches:
            problem(
                key,
                _t("No customer has this e-mail.")
                if noun == "e-mail"
                else _t("No customer has this phone number."),
            )
        else:
            problem(
                key,
                _t("Several customers have this e-mail; use the member number.")
                if noun == "e-mail"
                else _t("Several customers have this phone number; use the member number."),
            )
        return None
    key = next((k for k in MATCH_KEYS if k in values), "member_number")
    problem(key, _t("Give the member number, or the customer's e-mail or phone."))
    return None


def _check_rows(
    rows: list[tuple[int, dict[str, str]]], labels: dict[str, str], file_hash: str, run: JobRun | None
) -> tuple[list[CleanRow], list[RowProblem]]:
    lookups = _Lookups(rows)
    today = timezone.localdate()
    problems: list[RowProblem] = []
    cleaned: list[CleanRow] = []
    seen_customers: dict[int, int] = {}
    seen_numbers: dict[str, int] = {}
    total = max(1, len(rows))
    for index, (number, values) in enumerate(rows, start=1):
        row_problems: list[tuple[str, str]] = []

        def problem(key: str, message: str, _problems=row_problems) -> None:
            _problems.append((labels.get(key, key), message))

        customer_id = _customer_for(values, lookups, problem)
        member_id = lookups.member_of.get(customer_id) if customer_id else None
        if customer_id is not None:
            first = seen_customers.setdefault(customer_id, number)
            if first != number:
                key = next(k for k in MATCH_KEYS if values.get(k, "").strip())
                problem(key, _t("This member is already in row %(row)s of the file.") % {"row": first})
        key = f"{KEY_PREFIX}{file_hash}:{number}"
        if (
            member_id is not None
            and member_id in lookups.opened
            and not lookups.opened[member_id].startswith(f"{KEY_PREFIX}{file_hash}:")
        ):
            problem("points", _t("This member already has an opening balance from another file."))
        points = 0
        try:
            points = _points(values.get("points", ""))
        except CellError as error:
            problem("points", error.message)
        expires_on = None
        raw_expiry = values.get("expires_on", "").strip()
        if raw_expiry:
            try:
                expires_on = clean_date(raw_expiry[:40])
            except CellError as error:
                problem("expires_on", error.message)
            else:
                if expires_on <= today:
                    problem("expires_on", _t("This date has passed; the points would expire at once."))
        tier_id = None
        raw_tier = values.get("tier", "").strip()
        if raw_tier:
            tier_id = lookups.tiers.get(raw_tier[:60].casefold())
            if tier_id is None:
                problem("tier", _t("“%(value)s” is not one of the tiers.") % {"value": raw_tier[:40]})
        new_number = values.get("new_number", "").strip().upper()
        if new_number:
            owner = lookups.numbers_taken.get(new_number[:20])
            if not _NUMBER.match(new_number):
                problem("new_number", _t("Use up to 20 letters, digits or dashes."))
            elif _OWN_NUMBER.match(new_number) and new_number != f"M{customer_id or 0:08d}":
                problem("new_number", _t("Numbers like M00001234 are the CRM's own; choose another."))
            elif owner is not None and owner != customer_id:
                problem(
                    "new_number", _t("Another member has the number “%(value)s”.") % {"value": new_number}
                )
            elif seen_numbers.setdefault(new_number, number) != number:
                problem(
                    "new_number",
                    _t("The number “%(value)s” is also in row %(row)s.")
                    % {"value": new_number, "row": seen_numbers[new_number]},
                )
        for column, message in row_problems:
            problems.append(RowProblem(number, column, str(message)))
        if not row_problems:
            cleaned.append(
                CleanRow(number, customer_id, member_id, points, expires_on, tier_id, new_number, key)
            )
        if run is not None and index % BATCH == 0:
            run.progress(5 + 60 * index // total, JobMessage(gettext_noop("Checking rows")))
    return cleaned, problems


# --- the job body ------------------------------------------------------------------------------------


def import_run(*, job_id: int) -> None:
    """Check (stage "checking": ends in the preview) or write (stage "writing") an import."""
    run_job(
        job_id,
        _import,
        failure_message=_("The import failed. Nothing was written. Please try again."),
        start_if=None,
    )


def _file_hash(job: BackgroundJob) -> str:
    digest = hashlib.sha256()
    with job.input_file.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:32]


def _refuse(run: JobRun, params: dict, rows: int, problems: list[RowProblem]) -> None:
    params["stage"] = STAGE_REFUSED
    run.succeed(
        result={
            "rows": rows,
            "error_count": len(problems),
            "errors": [p.__dict__ for p in problems[:ERRORS_KEPT]],
        },
        message=JobMessage(
            gettext_noop("%(count)d problems found; nothing was imported. Fix the file and upload it again."),
            count=len(problems),
        ),
        params=params,
    )


def _import(run: JobRun) -> None:
    job = run.job
    params = dict(run.params)
    stage = params.get("stage")
    if stage not in (STAGE_CHECKING, STAGE_WRITING):
        run.fail(message=JobMessage(gettext_noop("This import is not waiting to run.")), params=params)
        return
    actor = job.created_by
    if actor is None or not user_has_role(actor, MANAGERS):
        run.fail(
            message=JobMessage(gettext_noop("The user who started this import may no longer import.")),
            params=params,
        )
        return
    with job.input_file.open("rb") as handle:
        parsed = parsing.parse_upload(handle, params.get("filename", "upload"))
    file_hash = params.get("file_hash") or _file_hash(job)
    params["file_hash"] = file_hash
    mapping = params["mapping"]
    labels = {key: header for key, header in zip(mapping, parsed.headers, strict=False) if key}
    rows = [
        (number, {key: unescape_formula(cell) for key, cell in zip(mapping, cells, strict=False) if key})
        for number, cells in parsed.rows
    ]
    width_problems = [
        RowProblem(number, "", _t("This row has a different number of columns than the header."))
        for number in sorted(parsed.width_errors)
    ]
    run.progress(5, JobMessage(gettext_noop("Checking rows")))
    if stage == STAGE_CHECKING:
        cleaned, problems = _check_rows(rows, labels, file_hash, run)
        problems += width_problems
        if problems:
            _refuse(run, params, len(rows), problems)
            return
        done = set(
            PointsEntry.objects.filter(
                kind=PointsEntry.Kind.OPENING, source_key__in=[r.key for r in cleaned]
            ).values_list("source_key", flat=True)
        )
        params["stage"] = STAGE_PREVIEW
        todo = [r for r in cleaned if r.key not in done]
        run.succeed(
            result={
                "rows": len(rows),
                "error_count": 0,
                "errors": [],
                "preview": {
                    "new_members": sum(1 for r in todo if r.member_id is None),
                    "existing_members": sum(1 for r in todo if r.member_id is not None),
                    "points": sum(r.points for r in todo),
                    "tiers": sum(1 for r in todo if r.tier_id),
                    "numbers": sum(1 for r in todo if r.new_number),
                    "already_imported": len(cleaned) - len(todo),
                },
            },
            message=JobMessage(gettext_noop("Every row is good. Check the figures and confirm the import.")),
            params=params,
        )
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            # One opening import at a time per company: the check and the write see the same state.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{connection.schema_name}:{_LOCK}"]
            )
        cleaned, problems = _check_rows(rows, labels, file_hash, run)
        problems += width_problems
        if problems:
            transaction.set_rollback(True)
        else:
            run.progress(70, JobMessage(gettext_noop("Writing opening balances")))
            written = _write(cleaned, actor=actor)
            audit_record(
                actor=actor,
                action="loyalty.opening_imported",
                target=job,
                changes={"file": params.get("filename"), "rows": len(rows), **written},
                label=params.get("filename", ""),
            )
            params["stage"] = STAGE_DONE
            message = (
                JobMessage(
                    gettext_noop("%(count)d opening balances imported (%(points)s points)."),
                    count=written["entries"],
                    points=written["points"],
                )
                if written["entries"]
                else JobMessage(
                    gettext_noop("Nothing new to import: every row of this file was imported before.")
                )
            )
            run.succeed(
                result={"rows": len(rows), "error_count": 0, "errors": [], "written": written},
                message=message,
                params=params,
            )
            return
    _refuse(run, params, len(rows), problems)


def _write(cleaned: list[CleanRow], *, actor: User) -> dict[str, int]:
    """Enrol the new members, then credit every row not written before, set tiers and numbers; in the
    caller's transaction, with the members' rows locked in id order."""
    from .services import _entry_tier, _expires_on, _tiers, member_number_for

    now = timezone.now()
    today = timezone.localdate()
    programme = Programme.objects.filter(pk=1).first() or Programme()
    done = set(
        PointsEntry.objects.filter(
            kind=PointsEntry.Kind.OPENING, source_key__in=[r.key for r in cleaned]
        ).values_list("source_key", flat=True)
    )
    todo = [r for r in cleaned if r.key not in done]
    entry_tier = _entry_tier(_tiers())
    new_rows = [r for r in todo if r.member_id is None]
    created = Member.objects.bulk_create(
        [
            Member(
                customer_id=r.customer_id,
                number=r.new_number or member_number_for(r.customer_id),
                joined_at=now,
                tier_id=r.tier_id or (entry_tier.pk if entry_tier else None),
                tier_since=today if (r.tier_id or entry_tier) else None,
            )
            for r in new_rows
        ],
        batch_size=BATCH,
    )
    TierChange.objects.bulk_create(
        [
            TierChange(
                member=m, from_tier=None, to_tier_id=m.tier_id, reason=TierChange.Reason.JOINED, at=now
            )
            for m in created
        ],
        batch_size=BATCH,
    )
    for row, member in zip(new_rows, created, strict=True):
        row.member_id = member.pk
    member_ids = sorted({r.member_id for r in todo})
    locked = {
        m.pk: m
        for m in Member.objects.select_for_update()
        .filter(pk__in=member_ids)
        .order_by("pk")
        .only("pk", "balance", "tier_id", "number")
    }
    entries, balances = [], {}
    tier_changes: list[TierChange] = []
    renumbered: dict[int, str] = {}
    for row in todo:
        member = locked[row.member_id]
        if row.points:
            balances[member.pk] = balances.get(member.pk, member.balance) + row.points
            entries.append(
                PointsEntry(
                    member_id=member.pk,
                    kind=PointsEntry.Kind.OPENING,
                    points=row.points,
                    balance_after=balances[member.pk],
                    remaining=row.points,
                    expires_on=row.expires_on or _expires_on(programme, today),
                    source=PointsEntry.Source.IMPORT,
                    source_key=row.key,
                    actor=actor,
                    occurred_at=now,
                )
            )
        if row.tier_id and row.tier_id != member.tier_id:
            tier_changes.append(
                TierChange(
                    member_id=member.pk,
                    from_tier_id=member.tier_id,
                    to_tier_id=row.tier_id,
                    reason=TierChange.Reason.IMPORT,
                    at=now,
                )
            )
        if row.new_number and row.new_number != member.number:
            renumbered[member.pk] = row.new_number
    PointsEntry.objects.bulk_create(entries, batch_size=BATCH)
    TierChange.objects.bulk_create(tier_changes, batch_size=BATCH)
    table = connection.ops.quote_name(Member._meta.db_table)
    with connection.cursor() as cursor:
        if balances:
            cursor.execute(
                f"UPDATE {table} AS m SET balance = u.balance, updated_at = now() "  # noqa: S608
                "FROM unnest(%s::bigint[], %s::int[]) AS u(id, balance) WHERE m.id = u.id",
                [list(balances), list(balances.values())],
            )
        if tier_changes:
            cursor.execute(
                f"UPDATE {table} AS m SET tier_id = u.tier, tier_since = %s, below_tier_since = NULL, "  # noqa: S608
                "updated_at = now() FROM unnest(%s::bigint[], %s::bigint[]) AS u(id, tier) WHERE m.id = u.id",
                [today, [c.member_id for c in tier_changes], [c.to_tier_id for c in tier_changes]],
            )
        if renumbered:
            cursor.execute(
                f"UPDATE {table} AS m SET number = u.number, updated_at = now() "  # noqa: S608
                "FROM unnest(%s::bigint[], %s::text[]) AS u(id, number) WHERE m.id = u.id",
                [list(renumbered), list(renumbered.values())],
            )
    return {
        "entries": len(entries),
        "points": sum(e.points for e in entries),
        "enrolled": len(created),
        "tiers": len(tier_changes),
        "numbers": len(renumbered),
        "skipped": len(cleaned) - len(todo),
    }
