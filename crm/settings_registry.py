"""The entries of the Settings page, filtered by role. Like `crm.navigation`, `crm` keeps only the
registry: every app adds its own settings pages in its AppConfig.ready(), so the ground floor never
names a page of an app above it:

    from crm.settings_registry import SettingsEntry, register

    register(SettingsEntry("interaction-outcomes", _("Interaction outcomes"), "interactions:outcomes",
                           "list-check", roles=ADMINS, order=50))

Entries show in `order` (then key); `roles` limits who sees one (the page's own view checks the role
again on the server; the page itself opens to admins and managers). An entry whose URL does not
resolve is left out.
"""

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse
from django.utils.functional import Promise

from crm.accounts.permissions import ADMINS, user_has_role


@dataclass(frozen=True)
class SettingsEntry:
    key: str
    label: str | Promise
    url_name: str
    icon: str  # a Bootstrap Icons name, without "bi-"
    roles: tuple[str, ...] = ADMINS
    order: int = 100
    description: str | Promise = ""


_entries: dict[str, SettingsEntry] = {}


def register(entry: SettingsEntry) -> None:
    """Add (or replace, by key) an entry of the Settings page."""
    _entries[entry.key] = entry


def registered() -> list[SettingsEntry]:
    return sorted(_entries.values(), key=lambda entry: (entry.order, entry.key))


def entries_for(user) -> list[dict]:
    rows = []
    for entry in registered():
        if not user_has_role(user, entry.roles):
            continue
        try:
            url = reverse(entry.url_name)
        except NoReverseMatch:
            continue
        rows.append(
            {
                "key": entry.key,
                "label": entry.label,
                "url": url,
                "icon": entry.icon,
                "description": entry.description,
            }
        )
    return rows
