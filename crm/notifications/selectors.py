"""Reads of notifications: always the requesting user's own (nobody, manager or admin, reads another's)."""

from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db.models import QuerySet
from django.http import Http404
from django.utils.functional import Promise

from crm.accounts.models import User

from .digest import registered_sections
from .models import Notification, NotificationPreference
from .registry import get_kind, registered_kinds

PAGE_SIZE = 25
UNREAD_BADGE_SECONDS = 300
UNREAD_COUNT_CAP = 100  # the badge shows "99+" beyond; counting further costs without telling more


def own_notifications(*, user: User) -> QuerySet[Notification]:
    if not getattr(user, "is_authenticated", False):
        return Notification.objects.none()
    return Notification.objects.filter(recipient_id=user.pk)


def notification_get_for_user(*, user: User, notification_id: Any) -> Notification:
    """One of the user's own notifications; another user's answers exactly like a missing one."""
    try:
        return own_notifications(user=user).get(pk=notification_id)
    except (Notification.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


@dataclass(frozen=True)
class Page:
    items: list[Notification]
    next_cursor: str  # "" on the last page


def _parse_cursor(cursor: str) -> tuple[str, int | None] | None:
    """A cursor is "u<id>" (inside the unread notifications), "r<id>" (inside the read ones) or "r"
    (the read ones from the newest)."""
    if not cursor or len(cursor) > 21 or cursor[0] not in "ur":
        return None
    if cursor == "r":
        return "r", None
    if not cursor[1:].isdigit():
        return None
    return cursor[0], int(cursor[1:])


def notification_page(
    *, user: User, unread_only: bool = False, cursor: str = "", size: int = PAGE_SIZE
) -> Page:
    """Keyset pages: the unread notifications newest first, then (unless `unread_only`) the read ones
    newest first. At most two indexed queries per page, whatever the number of rows."""
    parsed = _parse_cursor(cursor)
    phase, before = parsed if parsed else ("u", None)
    qs = own_notifications(user=user).order_by("-id")
    items: list[Notification] = []
    if phase == "u":
        unread = qs.filter(read_at__isnull=True)
        if before is not None:
            unread = unread.filter(id__lt=before)
        items = list(unread[: size + 1])
        if len(items) > size:
            return Page(items[:size], f"u{items[size - 1].pk}")
        if unread_only:
            return Page(items, "")
        before = None
    read = qs.filter(read_at__isnull=False)
    if before is not None:
        read = read.filter(id__lt=before)
    room = size - len(items)
    more = list(read[: room + 1])
    if len(more) > room:
        if not room:  # the unread ones filled this page exactly: the next starts with the read ones
            return Page(items, "r")
        items += more[:room]
        return Page(items, f"r{items[-1].pk}")
    return Page(items + more, "")


# --- The bell in the navigation: cached per user, with a per-user version bumped on every change ---
def unread_version_key(user_id: int) -> str:
    # The cache's key function adds the tenant's schema, so two tenants' user 1 never share a count.
    return f"notifications:unread-version:{user_id}"


def _unread_version(user_id: int) -> int:
    version = cache.get(unread_version_key(user_id))
    if version is None:
        cache.add(unread_version_key(user_id), 1, None)
        version = cache.get(unread_version_key(user_id)) or 1
    return int(version)


def unread_count(*, user: User) -> int:
    """How many unread notifications the user has (capped at 100). Cached; invalidated by a version bump
    whenever one is created or read, so most pages cost no query for the bell."""
    if not getattr(user, "is_authenticated", False):
        return 0
    key = f"notifications:unread:{user.pk}:{_unread_version(user.pk)}"
    count = cache.get(key)
    if count is None:
        count = own_notifications(user=user).filter(read_at__isnull=True)[:UNREAD_COUNT_CAP].count()
        cache.set(key, count, UNREAD_BADGE_SECONDS)
    return int(count)


def unread_badge(user) -> str:
    count = unread_count(user=user)
    if not count:
        return ""
    return "99+" if count >= UNREAD_COUNT_CAP else str(count)


# --- Preferences ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreferenceRow:
    key: str
    label: str | Promise
    email: bool | None  # None: this topic is not an e-mail kind
    digest: bool | None  # None: this topic is not a digest section


def preference_rows(*, user: User) -> list[PreferenceRow]:
    """One row per registered kind and digest section (a kind and a section with the same key share a
    row), with the user's choice or the default."""
    stored = {p.kind: p for p in NotificationPreference.objects.filter(user_id=user.pk)}
    kinds = {kind.key: kind for kind in registered_kinds()}
    sections = {section.key: section for section in registered_sections()}
    rows = []
    for key in list(kinds) + [key for key in sections if key not in kinds]:
        pref = stored.get(key)
        kind, section = kinds.get(key), sections.get(key)
        email = digest = None
        if kind is not None:
            email = pref.email if pref else kind.default_email
        if section is not None:
            digest = pref.digest if pref else True
        rows.append(PreferenceRow(key, kind.label if kind else section.title, email, digest))
    return rows


def email_wanted(*, user_ids: list[int], kind: str) -> set[int]:
    """Which of these users want `kind` by e-mail (their preference, else the kind's default)."""
    default = get_kind(kind).default_email
    choices = dict(
        NotificationPreference.objects.filter(user_id__in=user_ids, kind=kind).values_list("user_id", "email")
    )
    return {uid for uid in user_ids if choices.get(uid, default)}


def digest_sections_off(*, user_ids: list[int]) -> dict[int, set[str]]:
    """For each user, the digest sections they switched off."""
    off: dict[int, set[str]] = {}
    for uid, key in NotificationPreference.objects.filter(user_id__in=user_ids, digest=False).values_list(
        "user_id", "kind"
    ):
        off.setdefault(uid, set()).add(key)
    return off
