"""Writes to accounts: every change goes through one of these functions and leaves an audit record.

Invitations carry a signed token (`django.core.signing`, salt "crm.invite") naming the invitation
and the schema it belongs to, valid for `settings.INVITE_MAX_AGE`. A token is checked in the
schema of the site it is opened at, so a link from one company's workspace does nothing in another's.
"""

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.audit.services import audit_diff, audit_record

from . import emails
from .models import Invitation, Role, User, UserSession

INVITE_SALT = "crm.invite"


class InvitationTokenError(Exception):
    """An invitation link that cannot be used; `reason` says why, for the page that explains it."""

    INVALID = "invalid"
    EXPIRED = "expired"
    USED = "used"
    REVOKED = "revoked"
    OTHER_TENANT = "other_tenant"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


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
    user = User.objects.get(email__iexact=tenant.admin_email)
    emails.send_first_admin_welcome(
        user=user, tenant=tenant, link=set_password_link(user=user, tenant=tenant)
    )


# --- Sessions ------------------------------------------------------------------------------------


def user_end_sessions(*, user: User) -> int:
    """End every session of `user` in the current schema at once; returns how many were ended."""
    keys = list(UserSession.objects.filter(user=user).values_list("session_key", flat=True))
    deleted, _details = Session.objects.filter(session_key__in=keys).delete()
    UserSession.objects.filter(user=user).delete()
    return deleted


# --- Roles and activation ------------------------------------------------------------------------


