"""The e-mails: one per notification (plain text) and the daily digest (plain text + simple HTML).
Each is written in the recipient's language (else the tenant's) and carries a stable Message-ID."""

import zoneinfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation


def user_language(user, tenant) -> str:
    return user.language or getattr(tenant, "default_language", "") or settings.LANGUAGE_CODE


def user_zone(user, tenant) -> zoneinfo.ZoneInfo:
    """The user's time zone, else the tenant's, else UTC (an unknown name falls through)."""
    for name in (user.time_zone, getattr(tenant, "time_zone", ""), "UTC"):
        if name:
            try:
                return zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                continue
    return zoneinfo.ZoneInfo("UTC")


def preferences_link(tenant) -> str:
    return tenant.url(reverse("notifications:preferences", urlconf="crm.urls_tenant"))


def notification_email(
    *, notification, message_id: str, tenant, connection=None, preferences_url: str | None = None
) -> EmailMultiAlternatives:
    """`preferences_url`: `preferences_link(tenant)` when the caller sends many (built once)."""
    user = notification.recipient
    context = {
        "notification": notification,
        "tenant": tenant,
        "link": tenant.url(notification.url) if notification.url else "",
        "preferences_url": preferences_url or preferences_link(tenant),
    }
    with translation.override(user_language(user, tenant)):
        body = render_to_string("notifications/email/notification.txt", context)
    return EmailMultiAlternatives(
        subject=" ".join(notification.title.split())[:200],
        body=body,
        to=[user.email],
        headers={"Message-ID": message_id},
        connection=connection,
    )


def digest_email(*, user, tenant, day, sections, message_id: str, connection=None) -> EmailMultiAlternatives:
    """`sections`: [(title, items, more)] with items `DigestItem`s and `more` the number not listed."""
    context = {
        "user": user,
        "tenant": tenant,
        "day": day,
        "sections": [
            {
                "title": title,
                "items": [(item.text, tenant.url(item.url) if item.url else "") for item in items],
                "more": more,
            }
            for title, items, more in sections
        ],
        "site_url": tenant.url("/"),
        "preferences_url": preferences_link(tenant),
    }
    with translation.override(user_language(user, tenant)):
        subject = render_to_string("notifications/email/digest_subject.txt", context).strip()
        text = render_to_string("notifications/email/digest.txt", context)
        html = render_to_string("notifications/email/digest.html", context)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=text,
        to=[user.email],
        headers={"Message-ID": message_id},
        connection=connection,
    )
    message.attach_alternative(html, "text/html")
    return message
