"""Check every row of a parsed file against the column mapping, without touching the database.

`validate_rows` returns the clean rows (typed, normalised values of the non-empty cells) and every
problem found, each with its row number, the column's header and a message. Rules that need the
database (does this customer exist? is the external id taken?) are checked in `planning`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from crm.numbers import parse_id
from customers.models import Customer, CustomFieldDefinition, Order, OrderLine

from . import values
from .columns import CUSTOM_PREFIX, LINE_KEYS, ORDER_KEYS
from .parsing import UNDECODABLE, ParsedFile
from .values import CellError

FieldType = CustomFieldDefinition.FieldType
CUSTOM_TEXT_MAX = 1000
TAG_MAX = Customer._meta.get_field("tags").related_model._meta.get_field("name").max_length


@dataclass(frozen=True)
class CustomFieldSpec:
    key: str
    label: str
    field_type: str
    required: bool
    choices: tuple[tuple[str, str], ...]  # (stored value, label)

    @classmethod
    def from_definition(cls, definition) -> "CustomFieldSpec":
        choices = []
        for choice in definition.choices or []:
            if isinstance(choice, dict):
                value = str(choice.get("value", choice.get("key", "")))
                choices.append((value, str(choice.get("label", value))))
            else:
                choices.append((str(choice), str(choice)))
        return cls(
            key=definition.key,
            label=definition.label,
            field_type=definition.field_type,
            required=definition.required,
            choices=tuple(choices),
        )


@dataclass
class ImportContext:
    """What validation needs to know about the tenant, read once before the rows are checked."""

    custom_fields: list[CustomFieldSpec] = field(default_factory=list)
    # lower-cased email and name of each active user -> user id
    owners: dict[str, int] = field(default_factory=dict)
    region: str = "CN"
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    currency: str = "CNY"
    phone_normaliser: Callable[[str], str] | None = None

    def __post_init__(self):
        if self.phone_normaliser is None:
            self.phone_normaliser = values.PhoneNormaliser(self.region)


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    column: str
    message: str


@dataclass(slots=True)
class CleanRow:
    row: int
    customer: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    crm_id: int | None = None
    order: dict[str, Any] | None = None
    line: dict[str, Any] | None = None


def _choice_lookup(choices, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Normalised code or label (in every interface language) -> stored value."""
    lookup: dict[str, str] = {}
    for value, label in choices:
        lookup[str(value).lower()] = value
        for code, _name in settings.LANGUAGES:
            with translation.override(code):
                lookup.setdefault(str(label).strip().lower(), value)
    for text, value in (extra or {}).items():
        lookup.setdefault(text.lower(), value)
    return lookup


def _choice_cleaner(lookup: dict[str, str]) -> Callable[[str], str]:
    def clean(text: str) -> str:
        value = lookup.get(text.strip().lower())
        if value is None:
            raise CellError(_("“%(value)s” is not one of the allowed values.") % {"value": text[:40]})
        return value

    return clean


