"""The rule operators not run elsewhere, each against customers that must and must not match:
is_false (plain and custom), has_any/has_all/has_none on a multi-choice custom field, custom-field
eq/ne, contains, in/not_in, and dates before/after/between on whole local days."""

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from segmentation.rules import validate_rules
from tests.factories import CustomerFactory, CustomFieldDefinitionFactory

from .test_rules import matching, rule


def match(field, op, value=None) -> set[int]:
    return matching(validate_rules(rule(field, op, value)))


def test_is_false_on_a_plain_and_a_custom_yes_no_field(tenant):
    CustomFieldDefinitionFactory(key="wholesale", field_type="boolean")
    yes = CustomerFactory(email_consent=True, custom_fields={"wholesale": True})
    no = CustomerFactory(email_consent=False, custom_fields={"wholesale": False})
    unset = CustomerFactory(email_consent=False, custom_fields={})
    assert match("email_consent", "is_false") == {no.pk, unset.pk}
    assert match("cf:wholesale", "is_true") == {yes.pk}
    assert match("cf:wholesale", "is_false") == {no.pk, unset.pk}  # not answered counts as no


def test_has_any_has_all_and_has_none_on_a_multi_choice_custom_field(tenant):
    CustomFieldDefinitionFactory(key="hobbies", field_type="multi_choice", choices=["tea", "golf", "chess"])
    both = CustomerFactory(custom_fields={"hobbies": ["tea", "golf"]})
    CustomerFactory(custom_fields={"hobbies": ["tea"]})
    chess = CustomerFactory(custom_fields={"hobbies": ["chess"]})
    unset = CustomerFactory(custom_fields={})
    assert match("cf:hobbies", "has_any", ["golf", "chess"]) == {both.pk, chess.pk}
    assert match("cf:hobbies", "has_all", ["tea", "golf"]) == {both.pk}
    assert match("cf:hobbies", "has_none", ["tea"]) == {chess.pk, unset.pk}


def test_custom_field_eq_and_ne_on_text_and_number(tenant):
    CustomFieldDefinitionFactory(key="member_no", field_type="text")
    CustomFieldDefinitionFactory(key="shoe_size", field_type="number")
    a = CustomerFactory(custom_fields={"member_no": "A-1", "shoe_size": 42})
    b = CustomerFactory(custom_fields={"member_no": "B-2", "shoe_size": 38})
    unset = CustomerFactory(custom_fields={})
    assert match("cf:member_no", "eq", "A-1") == {a.pk}
    assert match("cf:member_no", "ne", "A-1") == {b.pk, unset.pk}
    assert match("cf:shoe_size", "eq", 38) == {b.pk}
    assert match("cf:shoe_size", "ne", 38) == {a.pk, unset.pk}


def test_contains_and_in_and_not_in(tenant):
    pudong = CustomerFactory(city="Shanghai Pudong", source="website")
    minhang = CustomerFactory(city="Shanghai Minhang", source="store")
    beijing = CustomerFactory(city="Beijing", source="referral")
    assert match("city", "contains", "SHANGHAI") == {pudong.pk, minhang.pk}
    # "is one of" compares exactly (unlike "is", which ignores case)
    assert match("city", "in", "Beijing, Shanghai Pudong") == {pudong.pk, beijing.pk}
    assert match("source", "in", ["website", "store"]) == {pudong.pk, minhang.pk}
    assert match("source", "not_in", ["website", "store"]) == {beijing.pk}


@pytest.fixture
def shanghai_days(tenant):
    """Purchases around midnight in Shanghai (UTC+8): the day a rule means is the local day."""
    shanghai = zoneinfo.ZoneInfo("Asia/Shanghai")
    with timezone.override(shanghai):

        def at(day, hour, minute):
            return dt.datetime(2026, 5, day, hour, minute, tzinfo=shanghai)

        yield {
            "late_on_4th": CustomerFactory(last_order_at=at(4, 23, 30)),
            "early_on_5th": CustomerFactory(last_order_at=at(5, 0, 10)),  # still the 4th in UTC
            "late_on_5th": CustomerFactory(last_order_at=at(5, 23, 50)),
            "midnight_6th": CustomerFactory(last_order_at=at(6, 0, 0)),
        }


def test_date_before_after_and_between_follow_local_days(shanghai_days):
    pk = {name: customer.pk for name, customer in shanghai_days.items()}
    assert match("last_order_at", "before", "2026-05-05") == {pk["late_on_4th"]}
    assert match("last_order_at", "after", "2026-05-05") == {pk["midnight_6th"]}
    assert match("last_order_at", "between", ["2026-05-05", "2026-05-05"]) == {
        pk["early_on_5th"],
        pk["late_on_5th"],
    }
    assert match("last_order_at", "between", ["2026-05-04", "2026-05-05"]) == {
        pk["late_on_4th"],
        pk["early_on_5th"],
        pk["late_on_5th"],
    }


def test_custom_date_before_after_and_between(tenant):
    CustomFieldDefinitionFactory(key="joined", field_type="date")
    early = CustomerFactory(custom_fields={"joined": "2026-01-31"})
    middle = CustomerFactory(custom_fields={"joined": "2026-02-01"})
    late = CustomerFactory(custom_fields={"joined": "2026-03-01"})
    assert match("cf:joined", "before", "2026-02-01") == {early.pk}
    assert match("cf:joined", "after", "2026-02-01") == {late.pk}
    assert match("cf:joined", "between", ["2026-02-01", "2026-03-01"]) == {middle.pk, late.pk}
