"""Rule-based segments: validate a rules document and compile it to one Django `Q` on Customer.

The builder's live preview and a saved segment used as a customer-list filter both go through
`validate_rules` + `compile_rules`, so they can never disagree.

Format (JSON)::

    {"op": "and", "rules": [
        {"field": "city", "op": "eq", "value": "Shanghai"},
        {"op": "or", "rules": [
            {"field": "rfm_segment", "op": "in", "value": ["champions", "loyal"]},
            {"field": "predicted_clv", "op": "gte", "value": 1000}
        ]}
    ]}

A group has `op` "and"/"or" and a list of `rules` (conditions or groups, nested at most
`MAX_DEPTH` deep); an empty top-level group matches every customer. A condition names a `field`
from `available_fields()`, an operator allowed for the field's kind and a value of the right type.
Custom fields are `cf:<key>`. Other apps (loyalty: tier, points) can add fields with
`register_rule_field`.

Errors are collected, not raised one at a time: `RuleError.messages` lists every problem with its
position ("Group 1, condition 2 (Total spent): enter a number.").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from crm.numbers import NumberError, parse_decimal, parse_int

from .labels import LifecycleStage, RfmSegment

MAX_DEPTH = 3
MAX_CONDITIONS = 50
# Numbers in rules: money up to 10^12 (numeric(14, 2)) and scores with a few decimals.
RULE_MAX_DIGITS = 18
RULE_DECIMAL_PLACES = 6


class RuleError(ValidationError):
    """Raised with every problem found in a rules document (`.messages`)."""


# --------------------------------------------------------------------------------------------------
# Operators per kind
# --------------------------------------------------------------------------------------------------
OPERATOR_LABELS: dict[str, Promise] = {
    "eq": _("is"),
    "ne": _("is not"),
    "contains": _("contains"),
    "in": _("is any of"),
    "not_in": _("is none of"),
    "gt": _("greater than"),
    "gte": _("at least"),
    "lt": _("less than"),
    "lte": _("at most"),
    "between": _("between"),
    "before": _("before"),
    "after": _("after"),
    "within_last_days": _("within the last (days)"),
    "more_than_days_ago": _("more than (days) ago"),
    "is_empty": _("is empty"),
    "is_not_empty": _("is not empty"),
    "is_true": _("is yes"),
    "is_false": _("is no"),
    "has_any": _("has any of"),
    "has_all": _("has all of"),
    "has_none": _("has none of"),
}

KIND_OPERATORS: dict[str, tuple[str, ...]] = {
    "text": ("eq", "ne", "contains", "in", "is_empty", "is_not_empty"),
    "choice": ("in", "not_in"),
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "between", "is_empty", "is_not_empty"),
    "date": (
        "before",
        "after",
        "between",
        "within_last_days",
        "more_than_days_ago",
        "is_empty",
        "is_not_empty",
    ),
    "bool": ("is_true", "is_false"),
    "month": ("in", "not_in"),
    "age": ("gte", "lte", "between", "is_empty", "is_not_empty"),
    "tags": ("has_any", "has_all", "has_none"),
    "multi_choice": ("has_any", "has_all", "has_none"),
}
NO_VALUE_OPERATORS = {"is_empty", "is_not_empty", "is_true", "is_false"}
LIST_OPERATORS = {"in", "not_in", "has_any", "has_all", "has_none"}

MONTHS = [
    (1, _("January")),
    (2, _("February")),
    (3, _("March")),
    (4, _("April")),
    (5, _("May")),
    (6, _("June")),
    (7, _("July")),
    (8, _("August")),
    (9, _("September")),
    (10, _("October")),
    (11, _("November")),
    (12, _("December")),
]


@dataclass(frozen=True)
class RuleField:
    """A field a condition can test.

    `lookup` is the ORM path from Customer (e.g. "score__predicted_clv"); `kind` picks the operators
    and the value type; `choices()` returns [(value, label)] for choice/tags/month kinds; `nullable`
    tells whether "is empty" should test NULL (else the empty string). `compile` (optional) overrides
    the default compilation: `compile(op, value) -> Q`. `minimum`/`maximum` bound numbers.
    """

    key: str
    label: str | Promise
    kind: str
    lookup: str = ""
    group: str | Promise = ""
    choices: Callable[[], list[tuple[Any, Any]]] | None = None
    nullable: bool = True
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    compile: Callable[[str, Any], Q] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def default_operator(self) -> str:
        """The comparison a new condition on this field starts with: "at least" for a quantity (money,
        counts, scores: "Total spent is 1000" would match almost nobody), else the first one."""
        return "gte" if "gte" in self.operators else self.operators[0]

    @property
    def operators(self) -> tuple[str, ...]:
        ops = KIND_OPERATORS[self.kind]
        if self.kind in ("choice", "multi_choice") and self.nullable:
            ops = ops + ("is_empty", "is_not_empty")  # e.g. a custom choice field nobody filled in
        if self.kind in ("number", "date", "age") and not self.nullable:
            ops = tuple(op for op in ops if op not in ("is_empty", "is_not_empty"))
        return ops


# --------------------------------------------------------------------------------------------------
# Fields
# --------------------------------------------------------------------------------------------------
def _model_choices(model_path: str, field_name: str) -> Callable[[], list[tuple[Any, Any]]]:
    def choices():
        from django.apps import apps

        model = apps.get_model(model_path)
        return list(model._meta.get_field(field_name).choices)

    return choices


def _tag_choices() -> list[tuple[Any, Any]]:
    from customers.models import Tag

    return list(Tag.objects.live().order_by("name").values_list("pk", "name"))


def _years_before(today: dt.date, years: int) -> dt.date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February in a year without one
        return today.replace(year=today.year - years, day=28)


def _compile_age(op: str, value: Any) -> Q:
    """Age in whole years at today's date, as birthday ranges (index-friendly)."""
    today = timezone.localdate()
    if op == "is_empty":
        return Q(birthday__isnull=True)
    if op == "is_not_empty":
        return Q(birthday__isnull=False)

    def at_least(years: int) -> Q:
        return Q(birthday__lte=_years_before(today, int(years)))

    def at_most(years: int) -> Q:
        return Q(birthday__gt=_years_before(today, int(years) + 1))

    if op == "gte":
        return at_least(value)
    if op == "lte":
        return at_most(value)
    low, high = value
    return at_least(low) & at_most(high)


