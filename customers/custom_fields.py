"""Values of tenant-defined custom fields: cleaning by type into JSON-safe values.

Stored forms (in Customer.custom_fields, a JSONB object keyed by the definition's key):
text -> str, number -> int or float, date -> "YYYY-MM-DD", choice -> str, multi_choice -> [str],
boolean -> true/false. An empty value is not stored at all.
"""

import math
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from crm.numbers import NumberError, parse_decimal

from .models import CustomFieldDefinition

FieldType = CustomFieldDefinition.FieldType
TEXT_MAX_LENGTH = 1000
# Numbers are stored below 10^15 (exact as JSON floats), with a few decimals.
NUMBER_MAX_DIGITS = 21
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
TRUE_WORDS = {"true", "yes", "y", "1", "on", "是", "对", "真"}
FALSE_WORDS = {"false", "no", "n", "0", "off", "否", "不", "假"}


def form_field_name(key: str) -> str:
    """The name of a custom field in forms and in service error dicts."""
    return f"cf_{key}"


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == [] or value == ()


def clean_value(definition: CustomFieldDefinition, raw: Any) -> Any:
    """The stored form of `raw` for this field, None for an empty value; ValidationError otherwise."""
    if is_empty(raw):
        return None
    kind = definition.field_type
    if kind == FieldType.TEXT:
        text = str(raw).strip()
        if len(text) > TEXT_MAX_LENGTH:
            raise ValidationError(
                _("Use at most %(max)d characters (this has %(length)d)."),
                code="max_length",
                params={"max": TEXT_MAX_LENGTH, "length": len(text)},
            )
        return text
    if kind == FieldType.NUMBER:
        return _clean_number(raw)
    if kind == FieldType.DATE:
        return _clean_date(raw)
    if kind == FieldType.BOOLEAN:
        return _clean_boolean(raw)
    choices = [str(c) for c in (definition.choices or [])]
    if kind == FieldType.CHOICE:
        value = str(raw).strip()
        if value not in choices:
            raise ValidationError(
                _("Choose one of: %(choices)s."),
                code="invalid_choice",
                params={"choices": ", ".join(choices)},
            )
        return value
    if kind == FieldType.MULTI_CHOICE:
        items = raw if isinstance(raw, list | tuple) else re.split(r"[,;，；]", str(raw))
        values = list(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))
        unknown = [v for v in values if v not in choices]
        if unknown:
            raise ValidationError(
                _("%(values)s: not a choice. Choose from: %(choices)s."),
                code="invalid_choice",
                params={"values": ", ".join(unknown), "choices": ", ".join(choices)},
            )
        return values or None
    raise ValidationError(_("Unknown field type."), code="invalid")


def _clean_number(raw: Any) -> int | float:
    if isinstance(raw, bool):
        raise ValidationError(_("Enter a number."), code="invalid_number")
    try:  # bounded before conversion: "1e400000" or a 10,000-digit number is refused at once
        number = parse_decimal(raw, max_digits=NUMBER_MAX_DIGITS)
    except NumberError as exc:
        raise ValidationError(exc.message, code="invalid_number")
    if abs(number) >= Decimal("1e15"):
        raise ValidationError(_("Enter a number."), code="invalid_number")
    if number == number.to_integral_value():
        return int(number)
    as_float = float(number)
    if not math.isfinite(as_float):  # pragma: no cover - guarded above
        raise ValidationError(_("Enter a number."), code="invalid_number")
    return as_float


def _clean_date(raw: Any) -> str:
    if isinstance(raw, datetime):
        return raw.date().isoformat()
    if isinstance(raw, date):
        return raw.isoformat()
    text = str(raw).strip().replace("/", "-").replace(".", "-")
    match = re.match(r"^(\d{4})-(\d{1,2})-(\d{1,2})$", text) or re.match(
        r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$", str(raw).strip()
    )
    if match:
        try:
            return date(int(match[1]), int(match[2]), int(match[3])).isoformat()
        except ValueError:
            pass
    raise ValidationError(_("Enter a valid date (YYYY-MM-DD)."), code="invalid_date")


def _clean_boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValidationError(_("Enter yes or no."), code="invalid_boolean")


def clean_values(
    *,
    values: dict[str, Any],
    definitions: list[CustomFieldDefinition],
    existing: dict[str, Any] | None = None,
    check_all_required: bool = True,
) -> tuple[dict[str, Any], dict[str, list[ValidationError]]]:
    """Merge cleaned `values` into `existing`. Returns (custom_fields, errors keyed by form field name).

    Values of inactive fields already stored are kept; new values for unknown or inactive fields are
    refused. `check_all_required` checks every active required field (on create); otherwise only the
    fields present in `values` are checked (a partial update).
    """
    merged = dict(existing or {})
    errors: dict[str, list[ValidationError]] = {}
    active = {d.key: d for d in definitions if d.is_active}
    for key in values:
        if key not in active:
            errors.setdefault("custom_fields", []).append(
                ValidationError(
                    _("%(key)s is not an active custom field."), code="unknown", params={"key": key}
                )
            )
    for key, definition in active.items():
        if key in values:
            try:
                cleaned = clean_value(definition, values[key])
            except ValidationError as error:
                errors.setdefault(form_field_name(key), []).append(error)
                continue
            if cleaned is None:
                merged.pop(key, None)
            else:
                merged[key] = cleaned
        missing = definition.required and (check_all_required or key in values) and is_empty(merged.get(key))
        if missing and form_field_name(key) not in errors:
            errors[form_field_name(key)] = [ValidationError(_("This field is required."), code="required")]
    return merged, errors


def display_value(definition: CustomFieldDefinition | None, value: Any) -> str:
    """A stored value as text for pages and exports."""
    if is_empty(value):
        return ""
    if isinstance(value, bool):
        return str(_("Yes") if value else _("No"))
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