def _choice_lookups() -> dict[str, dict[str, str]]:
    gender_extra = {
        "男": "male",
        "女": "female",
        "m": "male",
        "f": "female",
        "其他": "other",
        "未知": "unknown",
        "男性": "male",
        "女性": "female",
        "保密": "unknown",
    }
    source_extra = {
        "网站": "website",
        "官网": "website",
        "表单": "form",
        "门店": "store",
        "店铺": "store",
        "电话": "phone",
        "推荐": "referral",
        "转介绍": "referral",
        "社交媒体": "social",
        "微信": "social",
        "导入": "import",
        "接口": "api",
    }
    kind_extra = {
        "个人": "person",
        "公司": "company",
        "企业": "company",
        "individual": "person",
        "organisation": "company",
        "organization": "company",
        "business": "company",
    }
    income_extra = {
        "低": "low",
        "中低": "lower_middle",
        "中": "middle",
        "中等": "middle",
        "中高": "upper_middle",
        "高": "high",
    }
    language_extra = {
        "zh": "zh-hans",
        "zh-cn": "zh-hans",
        "zh_cn": "zh-hans",
        "cn": "zh-hans",
        "chinese": "zh-hans",
        "中文": "zh-hans",
        "汉语": "zh-hans",
        "简体中文": "zh-hans",
        "english": "en",
        "英文": "en",
        "英语": "en",
    }
    status_extra = {
        "已付款": "paid",
        "已支付": "paid",
        "已完成": "paid",
        "completed": "paid",
        "部分退款": "partially_refunded",
        "已退款": "refunded",
        "退款": "refunded",
        "已取消": "cancelled",
        "取消": "cancelled",
        "canceled": "cancelled",
    }
    channel_extra = {
        "线上": "online",
        "网店": "online",
        "门店": "store",
        "线下": "store",
        "电话": "phone",
        "平台": "marketplace",
        "电商平台": "marketplace",
    }
    return {
        "gender": _choice_lookup(Customer.Gender.choices, gender_extra),
        "source": _choice_lookup(Customer.Source.choices, source_extra),
        "kind": _choice_lookup(Customer.Kind.choices, kind_extra),
        "income_band": _choice_lookup(Customer.IncomeBand.choices, income_extra),
        "language": _choice_lookup(settings.LANGUAGES, language_extra),
        "status": _choice_lookup(Order.Status.choices, status_extra),
        "channel": _choice_lookup(Order.Channel.choices, channel_extra),
    }


_COUNTRY_NAMES = {
    "china": "CN",
    "中国": "CN",
    "中国大陆": "CN",
    "prc": "CN",
    "hong kong": "HK",
    "香港": "HK",
    "taiwan": "TW",
    "台湾": "TW",
    "macau": "MO",
    "澳门": "MO",
    "singapore": "SG",
    "新加坡": "SG",
    "united states": "US",
    "usa": "US",
    "美国": "US",
    "united kingdom": "GB",
    "uk": "GB",
    "英国": "GB",
    "japan": "JP",
    "日本": "JP",
    "korea": "KR",
    "韩国": "KR",
}


def _clean_country(text: str) -> str:
    import phonenumbers

    code = _COUNTRY_NAMES.get(text.strip().lower(), text.strip().upper())
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise CellError(_("“%(value)s” is not a country code such as CN or US.") % {"value": text[:40]})
    return code


def _max_length(model, name: str) -> int | None:
    return model._meta.get_field(name).max_length


def _custom_cleaner(spec: CustomFieldSpec) -> Callable[[str], Any]:
    if spec.field_type == FieldType.NUMBER:
        return values.clean_number
    if spec.field_type == FieldType.DATE:
        return lambda text: values.clean_date(text).isoformat()
    if spec.field_type == FieldType.BOOLEAN:
        return values.clean_boolean
    if spec.field_type in (FieldType.CHOICE, FieldType.MULTI_CHOICE):
        lookup = _choice_lookup(spec.choices)
        one = _choice_cleaner(lookup)
        if spec.field_type == FieldType.CHOICE:
            return one
        return lambda text: [one(part) for part in values.split_list(text)]
    return lambda text: values.clean_text(text, CUSTOM_TEXT_MAX)


def _clean_tags(text: str) -> list[str]:
    tags = values.split_list(text)
    for tag in tags:
        if len(tag) > TAG_MAX:
            raise CellError(
                _("The tag “%(tag)s…” is longer than %(max)d characters.") % {"tag": tag[:20], "max": TAG_MAX}
            )
    return tags


def _birthday_cleaner() -> Callable[[str], Any]:
    today = timezone.localdate()

    def clean(text: str):
        value = values.clean_date(text)
        if value > today:
            raise CellError(_("A birthday cannot be in the future."))
        return value

    return clean


def _owner_cleaner(owners: dict[str, int]) -> Callable[[str], int]:
    def clean(text: str) -> int:
        user_id = owners.get(text.strip().lower())
        if user_id is None:
            raise CellError(_("No active user “%(value)s” (use their email).") % {"value": text[:80]})
        return user_id

    return clean


def _crm_id(text: str) -> int:
    pk = parse_id(text) if len(text) <= 40 else None  # bounded; "²".isdigit() is True, int("²") fails
    if pk is None:
        raise CellError(_("“%(value)s” is not a CRM id.") % {"value": text[:40]})
    return pk