def _compile_tags(op: str, value: list[int]) -> Q:
    from customers.models import Customer

    # A tag in the recycle bin counts for nothing, even in a rule saved before it was binned.
    through = Customer.tags.through.objects.filter(tag__deleted_at__isnull=True)
    if op == "has_any":
        return Q(pk__in=through.filter(tag_id__in=value).values("customer_id"))
    if op == "has_none":
        return ~Q(pk__in=through.filter(tag_id__in=value).values("customer_id"))
    q = Q()
    for tag_id in value:  # has_all: one semi-join per tag
        q &= Q(pk__in=through.filter(tag_id=tag_id).values("customer_id"))
    return q


def replace_tag(rules: Any, *, source_id: int, target_id: int) -> Any:
    """`rules` with every tags condition naming `source_id` naming `target_id` instead (once)."""
    if isinstance(rules, dict):
        if rules.get("field") == "tags" and isinstance(rules.get("value"), list):
            values = [target_id if v == source_id else v for v in rules["value"]]
            return {**rules, "value": list(dict.fromkeys(values))}
        return {
            key: replace_tag(value, source_id=source_id, target_id=target_id) for key, value in rules.items()
        }
    if isinstance(rules, list):
        return [replace_tag(item, source_id=source_id, target_id=target_id) for item in rules]
    return rules


def _stage_choices():
    return list(LifecycleStage.choices)


def _segment_choices():
    return list(RfmSegment.choices)


