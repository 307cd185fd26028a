"""Shared formatting filters: money in the tenant's currency, date-times in the active time zone.

{% load crm_format %}
{{ customer.total_spent|money }}          -> ¥12,345.60 (tenant currency, grouped)
{{ order.total|money:order.currency }}    -> an explicit currency
{{ customer.created_at|localdt }}         -> 2026-03-01 14:05 in the user's / tenant's zone
"""

from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django import template
from django.db import connection
from django.utils import numberformat, timezone
from django.utils.dateformat import format as date_format
from django.utils.formats import get_format

from crm.tenancy.models import CURRENCY_SYMBOLS

register = template.Library()

ZERO_DECIMAL_CURRENCIES = {"JPY"}


def _tenant_currency() -> str:
    return getattr(getattr(connection, "tenant", None), "currency", "") or "CNY"


@register.filter
def money(value, currency: str = ""):
    """An amount with the currency symbol and thousands grouping; '' for None/blank."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return value
    currency = (currency or _tenant_currency()).upper()
    symbol = CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    places = 0 if currency in ZERO_DECIMAL_CURRENCIES else 2
    return f"{'-' if amount < 0 else ''}{symbol}{_grouped(abs(amount), places)}"


def _grouped(value, places: int) -> str:
    # Thousands in groups of three with a comma in every language: Django's zh-Hans format has no
    # thousands separator, but ¥1,340,978.00 is how amounts are written in Chinese business use too.
    return numberformat.format(
        value,
        get_format("DECIMAL_SEPARATOR"),
        decimal_pos=places,
        grouping=3,
        thousand_sep=",",
        force_grouping=True,
    )


@register.filter
def number(value, places: int = 0):
    """A number with thousands grouping."""
    if value is None or value == "":
        return ""
    try:
        return _grouped(value, int(places))
    except (ValueError, TypeError, InvalidOperation):
        return value


@register.filter
def localdt(value, fmt: str = "Y-m-d H:i"):
    """A date-time in the active time zone (user's, else tenant's); a date as Y-m-d."""
    if value in (None, ""):
        return ""
    if isinstance(value, datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        return date_format(value, fmt)
    if isinstance(value, date):
        return date_format(value, "Y-m-d")
    return value
