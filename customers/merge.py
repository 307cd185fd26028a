"""Merging two customer records into one, and undoing it from the recycle bin.

`customer_merge` keeps one customer (the survivor), takes the chosen value of every differing field
from either record, and asks every registered merge hook (`customers.registry.registry.merge_hooks`)
to move its rows from the merged customer to the survivor. Each hook returns JSON-safe undo
information (normally the ids it moved), which is stored with the merge in the audit log:

    AuditEvent(action="customer.merged", target=<merged customer>, changes={
        "survivor_id": 12,
        "survivor_before": {"phone": "+86138...", "custom:vip_level": None, ...},  # old values
        "survivor_after": {"phone": "+86139...", ...},  # what the merge wrote (to detect later edits)
        "merged_before": {"external_id": "ERP-1"},  # values taken off the merged record
        "moved": {"customers.orders": {"ids": [...]}, "loyalty.points": {...}, ...},
    })

The merged customer goes to the recycle bin with `merged_into` pointing at the survivor.
`customer_merge_undo` reads that event back: every hook's `undo` moves exactly its rows back, the
survivor's fields return to their old values where they still hold the merged-in value (an edit made
since the merge is kept and reported), and the merged customer leaves the bin.

The customers app's own hooks (orders, behaviour events, tags, shares) are registered at the bottom
of this module, which `CustomersConfig.ready()` imports. Another app adds one hook the same way:

    registry.add_merge_hook(MergeHook(key="loyalty.points", move=move_points, undo=undo_points))
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.accounts.permissions import visible_to
from crm.audit.models import AuditEvent
from crm.audit.services import audit_record

from .models import BehaviourEvent, Customer, CustomFieldDefinition, Order
from .registry import MergeHook, registry
from .search import build_search_text

MERGED_ACTION = "customer.merged"  # on the merged (losing) customer; holds the undo information
MERGED_IN_ACTION = "customer.merged_in"  # on the survivor: "merged X into this customer"
UNDONE_ACTION = "customer.merge_undone"  # on both, when a merge is undone

Choice = Literal["survivor", "merged"]
CUSTOM_PREFIX = "custom:"

# Fields a user chooses between, in the order the merge page shows them. A consent is chosen
# together with the time it was given. Order figures are not chosen: they are recomputed.
CHOOSABLE_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kind", ("kind",)),
    ("name", ("name",)),
    ("email", ("email",)),
    ("phone", ("phone",)),
    ("country", ("country",)),
    ("province", ("province",)),
    ("city", ("city",)),
    ("street", ("street",)),
    ("postcode", ("postcode",)),
    ("birthday", ("birthday",)),
    ("gender", ("gender",)),
    ("income_band", ("income_band",)),
    ("occupation", ("occupation",)),
    ("source", ("source",)),
    ("owner", ("owner_id",)),
    ("external_id", ("external_id",)),
    ("email_consent", ("email_consent", "email_consent_at")),
    ("sms_consent", ("sms_consent", "sms_consent_at")),
)
FIELD_ATTRIBUTES = dict(CHOOSABLE_FIELDS)
SEARCH_FIELDS = {"name", "email", "phone", "external_id"}


@dataclass
class MergeResult:
    survivor: Customer
    merged: Customer
    moved: dict[str, Any]
    changed_fields: list[str]


@dataclass
class UndoResult:
    survivor: Customer
    merged: Customer
    restored_fields: list[str] = field(default_factory=list)
    kept_fields: list[str] = field(default_factory=list)  # edited since the merge: left as they are
    notes: list[str] = field(default_factory=list)


# --- values ----------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    """A JSON-safe form of a field value (dates as ISO text, Decimal as text)."""
    if isinstance(value, (datetime, date, Decimal)):
        return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    if isinstance(value, Model):
        return value.pk
    return value


def _attribute_value(customer: Customer, attribute: str) -> Any:
    if attribute.startswith(CUSTOM_PREFIX):
        return (customer.custom_fields or {}).get(attribute[len(CUSTOM_PREFIX) :])
    return getattr(customer, attribute)


def _set_attribute(customer: Customer, attribute: str, value: Any) -> None:
    """Set a field from a Python or JSON value (restoring from the audit log hands us JSON)."""
    if attribute.startswith(CUSTOM_PREFIX):
        key = attribute[len(CUSTOM_PREFIX) :]
        values = dict(customer.custom_fields or {})
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
        customer.custom_fields = values
        return
    model_field = Customer._meta.get_field(
        attribute.removesuffix("_id") if attribute == "owner_id" else attribute
    )
    if value is not None and model_field.get_internal_type() in ("DateField", "DateTimeField"):
        value = model_field.to_python(value)
    setattr(customer, attribute, value)


def _choice_attributes(name: str) -> tuple[str, ...]:
    if name.startswith(CUSTOM_PREFIX):
        return (name,)
    return FIELD_ATTRIBUTES[name]


def custom_field_keys(survivor: Customer, merged: Customer) -> list[str]:
    """Custom field keys either customer has a value for, definitions' order first."""
    keys = set(survivor.custom_fields or {}) | set(merged.custom_fields or {})
    ordered = [key for key in CustomFieldDefinition.objects.values_list("key", flat=True) if key in keys]
    return ordered + sorted(keys - set(ordered))


