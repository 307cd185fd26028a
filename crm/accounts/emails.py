"""Emails the accounts app sends. Each is written in the tenant's default language."""

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import translation


def _days(delta) -> int:
    return max(1, round(delta.total_seconds() / 86400))


def send_invitation(*, invitation, tenant, link: str, inviter=None) -> None:
    language = getattr(tenant, "default_language", "") or settings.LANGUAGE_CODE
    context = {
        "invitation": invitation,
        "tenant": tenant,
        "link": link,
        "inviter": inviter,
        "days": _days(settings.INVITE_MAX_AGE),
    }
    with translation.override(language):
        subject = render_to_string("accounts/email/invitation_subject.txt", context).strip()
        body = render_to_string("accounts/email/invitation.txt", context)
    send_mail(subject=subject, message=body, from_email=None, recipient_list=[invitation.email])


def send_first_admin_welcome(*, user, tenant, link: str) -> None:
    """The first administrator of a new tenant: the workspace address and a link to choose a password."""
    language = getattr(tenant, "default_language", "") or settings.LANGUAGE_CODE
    context = {"user": user, "tenant": tenant, "link": link, "site_url": tenant.url("/")}
    with translation.override(language):
        subject = render_to_string("accounts/email/first_admin_welcome_subject.txt", context).strip()
        body = render_to_string("accounts/email/first_admin_welcome.txt", context)
    send_mail(subject=subject, message=body, from_email=None, recipient_list=[user.email])
