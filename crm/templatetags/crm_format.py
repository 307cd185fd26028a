"""The one set of display filters: dates and times in the viewer's time zone, numbers, money, shares.

{% load crm_format %}
{{ customer.created_at|localdt }}         -> 2026-03-01 14:05 (viewer's zone: the user's, else the company's)
{{ customer.created_at|localdate }}       -> 2026-03-01 (the day in the viewer's zone)
{{ entry.occurred_at|clock }}             -> 14:05
{{ row.month|yearmonth }}                 -> 2026-03
{{ customers|number }}                    -> 200,000   ({{ value|number:1 }} -> 3.5)
{{ customer.total_spent|money }}          -> ¥12,345.60 (company currency, grouped)
{{ order.total|money:order.currency }}    -> an explicit currency
{{ share|percent }}                       -> 74.4%   (a share 0..1; {{ share|percent:0 }} -> 74%)

The formats themselves are the language's (crm/formats/<lang>/formats.py), so a bare {{ value }}
renders the same. For machine-read attributes (an <input type="date"> value, a data- attribute) use
`date_input`, `datetime_input` and `month_input`, which are fixed ISO forms in the viewer's zone.
tests/crm/test_formats.py fails on a template that formats a date any other way.
"""

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template
from django.db import connection
from django.utils import numberformat, timezone
from django.utils.dateformat import format as date_format
from django.utils.dateformat import time_format
from django.utils.formats import get_format

from crm.tenancy.models import CURRENCY_SYMBOLS

register = template.Library()

ZERO_DECIMAL_CURRENCIES = {"JPY"}


def _tenant_currency() -> str:
    return getattr(getattr(connection, "tenant", None), "currency", "") or "CNY"


def _grouped(value, places: int) -> str:
    # Rounded half-up first: Django's numberformat cuts the extra digits off (3.46 -> "3.4").
    if not isinstance(value, Decimal):
        value = Decimal(str(value))
    value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP) if value.is_finite() else value
    return numberformat.format(
        value,
        get_format("DECIMAL_SEPARATOR"),
        decimal_pos=places,
        grouping=get_format("NUMBER_GROUPING"),
        thousand_sep=get_format("THOUSAND_SEPARATOR"),
        force_grouping=True,
    )


@register.filter
def money(value, currency: str = ""):
    """An amount with the currency symbol and thousands grouping; '' for None/blank."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return value
    if not amount.is_finite():
        return value
    currency = (currency or _tenant_currency()).upper()
    symbol = CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    places = 0 if currency in ZERO_DECIMAL_CURRENCIES else 2
    try:
        return f"{'-' if amount < 0 else ''}{symbol}{_grouped(abs(amount), places)}"
    except InvalidOperation:
        return value


@register.filter
def number(value, places: int = 0):
    """A number with thousands grouping and `places` decimals."""
    if value is None or value == "" or isinstance(value, bool):
        return ""
    try:
        return _grouped(value, int(places))
    except (ValueError, TypeError, InvalidOperation):
        return value


@register.filter
def percent(value, places: int = 1):
    """A share between 0 and 1 as a percentage: 0.744 -> 74.4%."""
    if value is None or value == "" or isinstance(value, bool):
        return ""
    try:
        share = Decimal(str(value)) * 100
    except (InvalidOperation, ValueError):
        return value
    if not share.is_finite():
        return value
    return f"{_grouped(share, int(places))}%"


def _local(value):
    if isinstance(value, datetime) and timezone.is_aware(value):
        return timezone.localtime(value)
    return value


@register.filter
def localdt(value):
    """A date-time in the viewer's time zone (a plain date: the date)."""
    if value in (None, ""):
        return ""
    if isinstance(value, datetime):
        return date_format(_local(value), get_format("DATETIME_FORMAT"))
    if isinstance(value, date):
        return date_format(value, get_format("DATE_FORMAT"))
    return value


@register.filter
def localdate(value):
    """The day, in the viewer's time zone for a date-time."""
    if value in (None, ""):
        return ""
    if isinstance(value, date):
        return date_format(_local(value), get_format("DATE_FORMAT"))
    return value


@register.filter
def clock(value):
    """The time of day, in the viewer's time zone for a date-time."""
    if value in (None, ""):
        return ""
    if isinstance(value, datetime):
        return time_format(_local(value), get_format("TIME_FORMAT"))
    try:
        return time_format(value, get_format("TIME_FORMAT"))
    except (TypeError, AttributeError):
        return value


@register.filter
def yearmonth(value):
    """A month (a date or date-time standing for its month)."""
    if value in (None, ""):
        return ""
    if isinstance(value, date):
        return date_format(_local(value), get_format("YEAR_MONTH_FORMAT"))
    return value


# --- machine-read values (input values, data- attributes): fixed ISO forms, viewer's zone ---------------


@register.filter
def date_input(value):
    return date_format(_local(value), "Y-m-d") if isinstance(value, date) else ""


@register.filter
def datetime_input(value):
    return date_format(_local(value), "Y-m-d\\TH:i") if isinstance(value, datetime) else ""


@register.filter
def month_input(value):
    return date_format(_local(value), "Y-m") if isinstance(value, date) else ""