BASE_FIELDS: list[RuleField] = [
    # Demographics
    RuleField("gender", _("Gender"), "choice", "gender", _("Demographics"),
              _model_choices("customers.Customer", "gender"), nullable=False),
    RuleField("income_band", _("Income band"), "choice", "income_band", _("Demographics"),
              lambda: [("", _t("Not given"))] + _model_choices("customers.Customer", "income_band")(),
              nullable=False),
    RuleField("age", _("Age (years)"), "age", "birthday", _("Demographics"), minimum=0, maximum=150,
              integer=True, compile=_compile_age),
    RuleField("birthday_month", _("Birthday month"), "month", "birthday__month", _("Demographics"),
              lambda: list(MONTHS)),
    RuleField("city", _("City"), "text", "city", _("Demographics"), nullable=False),
    RuleField("province", _("Province/state"), "text", "province", _("Demographics"), nullable=False),
    RuleField("occupation", _("Occupation"), "text", "occupation", _("Demographics"), nullable=False),
    RuleField("source", _("Source channel"), "choice", "source", _("Demographics"),
              _model_choices("customers.Customer", "source"), nullable=False),
    RuleField("kind", _("Customer kind"), "choice", "kind", _("Demographics"),
              _model_choices("customers.Customer", "kind"), nullable=False),
    RuleField("tags", _("Tags"), "tags", "tags", _("Demographics"), _tag_choices, compile=_compile_tags),
    RuleField("email_consent", _("Email consent"), "bool", "email_consent", _("Consent"), nullable=False),
    RuleField("sms_consent", _("SMS consent"), "bool", "sms_consent", _("Consent"), nullable=False),
    # Purchases
    RuleField("total_spent", _("Total spent"), "number", "total_spent", _("Purchases"), nullable=False,
              minimum=0),
    RuleField("orders_count", _("Order count"), "number", "orders_count", _("Purchases"), nullable=False,
              minimum=0, integer=True),
    RuleField("last_order_at", _("Last purchase date"), "date", "last_order_at", _("Purchases")),
    RuleField("first_order_at", _("First purchase date"), "date", "first_order_at", _("Purchases")),
    RuleField("created_at", _("Customer since"), "date", "created_at", _("Purchases"), nullable=False),
    # Value (segmentation)
    RuleField("rfm_segment", _("RFM segment"), "choice", "score__rfm_segment", _("Value"), _segment_choices,
              nullable=False),
    RuleField("r_score", _("R score (1-5)"), "number", "score__r_score", _("Value"), minimum=1, maximum=5,
              integer=True),
    RuleField("f_score", _("F score (1-5)"), "number", "score__f_score", _("Value"), minimum=1, maximum=5,
              integer=True),
    RuleField("m_score", _("M score (1-5)"), "number", "score__m_score", _("Value"), minimum=1, maximum=5,
              integer=True),
    RuleField("predicted_clv", _("Predicted CLV"), "number", "score__predicted_clv", _("Value")),
    # Stored as a fraction like the score; entered and shown in percent, as everywhere else on the
    # pages (segmentation.builder converts).
    RuleField("probability_alive", _("Chance still active (%)"), "number", "score__probability_alive",
              _("Value"), minimum=0, maximum=1, extra={"percent": True}),
    RuleField("expected_purchases_90d", _("Expected purchases (90 days)"), "number",
              "score__expected_purchases_90d", _("Value"), minimum=0),
    RuleField("lifecycle_stage", _("Lifecycle stage"), "choice", "score__lifecycle_stage", _("Value"),
              _stage_choices, nullable=False),
]  # fmt: skip

# Fields other apps add (loyalty: tier, points) with register_rule_field().
_EXTRA_FIELDS: dict[str, RuleField] = {}


def register_rule_field(rule_field: RuleField) -> None:
    _EXTRA_FIELDS[rule_field.key] = rule_field


_CUSTOM_KINDS = {
    "text": "text",
    "number": "number",
    "date": "date",
    "choice": "choice",
    "multi_choice": "multi_choice",
    "boolean": "bool",
}


def _custom_fields() -> list[RuleField]:
    from customers.models import CustomFieldDefinition

    fields = []
    for definition in CustomFieldDefinition.objects.filter(is_active=True).order_by("position", "label"):
        kind = _CUSTOM_KINDS.get(definition.field_type)
        if kind is None:
            continue
        choices = None
        if kind in ("choice", "multi_choice"):
            values = [str(v) for v in (definition.choices or [])]
            choices = lambda values=values: [(v, v) for v in values]  # noqa: E731
        fields.append(
            RuleField(
                f"cf:{definition.key}",
                definition.label,
                kind,
                f"custom_fields__{definition.key}",
                _("Custom fields"),
                choices,
                nullable=True,
                extra={"custom_key": definition.key},
            )
        )
    return fields


