"""The sections of the daily digest, filled by the apps above crm in their `AppConfig.ready()`:

    from crm.notifications.digest import DigestItem, register_section

    def overdue_followups(user, day) -> list[DigestItem]:
        return [DigestItem(text=..., url=reverse(...)) for ... in ...]

    register_section("followups.overdue", _("Overdue follow-ups"), overdue_followups, order=10)

`provider(user, day)` runs in the tenant's schema, in the user's language, with `day` the user's local
date; it returns the items to list (plain strings or `DigestItem`s; an empty list hides the section).
A digest whose sections are all empty is not sent. Users switch a section off on their notification
preferences page.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.utils.functional import Promise

logger = logging.getLogger(__name__)

# A section lists at most this many items; the rest are summarised as "and N more".
SECTION_MAX_ITEMS = 20


@dataclass(frozen=True)
class DigestItem:
    text: str
    url: str = ""  # relative to the tenant's site, e.g. "/customers/12/"


@dataclass(frozen=True)
class Section:
    key: str
    title: str | Promise
    provider: Callable
    order: int = 100


_sections: dict[str, Section] = {}


def register_section(key: str, title: str | Promise, provider: Callable, order: int = 100) -> Section:
    section = Section(key=key, title=title, provider=provider, order=order)
    _sections[key] = section
    return section


def unregister_section(key: str) -> None:
    """For tests that register a section of their own."""
    _sections.pop(key, None)


def registered_sections() -> list[Section]:
    return sorted(_sections.values(), key=lambda section: (section.order, section.key))


def section_items(section: Section, user, day) -> list[DigestItem]:
    """The section's items for the user (strings become items); a provider that fails is logged and
    counts as empty, so one broken app does not stop everybody's digest."""
    try:
        items = list(section.provider(user, day) or [])
    except Exception:
        logger.exception("digest section %s failed for user %s", section.key, user.pk)
        return []
    return [item if isinstance(item, DigestItem) else DigestItem(text=str(item)) for item in items]
