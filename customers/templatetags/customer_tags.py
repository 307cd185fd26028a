"""Small display helpers for customer pages.

{% load customer_tags %}
{{ customer.phone|phone_display }}       -> 138 0013 8000 (national for the tenant's region)
{{ value|cf_display }}                   -> a custom field value as text (lists joined, yes/no)
{% column_value customer column %}       -> the cell of a column registered by another app
{{ value|history_value }}                -> an audit old/new value as short text
"""

from django import template
from django.utils.translation import gettext as _

from customers import custom_fields as cf
from customers.phone import format_phone

register = template.Library()


@register.filter
def phone_display(value: str) -> str:
    return format_phone(value or "")


@register.filter
def cf_display(value) -> str:
    return cf.display_value(None, value)


@register.simple_tag
def column_value(customer, column):
    """Value of a registered ListColumn for one row; an error shows as an empty cell, not a 500."""
    registered = column.get("registered") if isinstance(column, dict) else column
    if registered is None:
        return ""
    try:
        value = registered.value(customer)
    except Exception:  # noqa: BLE001 - another app's column must not break the list
        return ""
    return "" if value is None else value


@register.filter
def history_value(value) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if value is True:
        return _("Yes")
    if value is False:
        return _("No")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    text = str(value)
    return text if len(text) <= 120 else text[:119] + "…"


@register.filter
def get_item(mapping, key):
    try:
        return mapping.get(key)
    except AttributeError:
        return None
