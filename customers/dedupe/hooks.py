"""The customers app's own merge hooks: orders, behaviour events, tags and shares move to the survivor
of a merge, and back on undo. `CustomersConfig.ready()` registers them; another app adds one the same
way (see customers.registry):

    registry.add_merge_hook(MergeHook(key="loyalty.points", move=move_points, undo=undo_points))
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Model

from ..models import BehaviourEvent, Customer, Order, SecondaryContact
from ..registry import MergeHook, registry


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


def move_secondary_contacts(survivor: Customer, merged: Customer) -> dict:
    """The merged record's own secondary contacts (from an earlier merge) go to the survivor, except
    one the survivor already has."""
    have = set(survivor.secondary_contacts.values_list("kind", "value"))
    ids = sorted(
        pk
        for pk, kind, value in merged.secondary_contacts.values_list("pk", "kind", "value")
        if (kind, value) not in have
    )
    SecondaryContact.objects.filter(pk__in=ids).update(customer=survivor)
    return {"ids": ids}


def undo_secondary_contacts(survivor: Customer, merged: Customer, info: dict) -> None:
    if info.get("ids"):
        SecondaryContact.objects.filter(pk__in=info["ids"], customer=survivor).update(customer=merged)


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
    MergeHook(key="customers.secondary_contacts", move=move_secondary_contacts, undo=undo_secondary_contacts),
)


def ordered_hook_keys() -> list[str]:
    """The customers app's own hooks first (orders are on the survivor before another app's hook
    looks at them), then the others in the order they registered."""
    builtin = [hook.key for hook in BUILTIN_HOOKS if hook.key in registry.merge_hooks]
    return builtin + [key for key in registry.merge_hooks if key not in builtin]


def register_builtin_hooks() -> None:
    for hook in BUILTIN_HOOKS:
        registry.add_merge_hook(hook)
