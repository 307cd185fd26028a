"""The top navigation, filtered by role. `crm` keeps only the registry: every app adds its own entry
in its AppConfig.ready(), so the ground floor never imports the apps above it:

    from crm.navigation import NavItem, register

    register(NavItem("loyalty", _("Loyalty"), "loyalty:index", "award", order=50))

Entries show in `order` (then key); `roles` limits who sees one; `badge(user)` returns a short text
("" hides it), e.g. the number of open churn alerts. An entry whose URL does not resolve is left out.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse
from django.utils.functional import Promise

from crm.accounts.permissions import ALL_ROLES, user_has_role

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str | Promise
    url_name: str
    icon: str
    roles: tuple[str, ...] = ALL_ROLES
    # Optional badge text for the user ("" hides it), e.g. the number of open churn alerts.
    badge: Callable[..., str] | None = None
    order: int = 100


_items: dict[str, NavItem] = {}


def register(item: NavItem) -> None:
    """Add (or replace, by key) an entry of the tenant navigation."""
    _items[item.key] = item


def registered() -> list[NavItem]:
    return sorted(_items.values(), key=lambda item: (item.order, item.key))


def nav_for(user) -> list[dict]:
    items = []
    for item in registered():
        if not user_has_role(user, item.roles):
            continue
        try:
            url = reverse(item.url_name)
        except NoReverseMatch:
            continue
        badge = ""
        if item.badge is not None:
            try:
                badge = item.badge(user)
            except Exception:  # a badge must never take the navigation (and every page) down
                logger.exception("navigation badge %s failed", item.key)
        items.append({"key": item.key, "label": item.label, "url": url, "icon": item.icon, "badge": badge})
    return items