def differing_fields(survivor: Customer, merged: Customer) -> list[str]:
    """Choice names (model fields, consents, "custom:<key>") whose values differ between the two."""
    names = [name for name, _attributes in CHOOSABLE_FIELDS] + [
        CUSTOM_PREFIX + key for key in custom_field_keys(survivor, merged)
    ]
    return [
        name
        for name in names
        if any(
            _json_value(_attribute_value(survivor, a)) != _json_value(_attribute_value(merged, a))
            for a in _choice_attributes(name)
        )
    ]


def _is_empty(value: Any) -> bool:
    return value in (None, "", [], {}, False) or value == Customer.Gender.UNKNOWN


def default_choices(survivor: Customer, merged: Customer) -> dict[str, Choice]:
    """The survivor's value, unless it is empty and the merged customer has one; a consent given on
    either record is kept (the later one when both gave it)."""
    choices: dict[str, Choice] = {}
    for name in differing_fields(survivor, merged):
        first = _choice_attributes(name)[0]
        mine, theirs = _attribute_value(survivor, first), _attribute_value(merged, first)
        if name in ("email_consent", "sms_consent"):
            when_mine, when_theirs = getattr(survivor, f"{name}_at"), getattr(merged, f"{name}_at")
            take_theirs = theirs and (
                not mine or (when_theirs and (not when_mine or when_theirs > when_mine))
            )
            choices[name] = "merged" if take_theirs else "survivor"
        else:
            choices[name] = "merged" if _is_empty(mine) and not _is_empty(theirs) else "survivor"
    return choices


# --- guards ----------------------------------------------------------------------------------------


def _lock(*customer_ids: int) -> dict[int, Customer]:
    """Lock the rows in id order (two merges touching the same pair never deadlock)."""
    rows = Customer.objects.select_for_update().filter(pk__in=sorted(customer_ids)).order_by("pk")
    return {customer.pk: customer for customer in rows}


def _check_mergeable(*, actor, survivor: Customer, merged: Customer) -> None:
    if survivor.pk == merged.pk:
        raise ValidationError(_("A customer cannot be merged with itself."), code="same_customer")
    for customer in (survivor, merged):
        if customer.deleted_at is not None:
            raise ValidationError(
                _("%(name)s is in the recycle bin; restore it before merging.") % {"name": customer.name},
                code="deleted",
            )
    visible = visible_to(Customer.objects.filter(pk__in=[survivor.pk, merged.pk]), actor).count()
    if visible != 2:
        # Same words as for a missing customer: a user learns nothing about records they cannot see.
        raise ValidationError(_("Customer not found."), code="not_found")


# --- merge -----------------------------------------------------------------------------------------


