"""Rules: validation with clear messages, compilation to the right customers, and the builder's form
round trip."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.http import QueryDict
from django.utils import timezone

from customers.models import Customer
from segmentation import builder
from segmentation.models import CustomerScore
from segmentation.rules import RuleError, count_conditions, rules_to_q, validate_rules
from tests.factories import CustomerFactory, CustomFieldDefinitionFactory, TagFactory


def matching(rules) -> set[int]:
    return set(Customer.objects.filter(rules_to_q(rules)).values_list("pk", flat=True))


def rule(field, op, value=None):
    item = {"field": field, "op": op}
    if value is not None:
        item["value"] = value
    return {"op": "and", "rules": [item]}


def score(customer, **values):
    defaults = {"stage_since": timezone.now(), "computed_at": timezone.now()}
    return CustomerScore.objects.create(customer=customer, **{**defaults, **values})


def test_bad_rules_list_every_problem_with_its_position(tenant):
    rules = {
        "op": "and",
        "rules": [
            {"field": "total_spent", "op": "gte", "value": "lots"},
            {"field": "no_such_field", "op": "eq", "value": 1},
            {
                "op": "or",
                "rules": [
                    {"field": "gender", "op": "in", "value": ["martian"]},
                    {"field": "age", "op": "between", "value": [40, 20]},
                ],
            },
            {"field": "city", "op": "gt", "value": "x"},
        ],
    }
    with pytest.raises(RuleError) as caught:
        validate_rules(rules)
    assert caught.value.messages == [
        "Condition 1 (Total spent): enter a number.",
        "Condition 2: unknown field “no_such_field”.",
        "Group 3, condition 1 (Gender): “martian” is not one of the available choices.",
        "Group 3, condition 2 (Age (years)): the lower bound is above the upper bound.",
        "Condition 4 (City): choose a comparison (“gt” does not apply to this field).",
    ]


@pytest.mark.parametrize(
    "rules, fragment",
    [
        ("not a dict", "expected a group"),
        ({"op": "xor", "rules": []}, "“and” or “or”"),
        (rule("r_score", "gte", 9), "at most 5"),
        (rule("probability_alive", "lt", -0.1), "percentage from 0 to 100"),  # shown in percent
        (rule("orders_count", "gte", 1.5), "whole number"),
        (rule("last_order_at", "before", "31/12/2025"), "YYYY-MM-DD"),
        (rule("last_order_at", "within_last_days", "soon"), "days"),
        (rule("rfm_segment", "in", []), "at least one"),
        (
            {
                "op": "and",
                "rules": [
                    {
                        "op": "or",
                        "rules": [{"op": "and", "rules": [{"op": "or", "rules": [rule("city", "eq", "x")]}]}],
                    }
                ],
            },
            "nested",
        ),
    ],
)
def test_each_kind_of_mistake_gets_a_clear_message(tenant, rules, fragment):
    with pytest.raises(RuleError) as caught:
        validate_rules(rules)
    assert fragment in " ".join(caught.value.messages)


def test_validation_normalises_values(tenant):
    clean = validate_rules(
        {
            "op": "OR",
            "rules": [
                {"field": "total_spent", "op": "between", "value": ["100", "2,000.50"]},
                {"field": "email_consent", "op": "is_true", "value": "ignored"},
            ],
        }
    )
    assert clean == {
        "op": "or",
        "rules": [
            {"field": "total_spent", "op": "between", "value": [100, 2000.5]},
            {"field": "email_consent", "op": "is_true"},
        ],
    }
    assert count_conditions(clean) == 2


def test_an_empty_rule_set_matches_everyone_and_empty_subgroups_are_dropped(tenant):
    CustomerFactory.create_batch(3)
    assert len(matching({"op": "and", "rules": []})) == 3
    assert validate_rules(
        {"op": "or", "rules": [{"op": "and", "rules": []}, rule("city", "eq", "Nowhere")]}
    ) == {
        "op": "or",
        "rules": [rule("city", "eq", "Nowhere")],
    }


def test_demographics_consent_and_purchase_fields(tenant):
    today = timezone.localdate()
    shanghai_woman = CustomerFactory(
        city="Shanghai",
        gender="female",
        birthday=today.replace(year=today.year - 30),
        email_consent=True,
        total_spent=Decimal("500"),
        orders_count=3,
        last_order_at=timezone.now() - timedelta(days=10),
    )
    beijing_man = CustomerFactory(
        city="Beijing",
        gender="male",
        birthday=date(today.year - 50, today.month % 12 + 1, 1),
        income_band="high",
        total_spent=Decimal("50"),
        orders_count=1,
        last_order_at=timezone.now() - timedelta(days=200),
    )
    nobody = CustomerFactory(city="", gender="unknown")

    assert matching(rule("city", "eq", "shanghai")) == {shanghai_woman.pk}
    assert matching(rule("city", "in", "Shanghai, Beijing")) == {shanghai_woman.pk, beijing_man.pk}
    assert matching(rule("city", "is_empty")) == {nobody.pk}
    assert matching(rule("gender", "not_in", ["female"])) == {beijing_man.pk, nobody.pk}
    assert matching(rule("income_band", "in", ["high"])) == {beijing_man.pk}
    assert matching(rule("age", "between", [25, 35])) == {shanghai_woman.pk}
    assert matching(rule("age", "gte", 31)) == {beijing_man.pk}
    assert matching(rule("age", "is_empty")) == {nobody.pk}
    assert matching(rule("birthday_month", "in", [today.month])) == {shanghai_woman.pk}
    assert matching(rule("email_consent", "is_true")) == {shanghai_woman.pk}
    assert matching(rule("total_spent", "gt", 100)) == {shanghai_woman.pk}
    assert matching(rule("orders_count", "between", [1, 2])) == {beijing_man.pk}
    assert matching(rule("last_order_at", "within_last_days", 30)) == {shanghai_woman.pk}
    assert matching(rule("last_order_at", "more_than_days_ago", 90)) == {beijing_man.pk}
    assert matching(rule("last_order_at", "is_empty")) == {nobody.pk}
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    assert matching(rule("last_order_at", "before", yesterday)) == {shanghai_woman.pk, beijing_man.pk}


def test_tags_custom_fields_and_scores(tenant):
    vip, wholesale = TagFactory(name="vip"), TagFactory(name="wholesale")
    size = CustomFieldDefinitionFactory(key="shoe_size", field_type="number")
    colour = CustomFieldDefinitionFactory(key="colour", field_type="choice")
    both = CustomerFactory(tags=[vip, wholesale], custom_fields={"shoe_size": 42, "colour": "red"})
    only_vip = CustomerFactory(tags=[vip], custom_fields={"shoe_size": 38})
    none = CustomerFactory()
    score(
        both,
        rfm_segment="champions",
        r_score=5,
        f_score=5,
        m_score=5,
        predicted_clv=Decimal("900"),
        probability_alive=0.9,
        lifecycle_stage="loyal",
    )
    score(
        only_vip,
        rfm_segment="at_risk",
        r_score=1,
        f_score=4,
        m_score=4,
        predicted_clv=Decimal("100"),
        probability_alive=0.2,
        lifecycle_stage="at_risk",
    )

    assert matching(rule("tags", "has_any", [vip.pk])) == {both.pk, only_vip.pk}
    assert matching(rule("tags", "has_all", [vip.pk, wholesale.pk])) == {both.pk}
    assert matching(rule("tags", "has_none", [wholesale.pk])) == {only_vip.pk, none.pk}
    assert matching(rule(f"cf:{size.key}", "gte", 40)) == {both.pk}
    assert matching(rule(f"cf:{colour.key}", "in", ["red"])) == {both.pk}
    assert matching(rule(f"cf:{colour.key}", "is_empty")) == {only_vip.pk, none.pk}
    assert matching(rule("rfm_segment", "in", ["champions", "loyal"])) == {both.pk}
    assert matching(rule("rfm_segment", "not_in", ["champions"])) == {only_vip.pk, none.pk}
    assert matching(rule("predicted_clv", "gte", 500)) == {both.pk}
    assert matching(rule("probability_alive", "lt", 0.5)) == {only_vip.pk}
    assert matching(rule("probability_alive", "is_empty")) == {none.pk}
    assert matching(rule("lifecycle_stage", "in", ["at_risk"])) == {only_vip.pk}
    # AND / OR groups
    either = {
        "op": "or",
        "rules": [rule("rfm_segment", "in", ["champions"]), rule("tags", "has_none", [vip.pk])],
    }
    assert matching(either) == {both.pk, none.pk}
    combined = {"op": "and", "rules": [either, rule("predicted_clv", "is_not_empty")]}
    assert matching(combined) == {both.pk}
    # multi-valued tag joins never duplicate customers
    assert Customer.objects.filter(rules_to_q(rule("tags", "has_any", [vip.pk, wholesale.pk]))).count() == 2


def test_builder_reads_the_posted_form_and_applies_actions(tenant):
    data = QueryDict(mutable=True)
    data.update(
        {
            "top_op": "or",
            "g0_op": "and",
            "g0_c0_field": "total_spent",
            "g0_c0_op": "between",
            "g0_c0_value": "10",
            "g0_c0_value2": "20",
            "g3_op": "or",
            "g3_c5_field": "gender",
            "g3_c5_op": "in",
        }
    )
    data.setlist("g3_c5_value", ["female", "male"])
    data.update({"g3_c6_field": "city", "g3_c6_op": "gt", "g3_c6_value": "x"})  # op invalid for the field
    rules = builder.rules_from_post(data)
    assert rules == {
        "op": "or",
        "rules": [
            {"op": "and", "rules": [{"field": "total_spent", "op": "between", "value": ["10", "20"]}]},
            {
                "op": "or",
                "rules": [
                    {"field": "gender", "op": "in", "value": ["female", "male"]},
                    {"field": "city", "op": "eq", "value": "x"},
                ],
            },
        ],
    }
    assert validate_rules(rules)["rules"][0]["rules"][0]["value"] == [10, 20]
    rules = builder.apply_action(rules, "add_condition:0")
    assert len(rules["rules"][0]["rules"]) == 2
    rules = builder.apply_action(rules, "remove_group:1")
    rules = builder.apply_action(rules, "remove_condition:0:0")
    rules = builder.apply_action(
        rules, "remove_condition:0:0"
    )  # last one: the group goes, an empty one comes
    assert rules["rules"] == [{"op": "and", "rules": [builder.empty_condition()]}]
    context = builder.builder_context(builder.for_builder(rule("rfm_segment", "in", ["lost"])))
    condition = context["groups"][0]["conditions"][0]
    assert condition["widget"] == "multi"
    assert ("lost", "Lost", True) in condition["choices"]


ABUSIVE_NUMBERS = ["1e400000", "1e10000000", "9" * 10_000, "nan", "inf", "-Infinity", "1_000"]


@pytest.mark.parametrize("text", ABUSIVE_NUMBERS)
@pytest.mark.parametrize("field", ["orders_count", "total_spent", "predicted_clv", "age", "r_score"])
def test_abusive_numbers_are_refused_quickly_with_a_message(tenant, text, field):
    import time

    started = time.perf_counter()
    with pytest.raises(RuleError) as caught:
        validate_rules(rule(field, "gte", text))
    with pytest.raises(RuleError):
        validate_rules(rule(field, "between", [text, "5"]))
    assert time.perf_counter() - started < 0.5
    (message,) = caught.value.messages
    assert message.startswith("Condition 1 (")
    assert any(hint in message for hint in ("enter a number", "too long", "too large"))


def test_rule_numbers_minus_zero_and_spaces(tenant):
    assert validate_rules(rule("orders_count", "gte", " -0 "))["rules"][0]["value"] == 0
    assert validate_rules(rule("total_spent", "gte", " 1,000.5 "))["rules"][0]["value"] == 1000.5
    assert validate_rules(rule("last_order_at", "within_last_days", " 30 "))["rules"][0]["value"] == 30
    with pytest.raises(RuleError, match="between 0 and 36500"):
        validate_rules(rule("last_order_at", "within_last_days", "1e400000"))


def test_builder_field_names_and_actions_are_bounded(tenant):
    posted = QueryDict(mutable=True)
    posted.update({"g0_op": "and", "g0_c0_field": "city", "g0_c0_op": "eq", "g0_c0_value": "x"})
    posted[f"g{'9' * 5000}_op"] = "and"
    posted[f"g0_c{'9' * 5000}_field"] = "city"
    rules = builder.rules_from_post(posted)
    assert len(rules["rules"]) == 1 and len(rules["rules"][0]["rules"]) == 1
    assert builder.apply_action(rules, "remove_group:" + "9" * 5000) == rules
