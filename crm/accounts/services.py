"""Writes to accounts: every change goes through one of these functions and leaves an audit record."""

from django.db import transaction

from crm.audit.services import audit_diff, audit_record

from .models import User


@transaction.atomic
def user_update_profile(*, actor: User, user: User, full_name: str, language: str, time_zone: str) -> User:
    before = {"full_name": user.full_name, "language": user.language, "time_zone": user.time_zone}
    user.full_name, user.language, user.time_zone = full_name.strip(), language, time_zone
    user.full_clean(exclude=["password"])
    user.save(update_fields=["full_name", "language", "time_zone", "updated_at"])
    after = {"full_name": user.full_name, "language": user.language, "time_zone": user.time_zone}
    changes = audit_diff(before, after)
    if changes:
        audit_record(actor=actor, action="user.profile_updated", target=user, changes=changes)
    return user


def set_password_link(*, user: User, tenant) -> str:
    """A one-time link (Django's password-reset token) to choose a password on the tenant's site."""
    from django.contrib.auth.tokens import default_token_generator
    from django.urls import reverse
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    path = reverse(
        "accounts:password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
        urlconf="crm.urls_tenant",
    )
    return tenant.url(path)


def send_first_admin_welcome(*, tenant) -> None:
    """Email the first administrator of a new tenant a link to choose their password."""
    from django.core.mail import send_mail
    from django.utils import translation
    from django.utils.translation import gettext as _

    user = User.objects.get(email__iexact=tenant.admin_email)
    with translation.override(tenant.default_language or "en"):
        link = set_password_link(user=user, tenant=tenant)
        send_mail(
            subject=_("Your CRM workspace %(name)s is ready") % {"name": tenant.name},
            message=_(
                "Your company's workspace is ready at %(url)s\n\n"
                "Choose your password with this link (valid for one day):\n%(link)s\n"
            )
            % {"url": tenant.url("/"), "link": link},
            from_email=None,
            recipient_list=[user.email],
        )
