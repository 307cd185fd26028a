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

The customers app's own hooks (orders, behaviour events, tags, shares) are registered by
`customers.dedupe.hooks`, which `CustomersConfig.ready()` calls. Another app adds one hook the same way:

    registry.add_merge_hook(MergeHook(key="loyalty.points", move=move_points, undo=undo_points))
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.accounts.permissions import visible_to
from crm.audit.services import audit_record

from ..models import Customer, SecondaryContact
from ..registry import registry
from ..search import build_search_text, phone_digits
from ..signals import REASON_MERGE, REASON_MERGE_UNDONE, customers_changed_on_commit
from .fields import (
    CUSTOM_PREFIX,
    FIELD_ATTRIBUTES,
    Choice,
    _attribute_value,
    _choice_attributes,
    _json_value,
    _set_attribute,
    choice_names_of,
    default_choices,
    differing_fields,
)
from .hooks import ordered_hook_keys
from .scan import DISMISS_ACTION
from .selectors import MERGED_ACTION, merge_event_for, moved_count

MERGED_IN_ACTION = "customer.merged_in"  # on the survivor: "merged X into this customer"
UNDONE_ACTION = "customer.merge_undone"  # on both, when a merge is undone
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
    *,
    actor,
    survivor: Customer,
    merged: Customer,
    field_choices: dict[str, Choice] | None = None,
    keep_secondary: Collection[str] = (),
) -> MergeResult:
    """Merge `merged` into `survivor`: chosen field values, then every app's rows, then the bin.

    `field_choices` maps a choice name (see `differing_fields`) to "survivor" or "merged"; a field not
    named keeps the survivor's value. `keep_secondary` names contact fields ("email", "phone") whose
    losing value (the one of the two records the merge did not keep) is kept as a secondary contact
    of the survivor. Nothing is written when the input is refused.
    """
    field_choices = dict(field_choices or {})
    unknown_kinds = set(keep_secondary) - set(SecondaryContact.Kind.values)
    if unknown_kinds:
        raise ValidationError(_("Unknown contact kind."), code="bad_contact_kind")
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
    contacts_before = {kind: {getattr(survivor, kind), getattr(merged, kind)} for kind in keep_secondary}
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

    secondary_ids = _keep_secondary_contacts(survivor, merged, contacts_before)
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
            "secondary_contact_ids": secondary_ids,
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
    if secondary_ids:
        values = list(SecondaryContact.objects.filter(pk__in=secondary_ids).values_list("value", flat=True))
        survivor_changes["secondary_contacts"] = {"old": None, "new": sorted(values)}
    survivor_changes.update(
        {
            "merged_id": merged.pk,
            "merged_label": str(merged),
            "moved_counts": {key: moved_count(info) for key, info in moved.items()},
        }
    )
    audit_record(actor=actor, action=MERGED_IN_ACTION, target=survivor, changes=survivor_changes)
    customers_changed_on_commit(reason=REASON_MERGE, customer_ids=[survivor.pk, merged.pk], actor=actor)
    return MergeResult(survivor=survivor, merged=merged, moved=moved, changed_fields=changed)


def _keep_secondary_contacts(
    survivor: Customer, merged: Customer, candidates: dict[str, set[str]]
) -> list[int]:
    """The losing value of each named contact field, as the survivor's secondary contact; the new ids."""
    created = []
    for kind, values in candidates.items():
        kept = getattr(survivor, kind)
        for value in sorted(v for v in values if v and v != kept):
            contact, made = SecondaryContact.objects.get_or_create(
                customer=survivor,
                kind=kind,
                value=value,
                defaults={
                    "search_value": contact_search_value(kind, value),
                    "source_label": _label_with_id(merged),
                },
            )
            if made:
                created.append(contact.pk)
    return created


def contact_search_value(kind: str, value: str) -> str:
    """What customer search matches for a secondary contact (as search_text holds the primary one)."""
    return phone_digits(value) if kind == SecondaryContact.Kind.PHONE else value.strip().lower()


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


def _refresh_stats(customer_ids: list[int]) -> None:
    from ..services import customer_refresh_order_stats

    customer_refresh_order_stats(customer_ids=customer_ids)


# --- undo ------------------------------------------------------------------------------------------


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
    secondary_ids = info.get("secondary_contact_ids") or []
    removed_contacts = sorted(
        SecondaryContact.objects.filter(pk__in=secondary_ids, customer=survivor).values_list(
            "value", flat=True
        )
    )
    SecondaryContact.objects.filter(pk__in=secondary_ids, customer=survivor).delete()

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
    if removed_contacts:
        survivor_changes["secondary_contacts"] = {"old": removed_contacts, "new": None}
    relations_after = _relation_names(survivor)
    for relation in ("tags", "shared_with"):
        if relations_before[relation] != relations_after[relation]:
            survivor_changes[relation] = {"old": relations_before[relation], "new": relations_after[relation]}
    survivor_changes.update(
        {"merged_id": merged.pk, "merged_label": str(merged), "kept_fields": result.kept_fields}
    )
    audit_record(actor=actor, action=UNDONE_ACTION, target=survivor, changes=survivor_changes)
    customers_changed_on_commit(
        reason=REASON_MERGE_UNDONE, customer_ids=[survivor.pk, merged.pk], actor=actor
    )
    return result