@transaction.atomic
def customer_merge(
    *, actor, survivor: Customer, merged: Customer, field_choices: dict[str, Choice] | None = None
) -> MergeResult:
    """Merge `merged` into `survivor`: chosen field values, then every app's rows, then the bin.

    `field_choices` maps a choice name (see `differing_fields`) to "survivor" or "merged"; a field not
    named keeps the survivor's value. Nothing is written when the input is refused.
    """
    field_choices = dict(field_choices or {})
    if survivor.pk == merged.pk:
        _check_mergeable(actor=actor, survivor=survivor, merged=merged)
    locked = _lock(survivor.pk, merged.pk)
    if len(locked) != 2:
        raise ValidationError(_("Customer not found."), code="not_found")
    survivor, merged = locked[survivor.pk], locked[merged.pk]
    _check_mergeable(actor=actor, survivor=survivor, merged=merged)

    differing = differing_fields(survivor, merged)
    # A choice for a field both records agree on is harmless; an unknown name or value is not.
    bad = [
        name
        for name, choice in field_choices.items()
        if choice not in ("survivor", "merged")
        or not (name in FIELD_ATTRIBUTES or name.startswith(CUSTOM_PREFIX))
    ]
    if bad:
        raise ValidationError(
            _("Unknown field choice: %(fields)s.") % {"fields": ", ".join(sorted(bad))}, code="bad_choice"
        )

    survivor_before: dict[str, Any] = {}
    survivor_after: dict[str, Any] = {}
    merged_before: dict[str, Any] = {}
    changed: list[str] = []
    for name in differing:
        if field_choices.get(name, "survivor") != "merged":
            continue
        changed.append(name)
        for attribute in _choice_attributes(name):
            survivor_before[attribute] = _json_value(_attribute_value(survivor, attribute))
            value = _attribute_value(merged, attribute)
            _set_attribute(survivor, attribute, value)
            survivor_after[attribute] = _json_value(value)
    if "external_id" in changed and merged.external_id:
        # The external id is unique among customers: it leaves the merged record with the merge.
        merged_before["external_id"] = merged.external_id
        Customer.objects.filter(pk=merged.pk).update(external_id="")
        merged.external_id = ""

    if changed:
        if SEARCH_FIELDS & set(changed):
            survivor.search_text = build_search_text(
                name=survivor.name,
                email=survivor.email,
                phone=survivor.phone,
                external_id=survivor.external_id,
            )
        try:
            survivor.full_clean(
                exclude=["search_text", "owner", "deleted_by", "merged_into", "created_by"],
                validate_unique=False,
                validate_constraints=False,
            )
        except ValidationError as error:
            raise ValidationError(
                _("The chosen values do not make a valid customer: %(errors)s")
                % {"errors": " ".join(error.messages)},
                code="invalid",
            )
        survivor.save()

    relations_before = _relation_names(survivor)
    # The survivor's owner before the merge (when it took the merged record's): `move_shares` keeps
    # them seeing the customer.
    survivor._owner_before_merge = survivor_before.get("owner_id")
    moved: dict[str, Any] = {}
    hook_order = ordered_hook_keys()
    for key in hook_order:
        moved[key] = registry.merge_hooks[key].move(survivor, merged)
    relations_after = _relation_names(survivor)

    now = timezone.now()
    merged.deleted_at = now
    merged.deleted_by = actor if getattr(actor, "pk", None) else None
    merged.merged_into = survivor
    merged.save(update_fields=["deleted_at", "deleted_by", "merged_into", "updated_at"])

    _refresh_stats([survivor.pk, merged.pk])
    survivor.refresh_from_db()

    audit_record(
        actor=actor,
        action=MERGED_ACTION,
        target=merged,
        changes={
            "survivor_id": survivor.pk,
            "survivor_label": str(survivor),
            "survivor_before": survivor_before,
            "survivor_after": survivor_after,
            "merged_before": merged_before,
            "moved": moved,
            # jsonb does not keep key order: the order the hooks ran in, for undoing in reverse.
            "hook_order": hook_order,
            # Rows for the History card, in its {"old", "new"} form.
            "merged_into": {"old": None, "new": _label_with_id(survivor)},
            "deleted_at": {"old": None, "new": now.isoformat()},
        },
    )
    survivor_changes = _history_changes(survivor_before, survivor_after)
    survivor_changes["merged_customer"] = {"old": None, "new": _label_with_id(merged)}
    for relation in ("tags", "shared_with"):
        if relations_before[relation] != relations_after[relation]:
            survivor_changes[relation] = {"old": relations_before[relation], "new": relations_after[relation]}
    survivor_changes.update(
        {
            "merged_id": merged.pk,
            "merged_label": str(merged),
            "moved_counts": {key: moved_count(info) for key, info in moved.items()},
        }
    )
    audit_record(actor=actor, action=MERGED_IN_ACTION, target=survivor, changes=survivor_changes)
    return MergeResult(survivor=survivor, merged=merged, moved=moved, changed_fields=changed)


