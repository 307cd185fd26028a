"""The fields a user chooses between when merging two customers, and reading and writing their values
(model fields, consents with their times, and custom fields as "custom:<key>")."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Model

from ..models import Customer, CustomFieldDefinition

Choice = Literal["survivor", "merged"]
CUSTOM_PREFIX = "custom:"

# Fields a user chooses between, in the order the merge page shows them. A consent is chosen
# together with the time it was given. Order figures are not chosen: they are recomputed.
CHOOSABLE_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kind", ("kind",)),
    ("name", ("name",)),
    ("email", ("email",)),
    ("phone", ("phone",)),
    ("country", ("country",)),
    ("province", ("province",)),
    ("city", ("city",)),
    ("street", ("street",)),
    ("postcode", ("postcode",)),
    ("birthday", ("birthday",)),
    ("gender", ("gender",)),
    ("income_band", ("income_band",)),
    ("occupation", ("occupation",)),
    ("source", ("source",)),
    ("owner", ("owner_id",)),
    ("external_id", ("external_id",)),
    ("email_consent", ("email_consent", "email_consent_at")),
    ("sms_consent", ("sms_consent", "sms_consent_at")),
)
FIELD_ATTRIBUTES = dict(CHOOSABLE_FIELDS)


def _json_value(value: Any) -> Any:
    """A JSON-safe form of a field value (dates as ISO text, Decimal as text)."""
    if isinstance(value, (datetime, date, Decimal)):
        return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    if isinstance(value, Model):
        return value.pk
    return value


def _attribute_value(customer: Customer, attribute: str) -> Any:
    if attribute.startswith(CUSTOM_PREFIX):
        return (customer.custom_fields or {}).get(attribute[len(CUSTOM_PREFIX) :])
    return getattr(customer, attribute)


def _set_attribute(customer: Customer, attribute: str, value: Any) -> None:
    """Set a field from a Python or JSON value (restoring from the audit log hands us JSON)."""
    if attribute.startswith(CUSTOM_PREFIX):
        key = attribute[len(CUSTOM_PREFIX) :]
        values = dict(customer.custom_fields or {})
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
        customer.custom_fields = values
        return
    model_field = Customer._meta.get_field(
        attribute.removesuffix("_id") if attribute == "owner_id" else attribute
    )
    if value is not None and model_field.get_internal_type() in ("DateField", "DateTimeField"):
        value = model_field.to_python(value)
    setattr(customer, attribute, value)


def _choice_attributes(name: str) -> tuple[str, ...]:
    if name.startswith(CUSTOM_PREFIX):
        return (name,)
    return FIELD_ATTRIBUTES[name]


def custom_field_keys(survivor: Customer, merged: Customer) -> list[str]:
    """Custom field keys either customer has a value for, definitions' order first."""
    keys = set(survivor.custom_fields or {}) | set(merged.custom_fields or {})
    ordered = [key for key in CustomFieldDefinition.objects.values_list("key", flat=True) if key in keys]
    return ordered + sorted(keys - set(ordered))


def differing_fields(survivor: Customer, merged: Customer) -> list[str]:
    """Choice names (model fields, consents, "custom:<key>") whose values differ between the two."""
    names = [name for name, _attributes in CHOOSABLE_FIELDS] + [
        CUSTOM_PREFIX + key for key in custom_field_keys(survivor, merged)
    ]
    return [
        name
        for name in names
        if any(
            _json_value(_attribute_value(survivor, a)) != _json_value(_attribute_value(merged, a))
            for a in _choice_attributes(name)
        )
    ]


def _is_empty(value: Any) -> bool:
    return value in (None, "", [], {}, False) or value == Customer.Gender.UNKNOWN


def default_choices(survivor: Customer, merged: Customer) -> dict[str, Choice]:
    """The survivor's value, unless it is empty and the merged customer has one; a consent given on
    either record is kept (the later one when both gave it)."""
    choices: dict[str, Choice] = {}
    for name in differing_fields(survivor, merged):
        first = _choice_attributes(name)[0]
        mine, theirs = _attribute_value(survivor, first), _attribute_value(merged, first)
        if name in ("email_consent", "sms_consent"):
            when_mine, when_theirs = getattr(survivor, f"{name}_at"), getattr(merged, f"{name}_at")
            take_theirs = theirs and (
                not mine or (when_theirs and (not when_mine or when_theirs > when_mine))
            )
            choices[name] = "merged" if take_theirs else "survivor"
        else:
            choices[name] = "merged" if _is_empty(mine) and not _is_empty(theirs) else "survivor"
    return choices


def choice_names_of(attributes: dict[str, Any]) -> list[str]:
    """Choice names for stored attributes ("email_consent_at" belongs to "email_consent")."""
    names: list[str] = []
    by_attribute = {a: name for name, attrs in CHOOSABLE_FIELDS for a in attrs}
    for attribute in attributes:
        name = attribute if attribute.startswith(CUSTOM_PREFIX) else by_attribute.get(attribute)
        if name and name not in names:
            names.append(name)
    return names
