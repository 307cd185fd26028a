"""crm.numbers: every number from a user is bounded before it is converted."""

import time
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from crm.numbers import (
    BoundedDecimalField,
    BoundedIntegerField,
    NumberError,
    parse_decimal,
    parse_id,
    parse_int,
)

ABUSIVE = [
    "1e400000",
    "1e10000000",
    "9" * 10_000,
    "nan",
    "NaN",
    "inf",
    "-Infinity",
    "1_000",
    "١٢",
    "0x10",
    "1e3",
]


@pytest.mark.parametrize("text", ABUSIVE)
def test_abusive_text_is_refused_quickly_with_a_message(text):
    started = time.perf_counter()
    with pytest.raises(NumberError) as caught:
        parse_decimal(text, max_digits=14, decimal_places=2)
    with pytest.raises(NumberError):
        parse_int(text)
    assert time.perf_counter() - started < 0.1
    assert caught.value.message  # a sentence for the user


def test_long_text_is_refused_before_anything_else():
    with pytest.raises(NumberError, match="too long: at most 50 characters"):
        parse_decimal(" " * 60 + "5")
    with pytest.raises(NumberError, match="too long"):
        parse_int(10**5000)


def test_minus_zero_is_zero_and_spaces_are_ignored():
    assert str(parse_decimal("-0")) == "0"
    assert str(parse_decimal(" -0.00 ")) == "0"
    assert parse_int("-0") == 0
    assert parse_int("  42  ") == 42
    assert parse_decimal(" 1,234.50 ", max_digits=14, decimal_places=2) == Decimal("1234.5")
    assert parse_int("3.0") == 3


def test_digits_places_and_range():
    with pytest.raises(NumberError, match="too large: at most 14 digits"):
        parse_decimal("1000000000000", max_digits=14, decimal_places=2)  # 13 whole digits
    assert parse_decimal("999999999999.99", max_digits=14, decimal_places=2) == Decimal("999999999999.99")
    with pytest.raises(NumberError, match="at most 2 digits after"):
        parse_decimal("1.234", max_digits=14, decimal_places=2)
    with pytest.raises(NumberError, match="whole number"):
        parse_int("1.5")
    with pytest.raises(NumberError, match="at least 1"):
        parse_int("0", minimum=1)
    with pytest.raises(NumberError, match="at most 5"):
        parse_int("6", maximum=5)
    with pytest.raises(NumberError, match="not a number"):
        parse_decimal("1,2")  # commas only as thousands separators
    with pytest.raises(NumberError, match="Enter a number"):
        parse_decimal(float("nan"))
    with pytest.raises(NumberError):
        parse_decimal(True)


def test_ids():
    assert parse_id("17") == 17
    assert parse_id("0") is None
    assert parse_id("1e400000") is None
    assert parse_id("9" * 10_000) is None
    assert parse_id("1,000") is None


def test_form_fields_give_field_errors():
    field = BoundedDecimalField(max_digits=14, decimal_places=2, required=False)
    assert field.clean("-0") == 0
    assert field.clean("") is None
    for text in ABUSIVE:
        with pytest.raises(ValidationError):
            field.clean(text)
    number = BoundedIntegerField(min_value=0, required=False)
    assert number.clean(" 7 ") == 7
    for text in ("1e400000", "9" * 10_000, "2147483648", "-1"):
        with pytest.raises(ValidationError):
            number.clean(text)
