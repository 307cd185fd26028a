"""What the audit log calls things, decided in one place: event names, field labels and values.

- Event names: every app registers the names of the events it records
  (`register_event_names({"customer.merged": _("Customers merged")})` in its AppConfig.ready());
  `event_name(code)` returns the translated name (a readable fallback for an event from an older
  version, never the raw code).
- Field labels: a field's label is its model field's verbose name, as a ModelForm shows it (capital
  first). Names that are not model fields, or whose form label differs, are registered per model
  (`register_field_labels("customers.customer", {"tags": _("Tags")})`) and forms read the same entry
  with `field_label(...)`, so the audit log and the form cannot drift apart.
- Values: `display_value` formats booleans, lists, dicts, numbers and ISO dates/date-times (in the
  viewer's time zone) the way the rest of the interface does.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

_event_names: dict[str, Any] = {}
_field_labels: dict[str, dict[str, Any]] = {}

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?")
MAX_SHOWN = 200  # characters of one value shown in the log


def register_event_names(names: dict[str, Any]) -> None:
    _event_names.update(names)


def register_field_labels(model_label: str, labels: dict[str, Any]) -> None:
    _field_labels.setdefault(model_label.lower(), {}).update(labels)


def event_codes() -> list[str]:
    return sorted(_event_names)


def event_name(code: str) -> str:
    name = _event_names.get(code)
    if name is not None:
        return str(name)
    # An event recorded by an older version: its words, not its code.
    return capfirst(code.replace(".", ": ").replace("_", " "))


def event_choices() -> list[tuple[str, str]]:
    """(code, translated name) for a filter, sorted by name."""
    return sorted(((code, str(name)) for code, name in _event_names.items()), key=lambda row: row[1].lower())


def field_label(model_label: str, name: str) -> str:
    """The label of `name` on the model `model_label` ("customers.customer")."""
    registered = _field_labels.get((model_label or "").lower(), {})
    if name in registered:
        return str(registered[name])
    try:
        model = apps.get_model(model_label)
        return str(capfirst(model._meta.get_field(name).verbose_name))
    except (LookupError, ValueError, FieldDoesNotExist, AttributeError):
        pass
    if name in _field_labels.get("*", {}):
        return str(_field_labels["*"][name])
    return str(capfirst(name.replace("_", " ")))


def choice_label(model_label: str, name: str, value: Any) -> str | None:
    """The display name of a stored choice ("zh-hans" -> "Simplified Chinese"), None when `name` is
    not a choice field of the model or the value is not one of its choices."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    try:
        field = apps.get_model(model_label)._meta.get_field(name)
    except (LookupError, ValueError, FieldDoesNotExist, AttributeError):
        return None
    for key, label in getattr(field, "flatchoices", None) or ():
        if str(key) == str(value):
            return str(label)
    return None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}…"


def display_value(value: Any, model_label: str = "", name: str = "") -> str:
    """A stored audit value as the interface writes it: a choice by its name when `name` is a choice
    field of `model_label`, a dict's keys labelled as the model's fields."""
    if name and value not in (None, ""):
        shown = choice_label(model_label, name, value)
        if shown is not None:
            return shown
    from crm.templatetags.crm_format import localdate, localdt, number

    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, int | Decimal) or (isinstance(value, float) and value == value):
        places = 0 if isinstance(value, int) or value == int(value) else 2
        return number(value, places)
    if isinstance(value, datetime):
        return localdt(value)
    if isinstance(value, date):
        return localdate(value)
    if isinstance(value, list | tuple):
        return _clip(", ".join(display_value(item, model_label) for item in value)) if value else "—"
    if isinstance(value, dict):
        parts = [
            f"{field_label(model_label, str(key))}: {display_value(item, model_label)}"
            for key, item in value.items()
        ]
        return _clip("; ".join(parts)) if parts else "—"
    text = str(value)
    if ISO_DATETIME.fullmatch(text):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return _clip(text)
        if timezone.is_naive(moment):
            moment = moment.replace(tzinfo=UTC)  # stored times are UTC
        return localdt(moment)
    if ISO_DATE.fullmatch(text):
        try:
            return localdate(date.fromisoformat(text))
        except ValueError:
            pass
    return _clip(text)
