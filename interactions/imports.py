"""Import of historical interactions (CSV / XLSX), an import kind of `customers.imports.kinds`:
upload -> column mapping -> a background check of every row -> preview (counts, every problem with
row and column, the first rows as they will be written) -> confirm -> all rows written in one
transaction, or none.

What is particular to interactions is here: the fields a column can fill, the mapping rule (a date,
a channel and a column that identifies the customer) and the rows' checks. Customers are matched by
CRM id, else e-mail, else phone; a row that matches no live customer, or several, is an error at its
row and column. Reading the file, the job and its stages, the preview, the tasks and idempotence are
the seam's (see customers/imports/kinds.py).
"""

from __future__ import annotations

import contextlib
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from crm.accounts.models import User
from crm.jobs.models import BackgroundJob
from customers.imports import kinds
from customers.imports.kinds import CheckedRows, ImportKind, RowProblem, Target
from customers.imports.values import CellError, PhoneNormaliser, clean_datetime, clean_email
from customers.models import Customer, Order
from customers.phone import current_region

from .labels import DEFAULT_OUTCOMES, Channel, Direction
from .models import Interaction, InteractionOutcome
from .services import DURATION_MAX, NOTES_MAX, SUBJECT_MAX, future_limit

JOB_KIND = "interactions.import"
STAGE_MAPPING = kinds.STAGE_MAPPING
STAGE_CHECKING = kinds.STAGE_CHECKING
STAGE_PREVIEW = kinds.STAGE_PREVIEW
STAGE_IMPORTING = kinds.STAGE_IMPORTING
STAGE_DONE = kinds.STAGE_DONE
BATCH = 2_000

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
every_language = kinds.every_language


def check_mapping(mapping: list[str]) -> list[str]:
    chosen = [key for key in mapping if key]
    errors = []
    for key in REQUIRED:
        if key not in chosen:
            label = next(str(t.label) for t in TARGETS if t.key == key)
            errors.append(_t("Choose the column for “%(field)s”.") % {"field": label})
    if not any(key in chosen for key in MATCH_KEYS):
        errors.append(_t("Choose a column that identifies the customer: CRM id, e-mail or phone."))
    return errors


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
                names |= every_language(DEFAULT_OUTCOMES[outcome.key])
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
            for name in (value, *every_language(label)):
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


def check_rows(rows: list[tuple[int, dict[str, str]]], labels: dict[str, str]) -> CheckedRows:
    lookups = _Lookups(rows)
    now = timezone.now()
    checked = CheckedRows(rows=[])
    names: dict[int, str] = {}
    for number, values in rows:
        fields, row_problems = _clean_row(values, lookups, labels, now)
        for column, message in row_problems:
            checked.problems.append(RowProblem(number, column, str(message)))
        if not row_problems:
            checked.rows.append(fields)
    preview = checked.rows[: kinds.PREVIEW_ROWS]
    if preview:
        ids = {f["customer_id"] for f in preview}
        names = dict(Customer.objects.filter(pk__in=ids).values_list("pk", "name"))
    channels, directions = dict(Channel.choices), dict(Direction.choices)
    for fields in preview:
        checked.preview.append(
            {
                "customer_id": names.get(fields["customer_id"], ""),
                "occurred_at": date_format(timezone.localtime(fields["occurred_at"]), "Y-m-d H:i"),
                "channel": str(channels.get(fields["channel"], "")),
                "direction": str(directions.get(fields["direction"], "")),
                "subject": fields["subject"][:80],
            }
        )
    return checked


def write_rows(actor: User, rows: list[dict[str, Any]], job: BackgroundJob) -> int:
    objects = [Interaction(author_id=f.pop("author_id") or actor.pk, **f) for f in rows]
    Interaction.objects.bulk_create(objects, batch_size=BATCH)
    return len(objects)


KIND = ImportKind(
    key=JOB_KIND,
    noun=_("interactions"),
    targets=TARGETS,
    check_mapping=check_mapping,
    check_rows=check_rows,
    write=write_rows,
    refused=_("Only managers and admins can import interactions."),
    audit_uploaded="interactions.import_uploaded",
    audit_imported="interactions.imported",
)


def register() -> None:
    kinds.register_import_kind(KIND)


def guess_mapping(headers: list[str]) -> list[str]:
    return kinds.guess_mapping(KIND, headers)


def import_upload(*, actor: User, uploaded_file) -> BackgroundJob:
    return kinds.kind_upload(kind=KIND, actor=actor, uploaded_file=uploaded_file)


def import_start(*, actor: User, job: BackgroundJob, mapping: list[str]) -> BackgroundJob:
    """Save the mapping and check every row in the background (the preview follows)."""
    return kinds.kind_set_mapping(kind=KIND, actor=actor, job=job, mapping=mapping)


def import_confirm(*, actor: User, job: BackgroundJob) -> BackgroundJob:
    return kinds.kind_confirm(kind=KIND, actor=actor, job=job)
