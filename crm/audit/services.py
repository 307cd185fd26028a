from typing import Any

from django.db.models import Model

from .models import AuditEvent


def audit_record(
    *, actor, action: str, target: Model, changes: dict[str, Any] | None = None, label: str | None = None
) -> AuditEvent:
    """Append one audit event. `changes` maps a field to {"old": ..., "new": ...} (JSON-safe values)."""
    return AuditEvent.objects.create(
        actor=actor if actor is not None and getattr(actor, "pk", None) else None,
        actor_label=(actor.get_full_name() if actor is not None and getattr(actor, "pk", None) else ""),
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        target_label=label if label is not None else str(target)[:300],
        changes=changes or {},
    )


def audit_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fields whose value differs, as {"field": {"old": ..., "new": ...}}."""
    return {
        key: {"old": before.get(key), "new": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


ERASED = "[erased]"


def redact_values(data: Any, values: list[str]) -> Any:
    """`data` (JSON-safe) with every occurrence of the given strings replaced by "[erased]"."""
    if isinstance(data, str):
        for value in values:
            if value and value in data:
                data = data.replace(value, ERASED)
        return data
    if isinstance(data, list):
        return [redact_values(item, values) for item in data]
    if isinstance(data, dict):
        return {key: redact_values(item, values) for key, item in data.items()}
    return data


def audit_redact(*, target: Model, values: list[str]) -> int:
    """Personal-data erasure: the one sanctioned rewrite of the append-only log. Every event whose
    label or changes hold one of `values` (the person's name, e-mail, phone...) gets them replaced by
    "[erased]"; the events themselves (who did what, when) stay. Returns how many events changed."""
    from django.db.models import Q

    values = [value for value in dict.fromkeys(values) if value and len(value) >= 3]
    if not values:
        return 0
    about_target = Q(target_type=target._meta.label_lower, target_id=str(target.pk))
    mentions = Q()
    for value in values:
        mentions |= Q(target_label__contains=value) | Q(changes__icontains=value)
    changed = 0
    for event in AuditEvent.objects.filter(about_target | mentions).only("pk", "target_label", "changes"):
        label = redact_values(event.target_label, values)
        changes = redact_values(event.changes, values)
        if label != event.target_label or changes != event.changes:
            AuditEvent.objects.filter(pk=event.pk).update(target_label=label, changes=changes)
            changed += 1
    return changed