def _label_with_id(customer: Customer) -> str:
    return f"{customer.name} (#{customer.pk})"


def _relation_names(customer: Customer) -> dict[str, list[str]]:
    return {
        "tags": sorted(customer.tags.values_list("name", flat=True)),
        "shared_with": sorted(user.get_full_name() for user in customer.shared_with.all()),
    }


def _history_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """{field: {"old", "new"}} in the customer history's own terms ("owner" as a name,
    "custom_fields.<key>"), next to the undo information kept in internal terms."""
    from crm.accounts.models import User

    user_ids = {v for a in old if a == "owner_id" for v in (old[a], new.get(a)) if v}
    names = {user.pk: user.get_full_name() for user in User.objects.filter(pk__in=user_ids)}
    changes: dict[str, Any] = {}
    for attribute in old:
        before, after = old[attribute], new.get(attribute)
        if attribute == "owner_id":
            changes["owner"] = {"old": names.get(before), "new": names.get(after)}
        elif attribute.startswith(CUSTOM_PREFIX):
            changes["custom_fields." + attribute[len(CUSTOM_PREFIX) :]] = {"old": before, "new": after}
        else:
            changes[attribute] = {"old": before, "new": after}
    return changes


def moved_count(info: Any) -> int | None:
    """How many rows a hook reports it moved: the length of its id lists ({"ids": [...]} or several
    lists such as {"stages": [...], "alerts": [...]}); None when it reports no lists."""
    if not isinstance(info, dict):
        return None
    lists = [value for value in info.values() if isinstance(value, list)]
    return sum(len(value) for value in lists) if lists else None


def _refresh_stats(customer_ids: list[int]) -> None:
    from .services import customer_refresh_order_stats

    customer_refresh_order_stats(customer_ids=customer_ids)


# --- undo ------------------------------------------------------------------------------------------


def merge_event_for(merged: Customer) -> AuditEvent | None:
    """The audit event holding the undo information of `merged`'s current merge."""
    if merged.merged_into_id is None:
        return None
    return (
        AuditEvent.objects.filter(
            action=MERGED_ACTION,
            target_type=Customer._meta.label_lower,
            target_id=str(merged.pk),
            changes__survivor_id=merged.merged_into_id,
        )
        .order_by("-created_at", "-id")
        .first()
    )