def _lock_active_admins() -> list[int]:
    """Lock the active admins' rows so two admins cannot remove each other at the same moment."""
    return list(
        User.objects.select_for_update()
        .filter(role=Role.ADMIN, is_active=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _refuse_if_last_admin(*, user: User, field: str) -> None:
    admins = _lock_active_admins()
    if user.pk in admins and len(admins) <= 1:
        raise ValidationError(
            {
                field: _("%(name)s is the last active admin. Make someone else an admin first.")
                % {"name": user}
            }
        )


@transaction.atomic
def user_change_role(*, actor: User, user: User, role: str) -> User:
    if role not in Role.values:
        raise ValidationError({"role": _("Choose a valid role.")})
    if user.pk == actor.pk and role != user.role:
        raise ValidationError({"role": _("You cannot change your own role. Ask another admin.")})
    if role == user.role:
        return user
    if user.role == Role.ADMIN:
        _refuse_if_last_admin(user=user, field="role")
    old = user.role
    user.role = role
    user.full_clean(exclude=["password"])
    user.save(update_fields=["role", "updated_at"])
    audit_record(
        actor=actor, action="user.role_changed", target=user, changes={"role": {"old": old, "new": role}}
    )
    return user


@transaction.atomic
def user_deactivate(*, actor: User, user: User) -> User:
    """Deactivate `user` and end all their sessions immediately."""
    if user.pk == actor.pk:
        raise ValidationError(_("You cannot deactivate your own account."))
    if not user.is_active:
        return user
    if user.role == Role.ADMIN:
        _refuse_if_last_admin(user=user, field="__all__")
    user.is_active = False
    user.save(update_fields=["is_active", "updated_at"])
    ended = user_end_sessions(user=user)
    audit_record(
        actor=actor,
        action="user.deactivated",
        target=user,
        changes={"is_active": {"old": True, "new": False}, "sessions_ended": ended},
    )
    return user


@transaction.atomic
def user_reactivate(*, actor: User, user: User) -> User:
    if user.is_active:
        return user
    user.is_active = True
    user.save(update_fields=["is_active", "updated_at"])
    audit_record(
        actor=actor,
        action="user.reactivated",
        target=user,
        changes={"is_active": {"old": False, "new": True}},
    )
    return user


# --- Invitations ---------------------------------------------------------------------------------


def invitation_make_token(*, invitation: Invitation, schema_name: str | None = None) -> str:
    payload = {"i": invitation.pk, "s": schema_name or connection.schema_name}
    return signing.dumps(payload, salt=INVITE_SALT, compress=True)


def invitation_link(*, invitation: Invitation, tenant) -> str:
    from django.urls import reverse

    token = invitation_make_token(invitation=invitation, schema_name=tenant.schema_name)
    path = reverse("accounts:invitation_accept", kwargs={"token": token}, urlconf="crm.urls_tenant")
    return tenant.url(path)


def _current_tenant():
    return getattr(connection, "tenant", None)


def _send_invitation_on_commit(*, invitation: Invitation, tenant, inviter: User | None) -> None:
    link = invitation_link(invitation=invitation, tenant=tenant)
    transaction.on_commit(
        lambda: emails.send_invitation(invitation=invitation, tenant=tenant, link=link, inviter=inviter)
    )


@transaction.atomic
def invitation_create(*, actor: User, email: str, full_name: str = "", role: str, tenant=None) -> Invitation:
    """Invite `email` to join this tenant with `role`; the email leaves once the row is committed."""
    tenant = tenant or _current_tenant()
    email = (email or "").strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationError({"email": _("Someone with this email already has an account here.")})
    if (
        Invitation.objects.select_for_update()
        .filter(email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True)
        .exists()
    ):
        raise ValidationError(
            {"email": _("This address has already been invited. Resend that invitation instead.")}
        )
    invitation = Invitation(
        email=email,
        full_name=(full_name or "").strip(),
        role=role,
        invited_by=actor,
        last_sent_at=timezone.now(),
    )
    invitation.full_clean()
    try:
        with transaction.atomic():
            invitation.save()
    except IntegrityError:  # another admin invited the same address a moment ago
        raise ValidationError(
            {"email": _("This address has already been invited. Resend that invitation instead.")}
        )
    audit_record(
        actor=actor, action="invitation.created", target=invitation, changes={"email": email, "role": role}
    )
    _send_invitation_on_commit(invitation=invitation, tenant=tenant, inviter=actor)
    return invitation


def _require_pending(invitation: Invitation) -> None:
    if invitation.accepted_at is not None:
        raise ValidationError(_("This invitation has already been accepted."))
    if invitation.revoked_at is not None:
        raise ValidationError(_("This invitation has been revoked."))


@transaction.atomic
def invitation_resend(*, actor: User, invitation: Invitation, tenant=None) -> Invitation:
    """Send the invitation again with a fresh link (the expiry starts over)."""
    tenant = tenant or _current_tenant()
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    _require_pending(invitation)
    invitation.last_sent_at = timezone.now()
    invitation.save(update_fields=["last_sent_at"])
    audit_record(actor=actor, action="invitation.resent", target=invitation)
    _send_invitation_on_commit(invitation=invitation, tenant=tenant, inviter=actor)
    return invitation


@transaction.atomic
def invitation_revoke(*, actor: User, invitation: Invitation) -> Invitation:
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    _require_pending(invitation)
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_record(actor=actor, action="invitation.revoked", target=invitation)
    return invitation


def invitation_check_token(*, token: str) -> Invitation:
    """The pending invitation a token names, in the current schema; raises InvitationTokenError."""
    try:
        payload = signing.loads(token, salt=INVITE_SALT, max_age=settings.INVITE_MAX_AGE)
    except signing.SignatureExpired:
        raise InvitationTokenError(InvitationTokenError.EXPIRED)
    except signing.BadSignature:
        raise InvitationTokenError(InvitationTokenError.INVALID)
    if not isinstance(payload, dict) or not isinstance(payload.get("i"), int):
        raise InvitationTokenError(InvitationTokenError.INVALID)
    if payload.get("s") != connection.schema_name:
        raise InvitationTokenError(InvitationTokenError.OTHER_TENANT)
    invitation = Invitation.objects.filter(pk=payload["i"]).first()
    if invitation is None:
        raise InvitationTokenError(InvitationTokenError.INVALID)
    if invitation.accepted_at is not None:
        raise InvitationTokenError(InvitationTokenError.USED)
    if invitation.revoked_at is not None:
        raise InvitationTokenError(InvitationTokenError.REVOKED)
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, full_name: str, password: str) -> User:
    """Create the invited user with the chosen name and password and mark the invitation accepted."""
    invitation = invitation_check_token(token=token)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation.is_pending:
        raise InvitationTokenError(InvitationTokenError.USED)
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise ValidationError(_("Someone with this email already has an account here. Sign in instead."))
    user = User(email=invitation.email, full_name=(full_name or "").strip(), role=invitation.role)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password1": exc.messages})
    user.set_password(password)
    user.full_clean()
    user.save()
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    audit_record(actor=user, action="invitation.accepted", target=invitation)
    audit_record(
        actor=user,
        action="user.created",
        target=user,
        changes={"role": user.role, "invited_by": invitation.invited_by_id},
    )
    return user
