"""Writes: create notifications (`notify`, `notify_many`), mark them read, save preferences.

Other apps call `notify`/`notify_many` only; e-mail delivery and the digest live in `mailing.py`.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.accounts.models import User
from crm.audit.services import audit_diff, audit_record

from .models import (
    BODY_MAX_LENGTH,
    KEY_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    URL_MAX_LENGTH,
    EmailDelivery,
    Notification,
    NotificationPreference,
)
from .registry import KIND_MAX_LENGTH
from .selectors import email_wanted, unread_version_key

EMAILS_QUEUED_KEY = "notifications:emails-queued"
INSERT_CHUNK = 1000


@dataclass(frozen=True)
class NotificationSpec:
    """One notification of a `notify_many` call."""

    recipient: User | int
    key: str
    title: str
    body: str = ""
    url: str = ""


def _clip(text: str, limit: int) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean_url(url: str) -> str:
    """A link inside the tenant's site: a path starting with a single "/", no scheme, host, backslash,
    whitespace or control character (an e-mail or page must never link elsewhere)."""
    url = (url or "").strip()
    if not url:
        return ""
    if (
        len(url) > URL_MAX_LENGTH
        or not url.startswith("/")
        or url.startswith("//")
        or "\\" in url
        or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url)
    ):
        raise ValidationError(
            {"url": _("A notification links to a page of this site (a path such as /customers/1/).")}
        )
    return url


def _clean(kind: str, spec: NotificationSpec) -> tuple[int, str, str, str, str]:
    if not kind or len(kind) > KIND_MAX_LENGTH:
        raise ValidationError({"kind": f"a notification kind has 1 to {KIND_MAX_LENGTH} characters"})
    key = (spec.key or "").strip()
    if not key or len(key) > KEY_MAX_LENGTH:
        raise ValidationError({"key": f"a notification key has 1 to {KEY_MAX_LENGTH} characters"})
    recipient_id = spec.recipient if isinstance(spec.recipient, int) else spec.recipient.pk
    title = _clip(spec.title, TITLE_MAX_LENGTH)
    if not title:
        raise ValidationError({"title": "a notification needs a title"})
    return recipient_id, key, title, _clip(spec.body, BODY_MAX_LENGTH), clean_url(spec.url)


def message_id_for(notification_id: int) -> str:
    """Stable per notification: a resend after a crash carries the same Message-ID."""
    return f"<notification-{connection.schema_name}-{notification_id}@{settings.BASE_DOMAIN}>"


def bump_unread(user_ids: Iterable[int]) -> None:
    """Invalidate the cached bell count of these users (in this tenant)."""
    for uid in set(user_ids):
        key = unread_version_key(uid)
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 2, None)


def queue_email_delivery() -> None:
    """Send the tenant's pending e-mails soon: one task at a time is queued (the task clears the flag
    when it starts); beat's minute dispatcher catches anything left."""
    from .tasks import notification_emails_task

    if cache.add(EMAILS_QUEUED_KEY, 1, 120):
        try:
            notification_emails_task.delay()
        except Exception:
            cache.delete(EMAILS_QUEUED_KEY)  # beat's dispatcher sends the mail within a minute
            raise


@transaction.atomic
def notify(
    *, recipient: User, kind: str, key: str, title: str, body: str = "", url: str = "", email: bool = True
) -> Notification:
    """Create the notification `key` for `recipient` once: a repeat returns the existing one (and mails
    nothing). Mailed when `email` and the recipient's preference for `kind` (else its default) say so."""
    created = notify_many(kind=kind, items=[NotificationSpec(recipient, key, title, body, url)], email=email)
    if created:
        return Notification.objects.get(pk=created[0])
    return Notification.objects.get(recipient_id=recipient.pk, key=key.strip())


@transaction.atomic
def notify_many(*, kind: str, items: Iterable[NotificationSpec], email: bool = True) -> list[int]:
    """Create many notifications of one kind in bulk (`INSERT ... ON CONFLICT DO NOTHING`): the ones
    that already exist (same recipient and key) are left alone. Returns the ids of the new ones.
    Bad input (an empty key or title, a link off the site) raises ValidationError and writes nothing."""
    rows = [_clean(kind, item) for item in items]
    if not rows:
        return []
    table = connection.ops.quote_name(Notification._meta.db_table)
    now = timezone.now()
    created: list[tuple[int, int]] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
            params: list = []
            for recipient_id, key, title, body, url in chunk:
                params += [recipient_id, kind, key, title, body, url, now]
            cursor.execute(
                f"INSERT INTO {table} (recipient_id, kind, key, title, body, url, created_at) "  # noqa: S608
                f"VALUES {values} ON CONFLICT (recipient_id, key) DO NOTHING RETURNING id, recipient_id",
                params,
            )
            created += cursor.fetchall()
    if not created:
        return []
    if email:
        wanted = email_wanted(user_ids=sorted({uid for _, uid in created}), kind=kind)
        deliveries = [
            EmailDelivery(notification_id=nid, message_id=message_id_for(nid))
            for nid, uid in created
            if uid in wanted
        ]
        if deliveries:
            EmailDelivery.objects.bulk_create(deliveries, batch_size=INSERT_CHUNK)
            # robust: the notifications are committed; a broker that is down must not turn that into an
            # error for the caller (the minute dispatcher sends the mail then).
            transaction.on_commit(queue_email_delivery, robust=True)
    recipients = {uid for _, uid in created}
    transaction.on_commit(lambda: bump_unread(recipients), robust=True)
    return [nid for nid, _ in created]


def notification_mark_read(*, user: User, notification: Notification) -> Notification:
    """Mark one of the user's own notifications read (already read: unchanged)."""
    if notification.recipient_id != user.pk:
        raise ValidationError("not the recipient")  # views pass only the user's own (access helper)
    if notification.read_at is None:
        notification.read_at = timezone.now()
        Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(
            read_at=notification.read_at
        )
        bump_unread([user.pk])
    return notification


def notifications_mark_all_read(*, user: User) -> int:
    updated = Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True).update(
        read_at=timezone.now()
    )
    if updated:
        bump_unread([user.pk])
    return updated


@transaction.atomic
def preferences_update(*, actor: User, user: User, choices: dict[str, dict[str, bool]]) -> None:
    """Save the user's choices: {topic key: {"email": bool, "digest": bool}} (only the keys given)."""
    if actor.pk != user.pk:
        raise ValidationError("users change only their own notification preferences")
    stored = {p.kind: p for p in NotificationPreference.objects.filter(user_id=user.pk)}
    before, after = {}, {}
    for key, values in choices.items():
        pref = stored.get(key) or NotificationPreference(user=user, kind=key)
        old = {"email": pref.email, "digest": pref.digest}
        for field in ("email", "digest"):
            if field in values:
                setattr(pref, field, bool(values[field]))
        new = {"email": pref.email, "digest": pref.digest}
        if pref.pk is None or old != new:
            pref.full_clean(exclude=["user"])
            pref.save()
        for field in ("email", "digest"):
            if field in values:
                before[f"{key}.{field}"], after[f"{key}.{field}"] = old[field], new[field]
    changes = audit_diff(before, after)
    if changes:
        audit_record(actor=actor, action="notifications.preferences_updated", target=user, changes=changes)