def build_cleaners(context: ImportContext) -> dict[str, Callable[[str], Any]]:
    """Target key -> function(text) -> clean value (raising CellError)."""
    choices = _choice_lookups()

    def text(model, name):
        limit = _max_length(model, name)
        return lambda value: values.clean_text(value, limit)

    def money(model, name, **kwargs):
        f = model._meta.get_field(name)
        return lambda value: values.clean_decimal(
            value, max_digits=f.max_digits, decimal_places=f.decimal_places, **kwargs
        )

    cleaners: dict[str, Callable[[str], Any]] = {
        "id": _crm_id,
        "external_id": text(Customer, "external_id"),
        "name": text(Customer, "name"),
        "kind": _choice_cleaner(choices["kind"]),
        "email": lambda value: values.clean_email(value, _max_length(Customer, "email")),
        "phone": context.phone_normaliser,
        "country": _clean_country,
        "province": text(Customer, "province"),
        "city": text(Customer, "city"),
        "street": text(Customer, "street"),
        "postcode": text(Customer, "postcode"),
        "birthday": _birthday_cleaner(),
        "gender": _choice_cleaner(choices["gender"]),
        "income_band": _choice_cleaner(choices["income_band"]),
        "language": _choice_cleaner(choices["language"]),
        "occupation": text(Customer, "occupation"),
        "source": _choice_cleaner(choices["source"]),
        "owner": _owner_cleaner(context.owners),
        "tags": _clean_tags,
        "email_consent": values.clean_boolean,
        "sms_consent": values.clean_boolean,
        "order_number": text(Order, "number"),
        "placed_at": lambda value: values.clean_datetime(value, context.zone),
        "status": _choice_cleaner(choices["status"]),
        "channel": _choice_cleaner(choices["channel"]),
        "currency": lambda value: _clean_currency(value),
        "total": money(Order, "total", minimum=Decimal("0")),
        "sku": text(OrderLine, "sku"),
        "product_name": text(OrderLine, "product_name"),
        "category": text(OrderLine, "category"),
        "quantity": money(OrderLine, "quantity", positive=True),
        "unit_price": money(OrderLine, "unit_price", minimum=Decimal("0")),
    }
    for spec in context.custom_fields:
        cleaners[f"{CUSTOM_PREFIX}{spec.key}"] = _custom_cleaner(spec)
    return cleaners


def _clean_currency(text: str) -> str:
    code = {"人民币": "CNY", "rmb": "CNY", "¥": "CNY", "￥": "CNY", "美元": "USD", "$": "USD"}.get(
        text.strip().lower(), text.strip().upper()
    )
    if len(code) != 3 or not code.isalpha():
        raise CellError(_("“%(value)s” is not a currency code such as CNY.") % {"value": text[:40]})
    return code


def validate_mapping(mapping: list[str], headers: list[str], context: ImportContext) -> list[str]:
    """Problems with the mapping itself (messages for the mapping form)."""
    problems = []
    used = [key for key in mapping if key]
    duplicates = sorted({key for key in used if used.count(key) > 1})
    for key in duplicates:
        problems.append(_("“%(field)s” is chosen for more than one column.") % {"field": key})
    known = set(build_cleaners(context))
    for key in used:
        if key not in known:
            problems.append(_("“%(field)s” is not a field that can be imported.") % {"field": key})
    if not used:
        problems.append(_("Choose at least one column to import."))
    keys = set(used)
    has_order = bool(keys & (ORDER_KEYS | LINE_KEYS))
    if has_order and "order_number" not in keys:
        problems.append(_("To import orders, map a column to “Order number”."))
    if keys & LINE_KEYS and "product_name" not in keys and "sku" not in keys:
        problems.append(_("To import order lines, map a column to “Product” or “SKU”."))
    if not keys & {"id", "external_id", "name", "email", "phone"}:
        problems.append(
            _("Map a column that names the customer (name, email, phone, external id or CRM id).")
        )
    return problems


SLOT_CUSTOMER, SLOT_CUSTOM, SLOT_ORDER, SLOT_LINE, SLOT_TAGS, SLOT_ID = (
    "customer",
    "custom",
    "order",
    "line",
    "tags",
    "id",
)