def available_fields() -> dict[str, RuleField]:
    """Every field a rule may use in this tenant (one query for the custom field definitions)."""
    fields = {f.key: f for f in BASE_FIELDS}
    fields.update(_EXTRA_FIELDS)
    fields.update({f.key: f for f in _custom_fields()})
    return fields


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------
def _number(raw: Any, spec: RuleField) -> int | float:
    if isinstance(raw, bool) or raw is None or (isinstance(raw, str) and not raw.strip()):
        raise ValueError(_t("enter a number"))
    # Bounded before conversion (crm.numbers): "1e400000" once cost minutes of CPU here.
    try:
        number = parse_decimal(
            raw,
            minimum=None if spec.minimum is None else Decimal(str(spec.minimum)),
            maximum=None if spec.maximum is None else Decimal(str(spec.maximum)),
            max_digits=RULE_MAX_DIGITS,
            decimal_places=0 if spec.integer else RULE_DECIMAL_PLACES,
        )
    except NumberError as exc:
        if exc.code in ("invalid", "required"):
            raise ValueError(_t("enter a number"))
        if spec.extra.get("percent") and exc.code in ("min", "max"):
            # entered in percent (segmentation.builder): say so in the same unit
            raise ValueError(_t("enter a percentage from 0 to 100"))
        raise
    return int(number) if number == number.to_integral_value() else float(number)


def _days(raw: Any) -> int:
    try:
        return parse_int(raw, minimum=0, maximum=36500)
    except NumberError:
        raise ValueError(_t("enter a number of days between 0 and 36500"))


def _date(raw: Any) -> str:
    if isinstance(raw, dt.date):
        return raw.isoformat()
    try:
        return dt.date.fromisoformat(str(raw).strip()).isoformat()
    except (TypeError, ValueError):
        raise ValueError(_t("enter a date as YYYY-MM-DD"))


def _as_list(raw: Any) -> list:
    if raw is None or raw == "":
        return []
    if isinstance(raw, list | tuple):
        return [v for v in raw if v not in (None, "")]
    if isinstance(raw, str):
        return [part.strip() for part in raw.split(",") if part.strip()]
    return [raw]


def _choice_values(raw: Any, spec: RuleField) -> list:
    values = _as_list(raw)
    if not values:
        raise ValueError(_t("choose at least one value"))
    allowed = {str(value): value for value, _label in (spec.choices() if spec.choices else [])}
    clean = []
    for value in values:
        if str(value) not in allowed:
            raise ValueError(_t("“%(value)s” is not one of the available choices") % {"value": value})
        clean.append(allowed[str(value)])
    return clean


def _validate_value(spec: RuleField, op: str, raw: Any) -> Any:
    if op in NO_VALUE_OPERATORS:
        return None
    kind = spec.kind
    if op in LIST_OPERATORS and kind in ("choice", "month", "tags", "multi_choice"):
        return _choice_values(raw, spec)
    if kind == "text":
        if op == "in":
            values = [str(v) for v in _as_list(raw)]
            if not values:
                raise ValueError(_t("enter at least one value, separated by commas"))
            return values
        text = "" if raw is None else str(raw).strip()
        if not text:
            raise ValueError(_t("enter a value"))
        return text[:200]
    if kind in ("number", "age"):
        if op == "between":
            values = raw if isinstance(raw, list | tuple) else _as_list(raw)
            if len(values) != 2:
                raise ValueError(_t("enter a lower and an upper bound"))
            low, high = _number(values[0], spec), _number(values[1], spec)
            if low > high:
                raise ValueError(_t("the lower bound is above the upper bound"))
            return [low, high]
        return _number(raw, spec)
    if kind == "date":
        if op in ("within_last_days", "more_than_days_ago"):
            return _days(raw)
        if op == "between":
            values = raw if isinstance(raw, list | tuple) else _as_list(raw)
            if len(values) != 2:
                raise ValueError(_t("enter a start and an end date"))
            start, end = _date(values[0]), _date(values[1])
            if start > end:
                raise ValueError(_t("the start date is after the end date"))
            return [start, end]
        return _date(raw)
    raise ValueError(_t("this operator does not take a value"))  # pragma: no cover - guarded above


