"""{{ event.action|event_name }}: an audit event's translated name (crm/audit/labels.py)."""

from django import template

from crm.audit.labels import event_name as _event_name

register = template.Library()


@register.filter
def event_name(code: str) -> str:
    return _event_name(code or "")