def _slot(key: str) -> tuple[str, str]:
    """Where a target's clean value goes in a CleanRow: (slot, name)."""
    if key.startswith(CUSTOM_PREFIX):
        return SLOT_CUSTOM, key[len(CUSTOM_PREFIX) :]
    if key == "tags":
        return SLOT_TAGS, key
    if key == "id":
        return SLOT_ID, key
    if key == "owner":
        return SLOT_CUSTOMER, "owner_id"
    if key in ORDER_KEYS:
        return SLOT_ORDER, key
    if key in LINE_KEYS:
        return SLOT_LINE, key
    return SLOT_CUSTOMER, key


ORDER_FIELDS = ("order_number", "placed_at", "status", "channel", "currency", "total")
LINE_FIELDS = ("sku", "product_name", "category", "quantity", "unit_price")


def validate_rows(
    parsed: ParsedFile,
    mapping: list[str],
    context: ImportContext,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[CleanRow], list[RowError]]:
    """Check every cell of every row. Returns (clean rows without errors, every error)."""
    cleaners = build_cleaners(context)
    handlers = [
        (index, parsed.headers[index] if index < len(parsed.headers) else key, *_slot(key), cleaners[key])
        for index, key in enumerate(mapping)
        if key
    ]
    mapped = set(mapping)
    has_orders = "order_number" in mapped
    has_lines = bool(mapped & LINE_KEYS)
    header_of = {key: parsed.headers[i] for i, key in enumerate(mapping) if key and i < len(parsed.headers)}
    clean_rows: list[CleanRow] = []
    errors: list[RowError] = []
    undecodable = parsed.undecodable_rows
    width_errors = parsed.width_errors
    expected_width = len(parsed.headers)
    unescape = values.unescape_formula
    total = len(parsed.rows)
    step = max(1, total // 50)

    for position, (row_number, cells) in enumerate(parsed.rows):
        if progress is not None and position % step == 0:
            progress(position, total)
        row = CleanRow(row=row_number)
        row_errors: list[RowError] = []
        if width_errors and row_number in width_errors:
            # A short row would be padded and a long one cut: the values may sit in the wrong columns.
            row_errors.append(
                RowError(
                    row_number,
                    "",
                    _("Expected %(expected)s columns, found %(found)s.")
                    % {"expected": expected_width, "found": width_errors[row_number]},
                )
            )
        order: dict[str, Any] = {}
        line: dict[str, Any] = {}
        for index, header, slot, name, clean in handlers:
            text = cells[index]
            if not text:
                continue
            if row_number in undecodable and UNDECODABLE in text:
                row_errors.append(
                    RowError(row_number, header, _("This cell is not valid UTF-8 text (wrong encoding)."))
                )
                continue
            if text[0] == "'":
                text = unescape(text)
            try:
                value = clean(text)
            except CellError as exc:
                row_errors.append(RowError(row_number, header, exc.message))
                continue
            if slot is SLOT_CUSTOMER:
                row.customer[name] = value
            elif slot is SLOT_CUSTOM:
                row.custom[name] = value
            elif slot is SLOT_ORDER:
                order[name] = value
            elif slot is SLOT_LINE:
                line[name] = value
            elif slot is SLOT_TAGS:
                row.tags = value
            else:  # SLOT_ID
                row.crm_id = value
        if has_orders and (order or line):
            if "order_number" not in order:
                row_errors.append(
                    RowError(row_number, header_of.get("order_number", ""), _("The order number is missing."))
                )
            if line and "product_name" not in line and "sku" not in line:
                column = header_of.get("product_name") or header_of.get("sku", "")
                row_errors.append(RowError(row_number, column, _("The product (or SKU) is missing.")))
            if line and "unit_price" not in line and has_lines:
                row_errors.append(
                    RowError(
                        row_number,
                        header_of.get("unit_price", _("Unit price")),
                        _("The unit price is missing."),
                    )
                )
            row.order = order
            row.line = line or None
        if row_errors:
            errors.extend(row_errors)
        else:
            clean_rows.append(row)
    if progress is not None:
        progress(total, total)
    return clean_rows, errors