def _position(path: list[int]) -> str:
    if not path:
        return _t("Rules")
    if len(path) == 1:
        return _t("Condition %(n)s") % {"n": path[0] + 1}
    parts = [_t("Group %(n)s") % {"n": n + 1} for n in path[:-1]]
    parts.append(_t("condition %(n)s") % {"n": path[-1] + 1})
    # Translators: joins "Group 1" and "condition 2" in a rule error's location.
    return _t(", ").join(parts)


def validate_rules(rules: Any, *, fields: dict[str, RuleField] | None = None) -> dict:
    """Return the normalised rules document or raise `RuleError` listing every problem."""
    fields = fields if fields is not None else available_fields()
    errors: list[str] = []
    count = 0

    def group(node: Any, path: list[int], depth: int) -> dict:
        nonlocal count
        where = _t("Group %(n)s") % {"n": path[-1] + 1} if path else _t("Rules")
        if not isinstance(node, dict):
            errors.append(_t("%(where)s: expected a group of conditions.") % {"where": where})
            return {"op": "and", "rules": []}
        op = str(node.get("op", "and")).lower()
        if op not in ("and", "or"):
            errors.append(_t("%(where)s: combine conditions with “and” or “or”.") % {"where": where})
            op = "and"
        children = node.get("rules", [])
        if not isinstance(children, list):
            errors.append(_t("%(where)s: expected a list of conditions.") % {"where": where})
            children = []
        clean_children = []
        for index, child in enumerate(children):
            child_path = path + [index]
            if isinstance(child, dict) and "rules" in child:
                if depth >= MAX_DEPTH:
                    errors.append(
                        _t("%(where)s: groups can be nested at most %(max)s deep.")
                        % {"where": _position(child_path), "max": MAX_DEPTH}
                    )
                    continue
                subgroup = group(child, child_path, depth + 1)
                if subgroup["rules"]:  # an empty subgroup would mean "everyone" inside an "or"
                    clean_children.append(subgroup)
            else:
                count += 1
                clean = condition(child, child_path)
                if clean is not None:
                    clean_children.append(clean)
        return {"op": op, "rules": clean_children}

    def condition(node: Any, path: list[int]) -> dict | None:
        where = _position(path)
        if not isinstance(node, dict):
            errors.append(_t("%(where)s: expected a condition.") % {"where": where})
            return None
        key = node.get("field")
        spec = fields.get(key) if isinstance(key, str) else None
        if spec is None:
            if not key:
                errors.append(_t("%(where)s: choose a field.") % {"where": where})
            else:
                errors.append(_t("%(where)s: unknown field “%(field)s”.") % {"where": where, "field": key})
            return None
        where = f"{where} ({spec.label})"
        op = node.get("op")
        if op not in spec.operators:
            errors.append(
                _t("%(where)s: choose a comparison (“%(op)s” does not apply to this field).")
                % {"where": where, "op": op or ""}
            )
            return None
        try:
            value = _validate_value(spec, op, node.get("value"))
        except NumberError as exc:  # already a sentence
            errors.append(_t("%(where)s: %(problem)s") % {"where": where, "problem": exc.message})
            return None
        except ValueError as exc:
            errors.append(f"{where}: {exc}.")
            return None
        clean = {"field": key, "op": op}
        if op not in NO_VALUE_OPERATORS:
            clean["value"] = value
        return clean

    clean = group(rules if rules not in (None, "") else {"op": "and", "rules": []}, [], 1)
    if count > MAX_CONDITIONS:
        errors.append(_t("Use at most %(max)s conditions.") % {"max": MAX_CONDITIONS})
    if errors:
        raise RuleError(errors)
    return clean


def count_conditions(rules: dict) -> int:
    total = 0
    for child in rules.get("rules", []):
        total += count_conditions(child) if "rules" in child else 1
    return total


# --------------------------------------------------------------------------------------------------
# Compilation
# --------------------------------------------------------------------------------------------------
def _start_of_day(value: str) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(dt.date.fromisoformat(value), dt.time.min))