# --- dismissing a pair -----------------------------------------------------------------------------


@transaction.atomic
def duplicate_dismiss(*, actor, first: Customer, second: Customer) -> None:
    """Record that two customers are not the same person, on both their histories; the pair is then
    no longer offered. (Kept in the audit log: an append-only fact needs no table of its own.)"""
    from crm.audit.services import audit_record

    if first.pk == second.pk:
        return
    audit_record(
        actor=actor,
        action=DISMISS_ACTION,
        target=first,
        changes={"other_id": second.pk, "other": str(second)},
    )
    audit_record(
        actor=actor, action=DISMISS_ACTION, target=second, changes={"other_id": first.pk, "other": str(first)}
    )


# --- merging a group -------------------------------------------------------------------------------

GROUP_MERGED_ACTION = "customer.group_merged"  # on the survivor: "merged these N customers into this one"
GROUP_UNDONE_ACTION = "customer.group_merge_undone"
MAX_GROUP_SIZE = 10  # a group larger than this is a placeholder value or a bad match, not one person


@dataclass
class GroupMergeResult:
    survivor: Customer
    merged: list[Customer]
    event_id: int


@transaction.atomic
def customer_merge_group(
    *, actor, survivor: Customer, others: list[Customer], keep_secondary: Collection[str] = ()
) -> GroupMergeResult:
    """Merge every customer of `others` into `survivor` in one step (three-way duplicates and more).

    Each merge is an ordinary `customer_merge` (rows moved by every hook, the merged record to the bin)
    in which the survivor keeps its values and takes only those it lacks (`default_choices`); the
    group is recorded on the survivor, so `customer_merge_group_undo` takes all of them out again.
    All or nothing: one refused merge writes nothing.
    """
    ids = [other.pk for other in others]
    if not ids:
        raise ValidationError(_("Choose at least two customers to merge."), code="too_few")
    if len(set(ids)) != len(ids) or survivor.pk in ids:
        raise ValidationError(_("Each customer can appear only once in a group."), code="repeated")
    if len(ids) + 1 > MAX_GROUP_SIZE:
        raise ValidationError(
            _("At most %(count)d customers can be merged in one step.") % {"count": MAX_GROUP_SIZE},
            code="too_many",
        )
    _lock(survivor.pk, *ids)
    merged: list[Customer] = []
    for pk in ids:
        current = Customer.objects.get(pk=survivor.pk)
        other = Customer.objects.filter(pk=pk).first()
        if other is None:
            raise ValidationError(_("Customer not found."), code="not_found")
        result = customer_merge(
            actor=actor,
            survivor=current,
            merged=other,
            field_choices=default_choices(current, other),
            keep_secondary=keep_secondary,
        )
        merged.append(result.merged)
    survivor.refresh_from_db()
    event = audit_record(
        actor=actor,
        action=GROUP_MERGED_ACTION,
        target=survivor,
        changes={
            "merged_ids": ids,
            "merged_customers": {"old": None, "new": [_label_with_id(c) for c in merged]},
        },
    )
    return GroupMergeResult(survivor=survivor, merged=merged, event_id=getattr(event, "pk", 0))


def group_merge_event_for(survivor: Customer):
    """The survivor's latest group merge that has not been undone, or None."""
    from crm.audit.models import AuditEvent

    events = AuditEvent.objects.filter(target_type=Customer._meta.label_lower, target_id=str(survivor.pk))
    latest = events.filter(action=GROUP_MERGED_ACTION).order_by("-created_at", "-id").first()
    if (
        latest is None
        or events.filter(action=GROUP_UNDONE_ACTION, changes__group_event_id=latest.pk).exists()
    ):
        return None
    return latest


@transaction.atomic
def customer_merge_group_undo(*, actor, survivor: Customer) -> list[UndoResult]:
    """Undo the survivor's latest group merge: each merge of the group, last first (one already undone
    on its own is skipped). All or nothing."""
    event = group_merge_event_for(survivor)
    if event is None:
        raise ValidationError(_("There is no group merge to undo."), code="no_group")
    results = []
    for pk in reversed((event.changes or {}).get("merged_ids", [])):
        merged = Customer.objects.filter(pk=pk, merged_into_id=survivor.pk).first()
        if merged is not None:
            results.append(customer_merge_undo(actor=actor, merged=merged))
    audit_record(
        actor=actor,
        action=GROUP_UNDONE_ACTION,
        target=survivor,
        changes={
            "group_event_id": event.pk,
            "merged_customers": {"old": [_label_with_id(r.merged) for r in results], "new": None},
        },
    )
    return results
