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