def _compile_condition(spec: RuleField, op: str, value: Any) -> Q:
    if spec.compile is not None:
        return spec.compile(op, value)
    lookup = spec.lookup
    kind = spec.kind
    is_custom = "custom_key" in spec.extra
    is_datetime = kind == "date" and not is_custom and lookup != "birthday"

    if op == "is_empty":
        if is_custom:
            key = spec.extra["custom_key"]
            return ~Q(custom_fields__has_key=key) | Q(**{f"{lookup}__isnull": True}) | Q(**{lookup: ""})
        return Q(**{f"{lookup}__isnull": True}) if spec.nullable and kind != "text" else Q(**{lookup: ""})
    if op == "is_not_empty":
        return ~_compile_condition(spec, "is_empty", None)
    if op == "is_true":
        return Q(**{lookup: True})
    if op == "is_false":
        if is_custom:
            # Not answered counts as "no"; NOT (value = true) alone is NULL, not true, for a missing key.
            return ~Q(**{lookup: True}) | ~Q(custom_fields__has_key=spec.extra["custom_key"])
        return Q(**{lookup: False})
    if kind == "multi_choice":  # a JSON list in custom_fields: containment uses the GIN index
        key = spec.extra["custom_key"]
        parts = [Q(custom_fields__contains={key: [v]}) for v in value]
        if op == "has_all":
            return Q(custom_fields__contains={key: list(value)})
        combined = Q()
        for part in parts:
            combined |= part
        return combined if op == "has_any" else ~combined
    if op == "eq":
        if is_custom:
            return Q(custom_fields__contains={spec.extra["custom_key"]: value})
        return Q(**{f"{lookup}__iexact" if kind == "text" else lookup: value})
    if op == "ne":
        if is_custom:
            return ~Q(custom_fields__contains={spec.extra["custom_key"]: value})
        return ~Q(**{f"{lookup}__iexact" if kind == "text" else lookup: value})
    if op == "contains":
        return Q(**{f"{lookup}__icontains": value})
    if op == "in":
        return Q(**{f"{lookup}__in": value})
    if op == "not_in":
        return ~Q(**{f"{lookup}__in": value})
    if op in ("gt", "gte", "lt", "lte"):
        return Q(**{f"{lookup}__{op}": value})
    if op == "between" and kind == "number":
        return Q(**{f"{lookup}__gte": value[0], f"{lookup}__lte": value[1]})
    # dates
    now = timezone.now()
    if op in ("within_last_days", "more_than_days_ago"):
        boundary = now - dt.timedelta(days=int(value))
        if not is_datetime:
            boundary = boundary.date().isoformat() if is_custom else boundary.date()
        return Q(**{f"{lookup}__gte" if op == "within_last_days" else f"{lookup}__lt": boundary})
    if op in ("before", "after", "between"):
        if is_datetime:
            # Dates are whole days in the active time zone: "before 5 May" = before 5 May 00:00 local.
            if op == "before":
                return Q(**{f"{lookup}__lt": _start_of_day(value)})
            if op == "after":
                return Q(**{f"{lookup}__gte": _start_of_day(value) + dt.timedelta(days=1)})
            return Q(**{f"{lookup}__gte": _start_of_day(value[0])}) & Q(
                **{f"{lookup}__lt": _start_of_day(value[1]) + dt.timedelta(days=1)}
            )
        if op == "before":
            return Q(**{f"{lookup}__lt": value})
        if op == "after":
            return Q(**{f"{lookup}__gt": value})
        return Q(**{f"{lookup}__gte": value[0], f"{lookup}__lte": value[1]})
    raise RuleError([_t("Unsupported comparison “%(op)s”.") % {"op": op}])  # pragma: no cover


def compile_rules(rules: dict, *, fields: dict[str, RuleField] | None = None) -> Q:
    """Compile VALIDATED rules (the output of `validate_rules`) to a Q on Customer."""
    fields = fields if fields is not None else available_fields()

    def node(item: dict) -> Q:
        if "rules" in item:
            children = [node(child) for child in item["rules"]]
            if not children:
                return Q()  # only the top-level group can be empty (validation drops empty subgroups)
            combined = children[0]
            for child in children[1:]:
                combined = (combined | child) if item.get("op") == "or" else (combined & child)
            return combined
        spec = fields.get(item["field"])
        if spec is None:
            raise RuleError([_t("Unknown field “%(field)s”.") % {"field": item["field"]}])
        return _compile_condition(spec, item["op"], item.get("value"))

    return node(rules)


def rules_to_q(rules: Any) -> Q:
    """Validate and compile in one step (one custom-field query): what every caller should use."""
    fields = available_fields()
    return compile_rules(validate_rules(rules, fields=fields), fields=fields)
