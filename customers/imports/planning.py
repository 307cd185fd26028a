"""Match validated rows to existing customers and orders and decide what the import will write.

The plan is computed in full before anything is written, for the preview and again inside the import
transaction. Matching: CRM ID, else external id, else email, else phone (a customer whose external
id differs from the row's is not the same customer). Rows of one file that name the same customer
are one customer: a repeat is an error in a customer list, and normal in an order list (one row per
order line).

Policies for records that already exist: "skip" leaves them as they are, "update" writes the
non-empty cells that differ (so importing the same file twice changes nothing the second time),
"create" makes new customers even when one with the same email or phone exists.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.models import Customer, Order, OrderLine, Tag
from customers.search import build_search_text
from customers.search_index import search_columns

from .columns import CUSTOM_PREFIX, target_label
from .validation import SLOT_CUSTOMER, CleanRow, ImportContext, RowError, _slot

POLICY_SKIP = "skip"
POLICY_UPDATE = "update"
POLICY_CREATE = "create"
POLICIES = (POLICY_SKIP, POLICY_UPDATE, POLICY_CREATE)

SEARCH_FIELDS = ("name", "email", "phone", "external_id")
ORDER_COMPARE_FIELDS = ("placed_at", "status", "channel", "currency", "total")
MONEY = Decimal("0.01")


SEARCH_TEXT_FULL = "full"
SEARCH_TEXT_NONE = "none"


@dataclass
class ImportOptions:
    policy: str = POLICY_UPDATE
    default_owner_id: int | None = None
    default_source: str = Customer.Source.IMPORT
    # How the search_text of a changed customer is built: "full" (customers.search.build_search_text,
    # with the simplified and pinyin forms of Chinese names, written with the row itself so nothing is
    # rewritten after the import) or "none" (a preview, which writes nothing). A new customer's is
    # made by the writer (customers.imports.writing), while it inserts the rows before.
    search_text: str = SEARCH_TEXT_FULL


@dataclass(eq=False)
class NewCustomer:
    row: int
    fields: dict[str, Any]
    custom: dict[str, Any]
    tags: list[str]
    id: int | None = None  # assigned when written


@dataclass(eq=False)
class CustomerChange:
    id: int
    row: int
    label: str
    fields: dict[str, Any]  # column -> new value (only the ones that change)
    custom_patch: dict[str, Any]
    tags_add: list[str]
    diff: dict[str, dict[str, Any]]  # for the audit record
    search_text: str | None
    search_columns: dict[str, list[str]] | None = None  # with search_text, always (customers.search_index)


@dataclass(eq=False)
class OrderWrite:
    row: int
    number: str
    customer: "int | NewCustomer"
    fields: dict[str, Any]
    lines: list[dict[str, Any]] | None
    existing_id: int | None = None
    replace_lines: bool = False
    diff: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def customer_id(self) -> int:
        return self.customer if isinstance(self.customer, int) else self.customer.id


@dataclass
class ImportPlan:
    new_customers: list[NewCustomer] = field(default_factory=list)
    customer_changes: list[CustomerChange] = field(default_factory=list)
    new_orders: list[OrderWrite] = field(default_factory=list)
    order_changes: list[OrderWrite] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    invalid_rows: set[int] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    # Existing customers whose orders change (for refreshing their order figures).
    touched_customer_ids: set[int] = field(default_factory=set)

    def changed_customer_ids(self) -> list[int]:
        """Every customer the written plan created or changed, or whose orders it created, changed or
        moved away (call after writing: new customers have their ids then)."""
        ids = {c.id for c in self.new_customers} | {c.id for c in self.customer_changes}
        ids |= {o.customer_id for o in self.new_orders} | {o.customer_id for o in self.order_changes}
        return sorted(ids | self.touched_customer_ids)

    @property
    def writes_anything(self) -> bool:
        return bool(self.new_customers or self.customer_changes or self.new_orders or self.order_changes)


# --- what exists ------------------------------------------------------------------------------------


@dataclass
class _Existing:
    id: int
    name: str
    external_id: str
    email: str
    phone: str
    deleted: bool


class CustomerIndex:
    """The keys of every customer in the tenant (one query), for matching rows to customers."""

    def __init__(self, rows):
        self.by_id: dict[int, _Existing] = {}
        self.by_external: dict[str, int] = {}
        self.by_email: dict[str, list[int]] = defaultdict(list)
        self.by_phone: dict[str, list[int]] = defaultdict(list)
        for pk, name, external_id, email, phone, deleted_at in rows:
            self.by_id[pk] = _Existing(pk, name, external_id, email, phone, deleted_at is not None)
            if external_id:
                self.by_external[external_id] = pk
            if email:
                self.by_email[email.lower()].append(pk)
            if phone:
                self.by_phone[phone].append(pk)

    @classmethod
    def load(cls) -> "CustomerIndex":
        return cls(
            Customer._base_manager.order_by("id").values_list(
                "id", "name", "external_id", "email", "phone", "deleted_at"
            )
        )

    def _first_compatible(self, ids: list[int], external_id: str) -> int | None:
        # Prefer a customer not in the recycle bin; never one that has another external id.
        candidates = [pk for pk in ids if not external_id or not self.by_id[pk].external_id]
        live = [pk for pk in candidates if not self.by_id[pk].deleted]
        return (live or candidates or [None])[0]

    def match(self, row: CleanRow) -> tuple[int | None, str]:
        """(customer id, the target key it matched on) or (None, "")."""
        data = row.customer
        external_id = data.get("external_id", "")
        if row.crm_id is not None:
            return (row.crm_id, "id") if row.crm_id in self.by_id else (None, "id")
        if external_id and external_id in self.by_external:
            return self.by_external[external_id], "external_id"
        email = data.get("email", "")
        if email and email in self.by_email:
            pk = self._first_compatible(self.by_email[email], external_id)
            if pk is not None:
                return pk, "email"
        phone = data.get("phone", "")
        if phone and phone in self.by_phone:
            pk = self._first_compatible(self.by_phone[phone], external_id)
            if pk is not None:
                return pk, "phone"
        return None, ""


def _fetch(sql: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def load_current_customers(ids: list[int], fields: set[str]) -> dict[int, dict[str, Any]]:
    """Current values of the given columns (plus tags) for the matched customers."""
    if not ids:
        return {}
    columns = sorted(fields | {"name", "email", "phone", "external_id", "custom_fields"})
    columns = [c for c in columns if c != "owner_id"] + (["owner_id"] if "owner_id" in fields else [])
    if "email_consent" in fields:
        columns.append("email_consent_at")
    if "sms_consent" in fields:
        columns.append("sms_consent_at")
    # One query joined to the ids (not an IN list of 20,000 parameters, nor the ORM's converter per
    # value): the values are what .values() gives, converted by the fields that convert (JSON).
    by_attname = {f.attname: f for f in Customer._meta.concrete_fields}
    names = ["id", *columns]
    select = ", ".join(f"c.{by_attname[name].column}" for name in names)
    converters = [
        (position, by_attname[name])
        for position, name in enumerate(names)
        if hasattr(by_attname[name], "from_db_value")
    ]
    current: dict[int, dict[str, Any]] = {}
    for record in _fetch(
        f"SELECT {select} FROM unnest(%s::bigint[]) AS ids(id) "  # noqa: S608
        f"JOIN {Customer._meta.db_table} c ON c.id = ids.id",
        [ids],
    ):
        values = dict(zip(names, record, strict=True))
        for position, converting in converters:
            values[names[position]] = converting.from_db_value(record[position], None, connection)
        values["tags"] = []
        current[values["id"]] = values
    through = Customer.tags.through._meta.db_table
    tag_table = Tag._meta.db_table
    for customer_id, name in _fetch(
        # A join with unnest (not "= ANY(array)") so a long list of ids is hashed, not scanned per row.
        f"SELECT ct.customer_id, t.name FROM unnest(%s::bigint[]) AS ids(id) "  # noqa: S608
        f"JOIN {through} ct ON ct.customer_id = ids.id "
        f"JOIN {tag_table} t ON t.id = ct.tag_id AND t.deleted_at IS NULL ORDER BY t.name",
        [ids],
    ):
        current[customer_id]["tags"].append(name)
    return current


def load_orders(numbers: list[str]) -> dict[str, dict[str, Any]]:
    if not numbers:
        return {}
    table = Order._meta.db_table
    orders: dict[str, dict[str, Any]] = {}
    by_id: dict[int, dict[str, Any]] = {}
    for pk, number, customer_id, placed_at, status, channel, currency, total, refunded in _fetch(
        f"SELECT id, number, customer_id, placed_at, status, channel, currency, total, refunded_total "  # noqa: S608
        f"FROM unnest(%s::text[]) AS wanted(number) JOIN {table} USING (number)",
        [numbers],
    ):
        order = {
            "id": pk,
            "customer_id": customer_id,
            "placed_at": placed_at,
            "status": status,
            "channel": channel,
            "currency": currency,
            "total": total,
            "refunded_total": refunded,
            "lines": [],
        }
        orders[number] = order
        by_id[pk] = order
    if by_id:
        for order_id, sku, product_name, category, quantity, unit_price in _fetch(
            "SELECT order_id, sku, product_name, category, quantity, unit_price "
            f"FROM unnest(%s::bigint[]) AS ids(wanted) JOIN {OrderLine._meta.db_table} "  # noqa: S608
            "ON order_id = ids.wanted ORDER BY order_id, id",
            [list(by_id)],
        ):
            by_id[order_id]["lines"].append((sku, product_name, category, quantity, unit_price))
    return orders


# --- the plan ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Identity:
    """One customer as the file sees it: an existing customer or one to create."""

    existing_id: int | None
    matched_by: str
    rows: list[CleanRow] = field(default_factory=list)
    new: NewCustomer | None = None


def _line_key(line: dict[str, Any]) -> tuple:
    return (
        line.get("sku", ""),
        line.get("product_name", "") or line.get("sku", ""),
        line.get("category", ""),
        Decimal(line.get("quantity", Decimal("1"))).quantize(MONEY),
        Decimal(line["unit_price"]).quantize(MONEY),
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


class Planner:
    def __init__(
        self,
        *,
        rows: list[CleanRow],
        errors: list[RowError],
        mapping: list[str],
        headers: list[str],
        context: ImportContext,
        options: ImportOptions,
        invalid_order_numbers: set[str],
        index: CustomerIndex | None = None,
        owner_labels: dict[int, str] | None = None,
    ):
        self.rows = rows
        self.plan = ImportPlan(errors=list(errors), invalid_rows={e.row for e in errors})
        self.mapping = mapping
        self.header_of = {key: headers[i] for i, key in enumerate(mapping) if key and i < len(headers)}
        self.context = context
        self.options = options
        self.invalid_order_numbers = invalid_order_numbers
        self.index = index if index is not None else CustomerIndex.load()
        self.owner_labels = owner_labels or {}
        self.has_orders = "order_number" in mapping
        self.existing_orders: dict[str, dict[str, Any]] = {}
        self.required_custom = [s for s in context.custom_fields if s.required]
        self.now = timezone.now()
        # What the rows met so far say (kept across chunks when a customer list is planned in chunks)
        self.row_identity: dict[int, _Identity] = {}
        self._by_existing: dict[int, _Identity] = {}
        self._by_file_key: dict[tuple[str, str], _Identity] = {}
        self._claimed: dict[str, _Identity] = {}  # external id -> the customer of this file it goes to
        self._matched_later: list[_Identity] = []  # existing customers met in chunks, planned at the end

    def column(self, key: str) -> str:
        return self.header_of.get(key) or target_label(key, [])

    def error(self, row: int, key: str, message: str) -> None:
        self.plan.errors.append(RowError(row, self.column(key), message))
        self.plan.invalid_rows.add(row)

    # pass 1: who is each row's customer? (`rows`: the next rows of the file, all of them by default;
    # a row is only ever compared with the rows before it)
    def resolve_identities(self, rows: list[CleanRow] | None = None) -> list[_Identity]:
        identities: list[_Identity] = []
        by_existing = self._by_existing
        by_file_key = self._by_file_key
        policy = self.options.policy
        for row in self.rows if rows is None else rows:
            data = row.customer
            existing_id, matched_by = self.index.match(row)
            if matched_by == "id" and existing_id is None:
                self.error(row.row, "id", _("No customer has CRM ID %(id)s.") % {"id": row.crm_id})
                continue
            if existing_id is not None:
                existing = self.index.by_id[existing_id]
                external_id = data.get("external_id", "")
                if (
                    external_id
                    and external_id != existing.external_id
                    and external_id in self.index.by_external
                ):
                    self.error(row.row, "external_id", _("Another customer already has this external id."))
                    continue
                if policy == POLICY_CREATE and matched_by in ("id", "external_id"):
                    self.error(
                        row.row,
                        matched_by,
                        _("This customer already exists; choose “update” or “skip” to import this row."),
                    )
                    continue
                if policy == POLICY_CREATE:
                    existing_id, matched_by = None, ""
                elif existing.deleted:
                    self.error(
                        row.row,
                        matched_by,
                        _("This matches a customer in the recycle bin; restore it first."),
                    )
                    continue
            file_keys = self._file_keys(row)
            identity = by_existing.get(existing_id) if existing_id is not None else None
            if identity is None and existing_id is None:
                identity = next((by_file_key[k] for k in file_keys if k in by_file_key), None)
            if identity is not None:
                if row.order is None or not self.has_orders:
                    first = identity.rows[0].row
                    self.error(
                        row.row,
                        identity.matched_by or self._first_key_name(row),
                        _("The same customer as row %(row)d.") % {"row": first},
                    )
                    continue
            else:
                if existing_id is None and not data.get("name"):
                    if file_keys or row.order:
                        self.error(row.row, "name", _("A name is required to create a new customer."))
                    else:
                        self.error(row.row, "name", _("The row does not say who the customer is."))
                    continue
                if existing_id is None:
                    missing = [s for s in self.required_custom if s.key not in row.custom]
                    if missing:
                        for spec in missing:
                            self.plan.errors.append(
                                RowError(
                                    row.row,
                                    self.header_of.get(f"{CUSTOM_PREFIX}{spec.key}", spec.label),
                                    _("“%(field)s” is required for a new customer.") % {"field": spec.label},
                                )
                            )
                        self.plan.invalid_rows.add(row.row)
                        continue
                identity = _Identity(existing_id=existing_id, matched_by=matched_by)
                identities.append(identity)
                if existing_id is not None:
                    by_existing[existing_id] = identity
            identity.rows.append(row)
            self.row_identity[row.row] = identity
            for key in file_keys:
                by_file_key.setdefault(key, identity)
        return identities

    def _file_keys(self, row: CleanRow) -> list[tuple[str, str]]:
        data = row.customer
        keys = []
        if data.get("external_id"):
            keys.append(("external_id", data["external_id"]))
        if data.get("email"):
            keys.append(("email", data["email"].lower()))
        if data.get("phone"):
            keys.append(("phone", data["phone"]))
        if not keys and row.order and data.get("name"):
            keys.append(("name", data["name"].lower()))
        return keys

    def _first_key_name(self, row: CleanRow) -> str:
        for key in ("external_id", "email", "phone", "name"):
            if row.customer.get(key):
                return key
        return "name"

    # pass 2: group order rows and check each order as a whole; a problem with an order makes every
    # row of it invalid (before customers are planned, so a left-out row creates nobody)
    def group_orders(self) -> dict[str, list[CleanRow]]:
        groups: dict[str, list[CleanRow]] = {}
        if not self.has_orders:
            return groups
        for row in self.rows:
            if row.row in self.plan.invalid_rows or not row.order:
                continue
            groups.setdefault(row.order["order_number"], []).append(row)
        self.existing_orders = load_orders(list(groups))
        policy = self.options.policy
        bad: set[str] = set()
        for number, rows in groups.items():
            if number in self.invalid_order_numbers:
                for row in rows:
                    self.error(
                        row.row,
                        "order_number",
                        _("Other rows of order %(number)s have errors, so the whole order is left out.")
                        % {"number": number},
                    )
                bad.add(number)
                continue
            owner = self.row_identity[rows[0].row]
            for row in rows[1:]:
                if self.row_identity[row.row] is not owner:
                    self.error(
                        row.row,
                        "order_number",
                        _("Order %(number)s is given to another customer in row %(row)d.")
                        % {"number": number, "row": rows[0].row},
                    )
                    bad.add(number)
            if number in bad:
                continue
            fields = self._order_fields(rows)
            has_lines = any(row.line for row in rows)
            existing = self.existing_orders.get(number)
            problem = None
            if existing is None:
                if "placed_at" not in fields:
                    problem = ("placed_at", _("The order date is missing."))
                elif "total" not in fields and not has_lines:
                    problem = ("total", _("The order total is missing."))
            elif policy == POLICY_CREATE:
                problem = ("order_number", _("An order with this number already exists."))
            elif (
                policy == POLICY_UPDATE and "total" in fields and fields["total"] < existing["refunded_total"]
            ):
                problem = ("total", _("The total is less than the amount already refunded on this order."))
            if problem is not None:
                self.error(rows[0].row, *problem)
                bad.add(number)
        for number in bad:
            for row in groups[number]:
                self.plan.invalid_rows.add(row.row)
        return {n: rows for n, rows in groups.items() if n not in bad}

    @staticmethod
    def _order_fields(rows: list[CleanRow]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for row in rows:
            for key, value in row.order.items():
                if key != "order_number":
                    fields.setdefault(key, value)
        return fields

    # pass 3: customers to create and to change
    def plan_customers(self, identities: list[_Identity]) -> None:
        plan = self.plan
        counts = plan.counts
        matched_ids = [i.existing_id for i in identities if i.existing_id is not None]
        fields = {key for identity in identities for row in identity.rows for key in row.customer}
        current = load_current_customers(matched_ids, fields) if self.options.policy == POLICY_UPDATE else {}
        claimed = self._claimed
        for identity in identities:
            rows = [r for r in identity.rows if r.row not in plan.invalid_rows]
            if not rows:
                continue
            if len(rows) == 1:  # most customers have one row: copy it (what the loop below makes)
                only = rows[0]
                merged, custom, tags = dict(only.customer), dict(only.custom), dict.fromkeys(only.tags)
            else:
                merged, custom, tags = {}, {}, {}
                for row in rows:
                    for key, value in row.customer.items():
                        merged.setdefault(key, value)
                    for key, value in row.custom.items():
                        custom.setdefault(key, value)
                    for tag in row.tags:
                        tags.setdefault(tag, None)
            if "email" in merged:
                merged["email"] = merged["email"].lower()
            first = rows[0].row
            external_id = merged.get("external_id")
            if external_id and (identity.existing_id is None or self.options.policy == POLICY_UPDATE):
                # Two customers of this file must not end up with the same external id.
                holder = claimed.setdefault(external_id, identity)
                if holder is not identity:
                    self.error(
                        first,
                        "external_id",
                        _("Row %(row)d gives this external id to another customer.")
                        % {"row": holder.rows[0].row},
                    )
                    plan.invalid_rows.update(r.row for r in rows)
                    continue
            if identity.existing_id is None:
                identity.new = self._new_customer(first, merged, custom, list(tags))
                plan.new_customers.append(identity.new)
                counts["customers_created"] = counts.get("customers_created", 0) + 1
            elif self.options.policy == POLICY_SKIP:
                counts["customers_skipped"] = counts.get("customers_skipped", 0) + 1
            else:
                change = self._change(identity.existing_id, first, merged, custom, list(tags), current)
                if change is None:
                    counts["customers_unchanged"] = counts.get("customers_unchanged", 0) + 1
                else:
                    plan.customer_changes.append(change)
                    counts["customers_updated"] = counts.get("customers_updated", 0) + 1

    def new_customer_columns(self) -> set[str]:
        """Every column `_new_customer` may set for this file (what a writer of new customers
        must stage before it has seen them all)."""
        slots = [_slot(key) for key in self.mapping if key]
        columns = {name for slot, name in slots if slot == SLOT_CUSTOMER}
        columns.add("source")
        if self.options.default_owner_id:
            columns.add("owner_id")
        columns.update(f"{c}_at" for c in ("email_consent", "sms_consent") if c in columns)
        return columns

    def _new_customer(self, row: int, merged, custom, tags) -> NewCustomer:
        fields = dict(merged)
        fields.setdefault("source", self.options.default_source)
        if "owner_id" not in fields and self.options.default_owner_id:
            fields["owner_id"] = self.options.default_owner_id
        for consent in ("email_consent", "sms_consent"):
            if fields.get(consent):
                fields[f"{consent}_at"] = self.now
        # (its search text is made by the writer, chunk by chunk, while the one before is inserted)
        return NewCustomer(row=row, fields=fields, custom=custom, tags=tags)

    def _change(self, customer_id: int, row: int, merged, custom, tags, current) -> CustomerChange | None:
        before = current[customer_id]
        fields: dict[str, Any] = {}
        diff: dict[str, dict[str, Any]] = {}
        for key, value in merged.items():
            old = before.get(key)
            if key == "email" and (old or "").lower() == value:
                continue
            if old == value:
                continue
            fields[key] = value
            if key == "owner_id":
                diff["owner"] = {"old": self.owner_labels.get(old), "new": self.owner_labels.get(value)}
            else:
                diff[key] = {"old": _json_safe(old), "new": _json_safe(value)}
            if key in ("email_consent", "sms_consent"):
                fields[f"{key}_at"] = self.now if value else None
        old_custom = before.get("custom_fields") or {}
        patch = {k: v for k, v in custom.items() if old_custom.get(k) != v}
        for key, value in patch.items():
            diff[f"custom_fields.{key}"] = {"old": old_custom.get(key), "new": value}
        have = {t.lower() for t in before["tags"]}
        tags_add = [t for t in tags if t.lower() not in have]
        if tags_add:
            diff["tags"] = {"old": sorted(before["tags"]), "new": sorted(before["tags"] + tags_add)}
        if not (fields or patch or tags_add):
            return None
        search_text = columns = None
        if any(k in fields for k in SEARCH_FIELDS):
            values = {k: fields.get(k, before.get(k) or "") for k in SEARCH_FIELDS}
            search_text = self._search_text(**values)
            columns = search_columns(search_text, values["name"])
        label = fields.get("name") or before.get("name") or ""
        return CustomerChange(
            id=customer_id,
            row=row,
            label=label,
            fields=fields,
            custom_patch=patch,
            tags_add=tags_add,
            diff=diff,
            search_text=search_text,
            search_columns=columns,
        )

    def _search_text(self, *, name: str, email: str, phone: str, external_id: str) -> str:
        """The row's search text, by the one rule every write path uses (customers.search; its
        name forms are cached per name, so a file's repeated names are converted once)."""
        if self.options.search_text == SEARCH_TEXT_NONE:
            return ""
        return build_search_text(name=name, email=email, phone=phone, external_id=external_id)

    # pass 4: orders (every check was made in pass 2)
    def plan_orders(self, groups: dict[str, list[CleanRow]]) -> None:
        plan = self.plan
        counts = plan.counts
        policy = self.options.policy
        for number, rows in groups.items():
            rows = [r for r in rows if r.row not in plan.invalid_rows]
            if not rows:
                continue
            identity = self.row_identity[rows[0].row]
            customer = identity.existing_id if identity.existing_id is not None else identity.new
            if customer is None:
                continue
            fields = self._order_fields(rows)
            lines = [row.line for row in rows if row.line]
            first = rows[0].row
            existing = self.existing_orders.get(number)
            if existing is None:
                if "total" not in fields:
                    fields["total"] = sum(
                        (k[3] * k[4] for k in map(_line_key, lines)), Decimal("0")
                    ).quantize(MONEY)
                fields.setdefault("status", Order.Status.PAID)
                fields.setdefault("channel", Order.Channel.STORE)
                fields.setdefault("currency", self.context.currency)
                plan.new_orders.append(OrderWrite(first, number, customer, fields, lines or None))
                counts["orders_created"] = counts.get("orders_created", 0) + 1
                counts["lines_created"] = counts.get("lines_created", 0) + len(lines)
                if isinstance(customer, int):
                    plan.touched_customer_ids.add(customer)
            elif policy == POLICY_SKIP:
                counts["orders_skipped"] = counts.get("orders_skipped", 0) + 1
            else:
                change = self._order_change(number, first, customer, fields, lines, existing)
                if change is None:
                    counts["orders_unchanged"] = counts.get("orders_unchanged", 0) + 1
                else:
                    plan.order_changes.append(change)
                    counts["orders_updated"] = counts.get("orders_updated", 0) + 1
                    plan.touched_customer_ids.add(existing["customer_id"])
                    if isinstance(customer, int):
                        plan.touched_customer_ids.add(customer)

    def _order_change(self, number, first, customer, fields, lines, existing) -> OrderWrite | None:
        changed: dict[str, Any] = {}
        diff: dict[str, dict[str, Any]] = {}
        for key in ORDER_COMPARE_FIELDS:
            if key in fields and fields[key] != existing[key]:
                changed[key] = fields[key]
                diff[key] = {"old": _json_safe(existing[key]), "new": _json_safe(fields[key])}
        new_customer_id = customer if isinstance(customer, int) else None
        if new_customer_id != existing["customer_id"]:
            changed["customer_id"] = customer
            diff["customer"] = {"old": existing["customer_id"], "new": new_customer_id}
        replace_lines = False
        if lines:
            wanted = sorted(_line_key(line) for line in lines)
            have = sorted(
                (sku, name, category, Decimal(q).quantize(MONEY), Decimal(p).quantize(MONEY))
                for sku, name, category, q, p in existing["lines"]
            )
            if wanted != have:
                replace_lines = True
                diff["lines"] = {"old": len(have), "new": len(wanted)}
        if not changed and not replace_lines:
            return None
        return OrderWrite(
            first,
            number,
            customer,
            changed,
            lines if replace_lines else None,
            existing["id"],
            replace_lines,
            diff,
        )

    def run(self) -> ImportPlan:
        identities = self.resolve_identities()
        groups = self.group_orders()
        self.plan_customers(identities)
        self.plan_orders(groups)
        return self._finished()

    def _finished(self) -> ImportPlan:
        plan = self.plan
        plan.errors.sort(key=lambda e: e.row)
        plan.counts.setdefault("customers_created", 0)
        plan.counts.setdefault("customers_updated", 0)
        return plan

    # A customer list (no order columns) planned in chunks, so that the customers it creates can be
    # written while the next chunk is checked (customers.imports.services). In such a list every
    # customer has one row, and a row's fate depends only on the rows before it: a second row of the
    # same customer is the one in error. So the customers a chunk creates are final when the chunk has
    # been planned. The existing customers a chunk matches are planned at the end, in one read of
    # their current values (`finish_chunks`), in the order of their rows, as `run` plans them.
    def plan_chunk(self, rows: list[CleanRow], errors: list[RowError]) -> list[NewCustomer]:
        """Plan the next rows of a customer list (`errors`: theirs from validation); returns the
        customers to create for them, which no later row can change."""
        if self.has_orders:
            raise ValueError("an order list is planned as a whole (Planner.run)")
        self.plan.errors.extend(errors)
        self.plan.invalid_rows.update(e.row for e in errors)
        self.rows.extend(rows)
        identities = self.resolve_identities(rows)
        created = len(self.plan.new_customers)
        self.plan_customers([i for i in identities if i.existing_id is None])
        self._matched_later.extend(i for i in identities if i.existing_id is not None)
        return self.plan.new_customers[created:]

    def finish_chunks(self) -> ImportPlan:
        """Plan the existing customers the chunks matched; the whole plan, as `run` makes it."""
        self.plan_customers(self._matched_later)
        self._matched_later = []
        return self._finished()
