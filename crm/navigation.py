"""The top navigation, filtered by role. Apps add their entries here, in one place."""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from crm.accounts.permissions import ADMINS, ALL_ROLES, user_has_role

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


def _open_alerts_badge(user) -> str:
    from segmentation.selectors import alert_badge  # imported late: navigation loads before the apps

    return alert_badge(user)


TENANT_NAV = (
    NavItem("dashboard", _("Dashboard"), "home", "speedometer2"),
    NavItem("customers", _("Customers"), "customers:list", "people"),
    NavItem("interactions", _("Interactions"), "interactions:index", "chat-dots"),
    NavItem("segments", _("Segments"), "segmentation:index", "pie-chart", badge=_open_alerts_badge),
    NavItem("loyalty", _("Loyalty"), "loyalty:index", "award"),
    NavItem("settings", _("Settings"), "accounts:settings", "gear", ADMINS),
)


def nav_for(user) -> list[dict]:
    items = []
    for item in TENANT_NAV:
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
