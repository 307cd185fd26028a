"""The segment builder's form state: posted fields <-> a rules document, and what each row shows.

The builder is rendered by the server: every change (add/remove a condition or group, pick another
field) posts the whole form and gets the builder back, so operators and value inputs always match
the chosen field and nothing but htmx runs in the browser. Field names:

    top_op                  "and" / "or" between the groups
    g<i>_op                 "and" / "or" inside group i
    g<i>_c<j>_field         the field of condition j of group i
    g<i>_c<j>_op            its operator
    g<i>_c<j>_value         its value (several values for "is any of", "has any of", ...)
    g<i>_c<j>_value2        the upper bound for "between"

The state kept here is RAW (what the user typed); `segmentation.rules.validate_rules` checks it.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from crm.numbers import NumberError, parse_int

from .rules import LIST_OPERATORS, NO_VALUE_OPERATORS, OPERATOR_LABELS, RuleField, available_fields

# At most three digits: the numbers in posted field names are bounded before int() (see crm.numbers).
GROUP_RE = re.compile(r"^g(\d{1,3})_op$", re.ASCII)
CONDITION_RE = re.compile(r"^g(\d{1,3})_c(\d{1,3})_field$", re.ASCII)
MAX_GROUPS = 10
MAX_CONDITIONS_PER_GROUP = 20


def empty_condition() -> dict:
    return {"field": "", "op": "", "value": ""}


def empty_rules() -> dict:
    return {"op": "and", "rules": [{"op": "and", "rules": [empty_condition()]}]}


def _op(value: Any) -> str:
    return "or" if str(value).lower() == "or" else "and"


def rules_from_post(data) -> dict:
    """Build the (raw) two-level rules document from the posted builder fields."""
    group_ids = sorted({int(m.group(1)) for key in data if (m := GROUP_RE.match(key))})
    condition_ids: dict[int, set[int]] = {}
    for key in data:
        match = CONDITION_RE.match(key)
        if match:
            condition_ids.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    group_ids = sorted(set(group_ids) | set(condition_ids))[:MAX_GROUPS]
    fields = available_fields()
    groups = []
    for g in group_ids:
        conditions = []
        for c in sorted(condition_ids.get(g, set()))[:MAX_CONDITIONS_PER_GROUP]:
            prefix = f"g{g}_c{c}"
            field_key = data.get(f"{prefix}_field", "")
            op = data.get(f"{prefix}_op", "")
            spec = fields.get(field_key)
            if spec is not None and op not in spec.operators:
                op = spec.default_operator  # the field changed: start with its usual comparison
            if op in NO_VALUE_OPERATORS:
                value: Any = None
            elif op in LIST_OPERATORS and spec is not None and spec.kind != "text":
                value = [v for v in data.getlist(f"{prefix}_value") if v != ""]
            elif op == "between":
                value = [data.get(f"{prefix}_value", ""), data.get(f"{prefix}_value2", "")]
            else:
                value = data.get(f"{prefix}_value", "")
            condition = {"field": field_key, "op": op}
            if value is not None:
                condition["value"] = (
                    _from_percent(value) if spec is not None and spec.extra.get("percent") else value
                )
            conditions.append(condition)
        groups.append({"op": _op(data.get(f"g{g}_op", "and")), "rules": conditions})
    return {"op": _op(data.get("top_op", "and")), "rules": groups}


def _scaled(value: Any, factor: Decimal) -> Any:
    """A typed number times `factor` as plain text; anything else unchanged (validation says why)."""
    if isinstance(value, list):
        return [_scaled(v, factor) for v in value]
    text = str(value).strip()
    if not text or len(text) > 30:
        return value
    try:
        number = Decimal(text.replace(",", ".")) * factor
    except (InvalidOperation, ValueError):
        return value
    if not number.is_finite():
        return value
    return format(number.normalize(), "f")


def _from_percent(value: Any) -> Any:
    return _scaled(value, Decimal("0.01"))


def _to_percent(value: Any) -> Any:
    return _scaled(value, Decimal(100))


def _index(text: str) -> int | None:
    try:
        return parse_int(text, minimum=0, maximum=MAX_GROUPS * MAX_CONDITIONS_PER_GROUP, thousands=False)
    except NumberError:
        return None


def apply_action(rules: dict, action: str) -> dict:
    """Add or remove a group or condition ("add_group", "remove_group:1", "add_condition:0",
    "remove_condition:0:2"); unknown actions change nothing."""
    groups = rules.setdefault("rules", [])
    parts = [_index(part) if n else part for n, part in enumerate((action or "")[:40].split(":"))]
    try:
        if parts[0] == "add_group" and len(groups) < MAX_GROUPS:
            groups.append({"op": "and", "rules": [empty_condition()]})
        elif parts[0] == "remove_group":
            del groups[parts[1]]
        elif parts[0] == "add_condition":
            group = groups[parts[1]]
            if len(group["rules"]) < MAX_CONDITIONS_PER_GROUP:
                group["rules"].append(empty_condition())
        elif parts[0] == "remove_condition":
            group = groups[parts[1]]
            del group["rules"][parts[2]]
            if not group["rules"]:
                del groups[parts[1]]
    except (IndexError, TypeError, KeyError):
        pass
    if not groups:
        groups.append({"op": "and", "rules": [empty_condition()]})
    return rules


def without_blank_conditions(rules: dict) -> dict:
    """The rules without conditions that have no field yet (a row just added, or the empty builder):
    the preview counts what has been chosen so far instead of complaining about what has not."""
    groups = []
    for group in rules.get("rules", []):
        if not isinstance(group, dict):
            continue
        children = [
            child
            for child in group.get("rules", [])
            if not (isinstance(child, dict) and "rules" not in child and not child.get("field"))
        ]
        if children:
            groups.append({**group, "rules": children})
    return {**rules, "rules": groups}


def for_builder(rules: dict | None) -> dict:
    """Shape any stored rules document into the builder's two levels (top-level conditions are put
    in a group of their own; deeper nesting, which the builder does not create, is kept as is)."""
    if not rules or not isinstance(rules, dict) or not rules.get("rules"):
        return empty_rules()
    groups, loose = [], []
    for child in rules.get("rules", []):
        if isinstance(child, dict) and "rules" in child:
            groups.append(child)
        else:
            loose.append(child)
    if loose:
        groups.insert(0, {"op": rules.get("op", "and"), "rules": loose})
    return {"op": rules.get("op", "and"), "rules": groups}


def _as_list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def _widget(spec: RuleField | None, op: str) -> str:
    if spec is None or not op or op in NO_VALUE_OPERATORS:
        return "none"
    if op in LIST_OPERATORS and spec.kind != "text":
        return "multi"
    if spec.kind == "date":
        if op in ("within_last_days", "more_than_days_ago"):
            return "days"
        return "date_between" if op == "between" else "date"
    if spec.kind in ("number", "age"):
        return "number_between" if op == "between" else "number"
    return "text"


def builder_context(rules: dict) -> dict:
    """What the builder template renders: field options grouped, and per condition its operators,
    value widget and current values."""
    fields = available_fields()
    grouped: dict[str, list[tuple[str, str]]] = {}
    for spec in fields.values():
        grouped.setdefault(str(spec.group), []).append((spec.key, str(spec.label)))
    field_groups = [{"label": label, "options": options} for label, options in grouped.items()]
    groups = []
    for g, group in enumerate(rules.get("rules", [])):
        conditions = []
        children = group.get("rules", []) if isinstance(group, dict) else []
        for c, condition in enumerate(children):
            if not isinstance(condition, dict) or "rules" in condition:
                continue  # nested deeper than the builder shows
            spec = fields.get(condition.get("field", ""))
            op = condition.get("op", "")
            if spec is not None and op not in spec.operators:
                op = spec.default_operator
            raw = condition.get("value")
            if spec is not None and spec.extra.get("percent") and raw not in (None, ""):
                raw = _to_percent(raw)
            values = _as_list(raw)
            widget = _widget(spec, op)
            choices = []
            if widget == "multi" and spec is not None and spec.choices:
                choices = [(str(v), str(label), str(v) in values) for v, label in spec.choices()]
            conditions.append(
                {
                    "index": c,
                    "prefix": f"g{g}_c{c}",
                    "field": condition.get("field", ""),
                    "op": op,
                    "operators": [(o, str(OPERATOR_LABELS[o])) for o in spec.operators] if spec else [],
                    "widget": widget,
                    "choices": choices,
                    "value": values[0] if values else "",
                    "value2": values[1] if len(values) > 1 else "",
                    "text_value": ", ".join(values) if op == "in" else (values[0] if values else ""),
                }
            )
        groups.append({"index": g, "op": group.get("op", "and"), "conditions": conditions})
    return {"top_op": rules.get("op", "and"), "groups": groups, "field_groups": field_groups}
