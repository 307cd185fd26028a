"""Turn the text of one cell into a clean value, or raise `CellError` with a message for the user.

Fast paths matter here: an import validates every cell of up to 200,000 rows before writing, so the
common shapes (a Chinese mobile number, a plain email address, an ISO date) avoid the slower general
parsers while giving exactly the same answers.
"""

import re
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.utils.translation import gettext as _

from crm.numbers import NumberError, parse_decimal
from crm.spreadsheets import unescape_formula  # noqa: F401  (the inverse of the exports' rule)


class CellError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# Characters a spreadsheet treats as the start of a formula; exports prefix such cells with "'"
# (see customers.exports.formats), and the import takes that prefix off again.
def clean_text(text: str, max_length: int | None) -> str:
    if max_length is not None and len(text) > max_length:
        raise CellError(
            _("Too long: %(length)s characters (at most %(max)s).")
            % {"length": f"{len(text):,}", "max": max_length}
        )
    return text


# --- email ------------------------------------------------------------------------------------------

# A strict subset of what Django's EmailValidator accepts; anything else goes through the validator.
_SIMPLE_EMAIL = re.compile(
    r"^[A-Za-z0-9_%+\-]+(?:\.[A-Za-z0-9_%+\-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_email_validator = EmailValidator()


def clean_email(text: str, max_length: int = 254) -> str:
    """A valid address, lower-cased."""
    text = text.strip()
    if len(text) > max_length:
        raise CellError(
            _("Too long: %(length)s characters (at most %(max)s).") % {"length": len(text), "max": max_length}
        )
    if not _SIMPLE_EMAIL.match(text):
        try:
            _email_validator(text)
        except ValidationError:
            raise CellError(_("“%(value)s” is not a valid email address.") % {"value": text[:80]})
    return text.lower()  # stored lower-cased, as customers.services does


# --- phone ------------------------------------------------------------------------------------------

_PHONE_NOISE = re.compile(r"[\s\-.()（）/]+")
_CN_MOBILE = re.compile(r"^(?:\+86|0086|86)?(1[3-9]\d{9})$")


def phone_normaliser_reference(raw: str, region: str) -> str | None:
    """The general rule, shared with the customer forms (customers.phone): E.164 if valid, else None."""
    from customers.phone import normalise_phone

    try:
        return normalise_phone(raw, region=region or None) or None
    except ValidationError:
        return None


class PhoneNormaliser:
    """E.164 normalisation with a cache for Chinese mobile numbers.

    Whether a Chinese mobile number is valid depends on its first seven digits (the number block),
    so the answer of the general parser is cached per block; block 179 is left out because the
    library answers differently within it. Everything else goes through the general parser.
    """

    def __init__(self, region: str, reference=phone_normaliser_reference):
        self.region = (region or "").upper()
        self.reference = reference
        self._block_valid: dict[str, bool] = {}

    def __call__(self, text: str) -> str:
        cleaned = _PHONE_NOISE.sub("", text)
        match = _CN_MOBILE.match(cleaned)
        if match and (self.region == "CN" or cleaned.startswith(("+86", "0086"))):
            digits = match.group(1)
            block = digits[:7]
            if not block.startswith("179"):
                valid = self._block_valid.get(block)
                if valid is None:
                    valid = self.reference(digits, "CN") == f"+86{digits}"
                    self._block_valid[block] = valid
                if valid:
                    return f"+86{digits}"
                raise CellError(_("“%(value)s” is not a valid phone number.") % {"value": text[:40]})
        result = self.reference(text, self.region)
        if result is None:
            raise CellError(_("“%(value)s” is not a valid phone number.") % {"value": text[:40]})
        return result


# --- dates, numbers ---------------------------------------------------------------------------------

_DATE_YMD = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")
_DATE_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DATETIME = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[ T]+(\d{1,2})[:：时](\d{1,2})(?:[:：分](\d{1,2})(?:\.(\d{1,6}))?秒?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def clean_date(text: str) -> date:
    text = text.strip()
    match = _DATE_YMD.match(text) or _DATE_COMPACT.match(text)
    if match is None and len(text) > 10 and _DATETIME.match(text):
        match = _DATE_YMD.match(text[:10])  # a date with a time of 00:00 from a spreadsheet
    if match is None:
        raise CellError(_("“%(value)s” is not a date; use YYYY-MM-DD.") % {"value": text[:40]})
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        raise CellError(_("“%(value)s” is not a valid date.") % {"value": text[:40]})


def clean_datetime(text: str, zone: ZoneInfo) -> datetime:
    """A date and time; without an offset it is read in the tenant's time zone. Returns UTC-aware."""
    match = _DATETIME.match(text.strip())
    if match is None:
        raise CellError(_("“%(value)s” is not a date and time; use YYYY-MM-DD HH:MM.") % {"value": text[:40]})
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        value = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        raise CellError(_("“%(value)s” is not a valid date and time.") % {"value": text[:40]})
    if offset:
        aware = datetime.fromisoformat(f"{value.isoformat()}{'+00:00' if offset == 'Z' else offset}")
    else:
        aware = value.replace(tzinfo=zone)
    return aware.astimezone(ZoneInfo("UTC"))


# A number cell with its currency and separators; longer text is not a number.
NUMBER_MAX_CHARS = 60
# Custom number fields: below 10^15 with a few decimals (customers.custom_fields).
NUMBER_MAX_DIGITS = 21
_MONEY_NOISE = re.compile(r"[\s,¥￥$€£]|RMB|CNY|元", re.IGNORECASE)


def _bounded_number(text: str, *, max_digits: int, decimal_places: int | None) -> Decimal:
    """The number in a cell, bounded before conversion (crm.numbers): no exponents, NaN or
    10,000-digit numbers, which would cost seconds of CPU each."""
    if len(text) > NUMBER_MAX_CHARS:
        raise CellError(_("Too long for a number: at most %(max)s characters.") % {"max": NUMBER_MAX_CHARS})
    try:
        return parse_decimal(
            _MONEY_NOISE.sub("", text),
            max_digits=max_digits,
            decimal_places=decimal_places,
            max_length=NUMBER_MAX_CHARS,
            thousands=False,  # the noise (spaces, commas, currency) is gone already
        )
    except NumberError as exc:
        if exc.code == "invalid":
            raise CellError(_("“%(value)s” is not a number.") % {"value": text[:40]})
        raise CellError(exc.message)


def clean_decimal(
    text: str, *, max_digits: int, decimal_places: int, minimum: Decimal | None = None, positive: bool = False
) -> Decimal:
    value = _bounded_number(text, max_digits=max_digits, decimal_places=decimal_places)
    value = value.quantize(Decimal(1).scaleb(-decimal_places))
    if positive and value <= 0:
        raise CellError(_("Must be greater than zero."))
    if minimum is not None and value < minimum:
        raise CellError(_("Must not be negative."))
    return value


def clean_number(text: str) -> int | float:
    """A custom "number" field: stored in JSON as an int when whole, else a float."""
    value = _bounded_number(text, max_digits=NUMBER_MAX_DIGITS, decimal_places=None)
    if abs(value) >= Decimal("1e15"):
        raise CellError(_("“%(value)s” is not a number.") % {"value": text[:40]})
    return int(value) if value == value.to_integral_value() else float(value)


_TRUE = frozenset({"yes", "y", "true", "t", "1", "x", "✓", "是", "对", "同意", "已同意", "有"})
_FALSE = frozenset({"no", "n", "false", "f", "0", "否", "不", "不同意", "未同意", "无"})


def clean_boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise CellError(_("“%(value)s” is not yes or no.") % {"value": text[:40]})


_LIST_SPLIT = re.compile(r"\s*[,，;；|、]\s*")


def split_list(text: str) -> list[str]:
    seen: dict[str, None] = {}
    for part in _LIST_SPLIT.split(text):
        if part:
            seen.setdefault(part, None)
    return list(seen)


def midnight(value: date) -> datetime:
    return datetime.combine(value, time(0, 0))
