"""The kinds of notification apps send, registered with a label for the preferences page.

    from crm.notifications.registry import register_kind

    register_kind("followups.due", _("Follow-up due"), default_email=True)  # in AppConfig.ready()

A kind that nobody registered can still be sent (it shows under its key and mails by default), so a
notification is never lost because an app forgot to register.
"""

from dataclasses import dataclass

from django.utils.functional import Promise

KIND_MAX_LENGTH = 60


@dataclass(frozen=True)
class Kind:
    key: str
    label: str | Promise
    default_email: bool = True


_kinds: dict[str, Kind] = {}


def register_kind(key: str, label: str | Promise, default_email: bool = True) -> Kind:
    """Add (or replace, by key) a kind; `default_email` is whether users get it by e-mail until they
    choose otherwise."""
    if not key or len(key) > KIND_MAX_LENGTH:
        raise ValueError(f"a notification kind key has 1 to {KIND_MAX_LENGTH} characters: {key!r}")
    kind = Kind(key=key, label=label, default_email=default_email)
    _kinds[key] = kind
    return kind


def unregister_kind(key: str) -> None:
    """For tests that register a kind of their own."""
    _kinds.pop(key, None)


def registered_kinds() -> list[Kind]:
    return sorted(_kinds.values(), key=lambda kind: kind.key)


def get_kind(key: str) -> Kind:
    return _kinds.get(key) or Kind(key=key, label=key, default_email=True)
