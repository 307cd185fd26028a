"""The top navigation, filtered by role. Apps add their entries here, in one place."""

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from crm.accounts.permissions import ADMINS, ALL_ROLES, user_has_role


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str | Promise
    url_name: str
    icon: str
    roles: tuple[str, ...] = ALL_ROLES


TENANT_NAV = (
    NavItem("dashboard", _("Dashboard"), "home", "speedometer2"),
    NavItem("customers", _("Customers"), "customers:list", "people"),
    NavItem("interactions", _("Interactions"), "interactions:index", "chat-dots"),
    NavItem("segments", _("Segments"), "segmentation:index", "pie-chart"),
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
        items.append({"key": item.key, "label": item.label, "url": url, "icon": item.icon})
    return items