@transaction.atomic
def customer_merge_undo(*, actor, merged: Customer) -> UndoResult:
    """Take `merged` out of the survivor again: rows back, survivor's fields back, out of the bin."""
    locked = _lock(merged.pk, merged.merged_into_id) if merged.merged_into_id else _lock(merged.pk)
    merged = locked.get(merged.pk)
    # deleted_at may already be cleared (restored from the bin by hand): merged_into still says what
    # to undo, and the rows are still on the survivor.
    if merged is None or merged.merged_into_id is None:
        raise ValidationError(_("This customer is not a merged customer."), code="not_merged")
    survivor = locked.get(merged.merged_into_id)
    if survivor is None:
        raise ValidationError(_("The customer it was merged into no longer exists."), code="no_survivor")
    if visible_to(Customer.objects.filter(pk__in=[survivor.pk, merged.pk]), actor).count() != 2:
        raise ValidationError(_("Customer not found."), code="not_found")
    if survivor.merged_into_id is not None:
        raise ValidationError(
            _("%(name)s has since been merged into another customer: undo that merge first.")
            % {"name": survivor.name},
            code="survivor_merged",
        )
    if survivor.deleted_at is not None:
        raise ValidationError(
            _("%(name)s is in the recycle bin: restore it first.") % {"name": survivor.name},
            code="survivor_deleted",
        )
    event = merge_event_for(merged)
    if event is None:
        raise ValidationError(
            _("No record of this merge was found, so it cannot be undone."), code="no_record"
        )
    info = event.changes or {}
    moved = info.get("moved", {})
    missing = [key for key in moved if key not in registry.merge_hooks]
    if missing:
        raise ValidationError(
            _("This merge cannot be undone: %(parts)s can no longer be moved back.")
            % {"parts": ", ".join(missing)},
            code="hook_missing",
        )

    result = UndoResult(survivor=survivor, merged=merged)
    relations_before = _relation_names(survivor)
    # Hooks in the reverse order of the merge, so a hook may rely on the ones that ran before it.
    order = [key for key in info.get("hook_order", []) if key in moved]
    order += [key for key in moved if key not in order]
    for key in reversed(order):
        registry.merge_hooks[key].undo(survivor, merged, moved[key])

    before = info.get("survivor_before", {})
    after = info.get("survivor_after", {})
    restored_attributes = []
    for name in choice_names_of(before):
        attributes = [a for a in _choice_attributes(name) if a in before]
        current = {a: _json_value(_attribute_value(survivor, a)) for a in attributes}
        if all(current[a] == after.get(a) for a in attributes):
            for attribute in attributes:
                _set_attribute(survivor, attribute, before[attribute])
            restored_attributes.extend(attributes)
            result.restored_fields.append(name)
        else:
            result.kept_fields.append(name)
    if restored_attributes:
        survivor.search_text = build_search_text(
            name=survivor.name, email=survivor.email, phone=survivor.phone, external_id=survivor.external_id
        )
        survivor.save()

    external_id = info.get("merged_before", {}).get("external_id")
    if external_id:
        if Customer.objects.filter(external_id=external_id).exclude(pk=merged.pk).exists():
            result.notes.append(
                _("The external id %(id)s now belongs to another customer and was not given back.")
                % {"id": external_id}
            )
        else:
            merged.external_id = external_id
    merged.deleted_at = None
    merged.deleted_by = None
    merged.merged_into = None
    merged.save(update_fields=["external_id", "deleted_at", "deleted_by", "merged_into", "updated_at"])

    _refresh_stats([survivor.pk, merged.pk])
    survivor.refresh_from_db()
    merged.refresh_from_db()

    audit_record(
        actor=actor,
        action=UNDONE_ACTION,
        target=merged,
        changes={
            "survivor_id": survivor.pk,
            "survivor_label": str(survivor),
            "merge_event_id": event.pk,
            "merged_into": {"old": _label_with_id(survivor), "new": None},
            "deleted_at": {"old": info.get("deleted_at", {}).get("new"), "new": None},
        },
    )
    survivor_changes = _history_changes(
        {a: after.get(a) for a in restored_attributes}, {a: before[a] for a in restored_attributes}
    )
    survivor_changes["merged_customer"] = {"old": _label_with_id(merged), "new": None}
    relations_after = _relation_names(survivor)
    for relation in ("tags", "shared_with"):
        if relations_before[relation] != relations_after[relation]:
            survivor_changes[relation] = {"old": relations_before[relation], "new": relations_after[relation]}
    survivor_changes.update(
        {"merged_id": merged.pk, "merged_label": str(merged), "kept_fields": result.kept_fields}
    )
    audit_record(actor=actor, action=UNDONE_ACTION, target=survivor, changes=survivor_changes)
    return result


def choice_names_of(attributes: dict[str, Any]) -> list[str]:
    """Choice names for stored attributes ("email_consent_at" belongs to "email_consent")."""
    names: list[str] = []
    by_attribute = {a: name for name, attrs in CHOOSABLE_FIELDS for a in attrs}
    for attribute in attributes:
        name = attribute if attribute.startswith(CUSTOM_PREFIX) else by_attribute.get(attribute)
        if name and name not in names:
            names.append(name)
    return names


# --- the customers app's own merge hooks ------------------------------------------------------------


