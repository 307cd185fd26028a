"""Parse a number typed or uploaded by a user, bounded BEFORE any conversion.

Python's `int()` and `Decimal()` accept "1e400000", "9" * 100_000, "nan", "inf" and "1_000"; turning
such text into an int, quantizing it or printing it costs seconds to minutes of CPU (or raises deep
inside a query). Every number that comes from a request or a file goes through `parse_decimal` or
`parse_int` (or the form fields below, which use them): the text is limited in length, must be plain
digits with an optional sign, decimal point and (optionally) comma thousands separators, and its
digits are counted before it becomes a number. Exponents, NaN, infinities, underscores and
non-ASCII digits are refused. "-0" is 0.

`NumberError.message` is a sentence for the user; `code` tells callers which problem it was.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

# Long enough for any real number with separators and spaces around it; refused above this before
# anything else is looked at.
DEFAULT_MAX_LENGTH = 50
DEFAULT_MAX_DIGITS = 20
# A PostgreSQL integer / bigint column.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

_PLAIN = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?", re.ASCII)
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?", re.ASCII)


class NumberError(ValueError):
    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.message = message
        self.code = code


def _shown(text: str) -> str:
    return text if len(text) <= 20 else f"{text[:20]}…"


def _text_of(raw: Any, max_length: int) -> str:
    if isinstance(raw, bool) or raw is None:
        raise NumberError(_("Enter a number."), "invalid")
    if isinstance(raw, int):
        if raw.bit_length() > 4 * max_length:  # str() of a huge int is itself slow (or refused)
            raise NumberError(
                _("The number is too long: at most %(max)s characters.") % {"max": max_length}, "length"
            )
        return str(raw)
    if isinstance(raw, float | Decimal):
        value = Decimal(repr(raw)) if isinstance(raw, float) else raw
        if not value.is_finite():
            raise NumberError(_("Enter a number."), "invalid")
        if abs(value.adjusted()) > max_length:
            raise NumberError(
                _("The number is too long: at most %(max)s characters.") % {"max": max_length}, "length"
            )
        return format(value, "f")
    if not isinstance(raw, str):
        raise NumberError(_("Enter a number."), "invalid")
    return raw


def parse_decimal(
    raw: Any,
    *,
    minimum: Decimal | int | None = None,
    maximum: Decimal | int | None = None,
    max_digits: int = DEFAULT_MAX_DIGITS,
    decimal_places: int | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    thousands: bool = True,
) -> Decimal:
    """A Decimal from user text, or `NumberError`.

    `max_digits` counts the digits before the decimal point plus `decimal_places` (like a database
    `numeric(max_digits, decimal_places)`); without `decimal_places`, at most `max_digits` digits in
    all. Leading and trailing spaces are ignored; with `thousands`, "12,345.6" is read as 12345.6.
    """
    text = _text_of(raw, max_length)
    if len(text) > max_length:
        raise NumberError(
            _("The number is too long: at most %(max)s characters.") % {"max": max_length}, "length"
        )
    text = text.strip()
    if not text:
        raise NumberError(_("Enter a number."), "required")
    if thousands and "," in text:
        if not _GROUPED.fullmatch(text):
            raise NumberError(_("“%(value)s” is not a number.") % {"value": _shown(text)}, "invalid")
        text = text.replace(",", "")
    match = _PLAIN.fullmatch(text)
    if match is None or not (match[2] or match[3]):
        raise NumberError(_("“%(value)s” is not a number.") % {"value": _shown(text)}, "invalid")
    sign, whole, fraction = match[1], match[2].lstrip("0"), (match[3] or "").rstrip("0")
    if decimal_places is not None and len(fraction) > decimal_places:
        if decimal_places == 0:
            raise NumberError(_("Enter a whole number."), "whole")
        raise NumberError(
            _("Use at most %(places)s digits after the decimal point.") % {"places": decimal_places}, "places"
        )
    whole_digits = max_digits - (decimal_places or 0)
    if len(whole) > whole_digits or (decimal_places is None and len(whole) + len(fraction) > max_digits):
        raise NumberError(
            _("The number is too large: at most %(max)s digits.") % {"max": max_digits}, "digits"
        )
    value = (
        Decimal(f"{sign}{whole or '0'}.{fraction or '0'}") if fraction else Decimal(f"{sign}{whole or '0'}")
    )
    if not value:
        value = Decimal(0)  # "-0" and "-0.00" are 0
    if minimum is not None and value < minimum:
        raise NumberError(_("Enter a number of at least %(min)s.") % {"min": minimum}, "min")
    if maximum is not None and value > maximum:
        raise NumberError(_("Enter a number of at most %(max)s.") % {"max": maximum}, "max")
    return value


def parse_int(
    raw: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = INT64_MAX,
    max_length: int = DEFAULT_MAX_LENGTH,
    thousands: bool = True,
) -> int:
    """A whole number from user text ("12", " 1,000 ", "3.0"), or `NumberError`."""
    digits = len(str(max(abs(minimum or 0), abs(maximum or 0)))) if maximum is not None else 19
    value = parse_decimal(
        raw,
        minimum=minimum,
        maximum=maximum,
        max_digits=max(digits, 1),
        decimal_places=0,
        max_length=max_length,
        thousands=thousands,
    )
    return int(value)


def parse_id(raw: Any) -> int | None:
    """A database id from a query string or form (1..bigint), or None for anything else."""
    try:
        return parse_int(raw, minimum=1, maximum=INT64_MAX, thousands=False)
    except NumberError:
        return None


# --- form fields ---------------------------------------------------------------------------------------


class BoundedDecimalField(forms.DecimalField):
    """Django's DecimalField, parsed with `parse_decimal` (bounded text, no exponents, no NaN)."""

    def __init__(
        self, *, max_digits: int, decimal_places: int | None, max_length: int = DEFAULT_MAX_LENGTH, **kwargs
    ):
        self.text_max_length = max_length
        super().__init__(max_digits=max_digits, decimal_places=decimal_places, **kwargs)

    def to_python(self, value):
        if value in self.empty_values or (isinstance(value, str) and not value.strip()):
            return None
        try:
            return parse_decimal(
                value,
                max_digits=self.max_digits,
                decimal_places=self.decimal_places,
                max_length=self.text_max_length,
            )
        except NumberError as exc:
            raise ValidationError(exc.message, code=exc.code)


class BoundedIntegerField(forms.IntegerField):
    """Django's IntegerField, parsed with `parse_int`; `max_value` defaults to PostgreSQL's integer."""

    def __init__(self, *, min_value: int | None = None, max_value: int = INT32_MAX, **kwargs):
        super().__init__(min_value=min_value, max_value=max_value, **kwargs)

    def to_python(self, value):
        if value in self.empty_values or (isinstance(value, str) and not value.strip()):
            return None
        try:
            return parse_int(value, minimum=self.min_value, maximum=self.max_value)
        except NumberError as exc:
            raise ValidationError(exc.message, code=exc.code)
