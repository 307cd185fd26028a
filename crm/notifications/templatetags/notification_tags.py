"""The bell in the navigation bar: `{% notification_bell %}` (unread count cached per user)."""

import logging

from django import template

from ..registry import get_kind
from ..selectors import unread_badge

logger = logging.getLogger(__name__)

register = template.Library()


@register.inclusion_tag("notifications/partials/_bell.html", takes_context=True)
def notification_bell(context, oob: bool = False):
    user = context.get("user")
    signed_in = bool(user is not None and getattr(user, "is_authenticated", False))
    badge = ""
    if signed_in:
        try:
            badge = unread_badge(user)
        except Exception:  # the bell must never take the navigation (and every page) down
            logger.exception("notification bell failed")
    return {"badge": badge, "show": signed_in, "oob": oob}


@register.filter
def notification_kind_label(kind: str):
    return get_kind(kind).label