def _move_foreign_key(model: type[Model], survivor: Customer, merged: Customer) -> dict:
    """UPDATE ... SET customer_id = survivor WHERE customer_id = merged RETURNING id: one statement,
    however many rows (a customer may have tens of thousands of behaviour events)."""
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET customer_id = %s WHERE customer_id = %s RETURNING id",  # noqa: S608
            [survivor.pk, merged.pk],
        )
        ids = sorted(row[0] for row in cursor.fetchall())
    return {"ids": ids}


def _undo_foreign_key(model: type[Model], survivor: Customer, merged: Customer, info: dict) -> None:
    ids = info.get("ids") or []
    if not ids:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            # A join with the id list (not "id = ANY(array)", which scans the array for every row).
            f"UPDATE {table} AS t SET customer_id = %s FROM unnest(%s::bigint[]) AS moved(id)"  # noqa: S608
            " WHERE t.id = moved.id AND t.customer_id = %s",
            [merged.pk, ids, survivor.pk],
        )


def move_orders(survivor: Customer, merged: Customer) -> dict:
    return _move_foreign_key(Order, survivor, merged)


def undo_orders(survivor: Customer, merged: Customer, info: dict) -> None:
    _undo_foreign_key(Order, survivor, merged, info)


def move_events(survivor: Customer, merged: Customer) -> dict:
    return _move_foreign_key(BehaviourEvent, survivor, merged)


def undo_events(survivor: Customer, merged: Customer, info: dict) -> None:
    _undo_foreign_key(BehaviourEvent, survivor, merged, info)


def move_tags(survivor: Customer, merged: Customer) -> dict:
    """The survivor gets the merged customer's tags it lacks (the merged record keeps its own, so an
    undo only has to take the added ones off the survivor)."""
    have = set(survivor.tags.values_list("pk", flat=True))
    added = sorted(set(merged.tags.values_list("pk", flat=True)) - have)
    if added:
        survivor.tags.add(*added)
    return {"ids": added}


def undo_tags(survivor: Customer, merged: Customer, info: dict) -> None:
    if info.get("ids"):
        survivor.tags.remove(*info["ids"])


def move_shares(survivor: Customer, merged: Customer) -> dict:
    """Everyone who could see either record keeps seeing the merged customer: the merged record's
    shares and its owner when that is not the survivor's owner, and the survivor's former owner when
    the merge took the merged record's owner."""
    have = set(survivor.shared_with.values_list("pk", flat=True))
    wanted = set(merged.shared_with.values_list("pk", flat=True))
    if merged.owner_id and merged.owner_id != survivor.owner_id:
        wanted.add(merged.owner_id)
    former_owner = getattr(survivor, "_owner_before_merge", None)
    if former_owner:
        wanted.add(former_owner)
    added = sorted(wanted - have - {survivor.owner_id})
    if added:
        survivor.shared_with.add(*added)
    return {"ids": added}


def undo_shares(survivor: Customer, merged: Customer, info: dict) -> None:
    if info.get("ids"):
        survivor.shared_with.remove(*info["ids"])


BUILTIN_HOOKS = (
    MergeHook(key="customers.orders", move=move_orders, undo=undo_orders),
    MergeHook(key="customers.events", move=move_events, undo=undo_events),
    MergeHook(key="customers.tags", move=move_tags, undo=undo_tags),
    MergeHook(key="customers.shares", move=move_shares, undo=undo_shares),
)


def ordered_hook_keys() -> list[str]:
    """The customers app's own hooks first (orders are on the survivor before another app's hook
    looks at them), then the others in the order they registered."""
    builtin = [hook.key for hook in BUILTIN_HOOKS if hook.key in registry.merge_hooks]
    return builtin + [key for key in registry.merge_hooks if key not in builtin]


def register_builtin_hooks() -> None:
    for hook in BUILTIN_HOOKS:
        registry.add_merge_hook(hook)


FIELD_LABELS = {
    "email_consent": gettext_lazy("Email consent"),
    "sms_consent": gettext_lazy("SMS consent"),
    "owner": gettext_lazy("Owner"),
}
