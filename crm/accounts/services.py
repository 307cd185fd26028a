"""Writes to accounts: every change goes through one of these functions and leaves an audit record.

Invitations carry a signed token (`django.core.signing`, salt "crm.invite") naming the invitation,
the schema it belongs to and a random secret drawn when the link is sent. Only the secret's SHA-256
and the link's expiry (`settings.INVITE_MAX_AGE` from sending) are stored on the row, and both are
checked there: knowing the secret key is not enough to forge a link, and a resent, accepted or
revoked invitation's old link is dead. A token is checked in the schema of the site it is opened at,
so a link from one company's workspace does nothing in another's.
"""

import hashlib
import hmac
import secrets

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
    if time_zone and time_zone != user.time_zone:
        from crm.timezones import validate_time_zone

        try:
            validate_time_zone(time_zone)
        except ValidationError as error:
            raise ValidationError({"time_zone": error.messages})
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


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def invitation_make_token(*, invitation: Invitation, schema_name: str | None = None) -> str:
    """Draw a new secret for `invitation` (retiring any earlier link), start its expiry, return the token.

    The row is updated in place; call it inside the transaction that sends the link.
    """
    secret = secrets.token_urlsafe(32)
    invitation.token_hash = _secret_hash(secret)
    invitation.expires_at = timezone.now() + settings.INVITE_MAX_AGE
    Invitation.objects.filter(pk=invitation.pk).update(
        token_hash=invitation.token_hash, expires_at=invitation.expires_at
    )
    payload = {"i": invitation.pk, "s": schema_name or connection.schema_name, "v": secret}
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


MAX_INVITATION_TOKEN_LENGTH = 500


def invitation_check_token(*, token: str, for_update: bool = False) -> Invitation:
    """The pending invitation a token names, in the current schema; raises InvitationTokenError.

    The signature only says the token is well formed; what makes it valid is the secret it carries
    matching the one stored on the row (compared in constant time) and the row's own expiry.
    """
    if not isinstance(token, str) or len(token) > MAX_INVITATION_TOKEN_LENGTH:
        raise InvitationTokenError(InvitationTokenError.INVALID)
    try:
        payload = signing.loads(token, salt=INVITE_SALT)
    except signing.BadSignature:
        raise InvitationTokenError(InvitationTokenError.INVALID)
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("i"), int)
        or not isinstance(payload.get("v"), str)
    ):
        raise InvitationTokenError(InvitationTokenError.INVALID)
    if payload.get("s") != connection.schema_name:
        raise InvitationTokenError(InvitationTokenError.OTHER_TENANT)
    invitations = Invitation.objects.select_for_update() if for_update else Invitation.objects
    invitation = invitations.filter(pk=payload["i"]).first()
    if invitation is None or not invitation.token_hash:
        raise InvitationTokenError(InvitationTokenError.INVALID)
    if not hmac.compare_digest(invitation.token_hash, _secret_hash(payload["v"])):
        raise InvitationTokenError(InvitationTokenError.INVALID)
    if invitation.accepted_at is not None:
        raise InvitationTokenError(InvitationTokenError.USED)
    if invitation.revoked_at is not None:
        raise InvitationTokenError(InvitationTokenError.REVOKED)
    if invitation.expires_at is None or invitation.expires_at <= timezone.now():
        raise InvitationTokenError(InvitationTokenError.EXPIRED)
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, full_name: str, password: str) -> User:
    """Create the invited user with the chosen name and password and mark the invitation accepted.

    The row is locked while the token is checked, so of two accepts at the same moment the second
    waits, then finds the invitation accepted and is refused.
    """
    invitation = invitation_check_token(token=token, for_update=True)
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


# --- Two-factor sign-in (django-otp: one TOTP device, one static device of recovery codes) ---------

TOTP_DEVICE_NAME = "authenticator"
RECOVERY_DEVICE_NAME = "recovery"
MAX_CODE_LENGTH = 32


def account_settings_get():
    from .models import AccountSettings

    return AccountSettings.objects.filter(pk=1).first() or AccountSettings(pk=1)


@transaction.atomic
def account_settings_update(*, actor: User, require_two_factor_for_admins: bool):
    from .models import AccountSettings

    current, _created = AccountSettings.objects.select_for_update().get_or_create(pk=1)
    old = current.require_two_factor_for_admins
    if old != require_two_factor_for_admins:
        current.require_two_factor_for_admins = require_two_factor_for_admins
        current.save(update_fields=["require_two_factor_for_admins", "updated_at"])
        audit_record(
            actor=actor,
            action="settings.two_factor_requirement_changed",
            target=current,
            label=_("Sign-in security"),
            changes={"require_two_factor_for_admins": {"old": old, "new": require_two_factor_for_admins}},
        )
    return current


def two_factor_required(*, user: User) -> bool:
    """Must this user have two-factor sign-in? Platform admins always; a tenant's admins if it says so."""
    if connection.schema_name == "public":
        return bool(user.is_superuser)
    return bool(user.is_admin and account_settings_get().require_two_factor_for_admins)


def two_factor_enabled(*, user: User) -> bool:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def two_factor_start_enrolment(*, user: User):
    """The unconfirmed authenticator device of `user` (created once); confirmed by a first good code."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if two_factor_enabled(user=user):
        raise ValidationError(_("Two-factor sign-in is already on for this account."))
    device = TOTPDevice.objects.filter(user=user, confirmed=False, name=TOTP_DEVICE_NAME).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, confirmed=False, name=TOTP_DEVICE_NAME)
    return device


def _clean_code(code) -> str:
    code = str(code or "")
    if len(code) > MAX_CODE_LENGTH:
        return ""
    return "".join(code.split()).replace("-", "").lower()


def _new_recovery_codes(*, user: User) -> list[str]:
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _i in range(settings.TWO_FACTOR_RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


@transaction.atomic
def two_factor_confirm_enrolment(*, actor: User, user: User, code: str) -> list[str]:
    """Confirm the pending authenticator with a current code; returns the new recovery codes (shown once)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = (
        TOTPDevice.objects.select_for_update()
        .filter(user=user, confirmed=False, name=TOTP_DEVICE_NAME)
        .first()
    )
    if device is None:
        raise ValidationError(_("Start the set-up again: no authenticator is waiting to be confirmed."))
    code = _clean_code(code)
    if not code.isdigit() or not device.verify_token(code):
        raise ValidationError({"code": _("That code is not right. Enter the current 6-digit code.")})
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    codes = _new_recovery_codes(user=user)
    audit_record(actor=actor, action="user.two_factor_enabled", target=user)
    return codes


def two_factor_verify(*, user: User, code: str):
    """The device that accepts `code` (a TOTP code or an unused recovery code), else None.

    Devices are locked while checked, so one code cannot be used twice at the same moment; each
    device's own throttling (django-otp) slows repeated guesses. A recovery code is used up and the
    use is audited.
    """
    from django_otp import devices_for_user
    from django_otp.plugins.otp_static.models import StaticDevice

    code = _clean_code(code)
    if not code:
        return None
    with transaction.atomic():
        for device in devices_for_user(user, confirmed=True, for_verify=True):
            # An authenticator code is 6 digits; a recovery code is 8 letters and digits.
            if isinstance(device, StaticDevice) == (code.isdigit() and len(code) <= 6):
                continue
            if device.verify_token(code):
                if isinstance(device, StaticDevice):
                    audit_record(
                        actor=user,
                        action="user.two_factor_recovery_code_used",
                        target=user,
                        changes={"recovery_codes_left": device.token_set.count()},
                    )
                return device
    return None


@transaction.atomic
def two_factor_disable(*, actor: User, user: User, code: str) -> None:
    """Turn two-factor sign-in off; needs a current code, and is refused where it is required."""
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if two_factor_required(user=user):
        raise ValidationError(_("Two-factor sign-in is required for your account and cannot be turned off."))
    if not two_factor_enabled(user=user):
        return
    if two_factor_verify(user=user, code=code) is None:
        raise ValidationError({"code": _("That code is not right. Enter a current code or a recovery code.")})
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    audit_record(actor=actor, action="user.two_factor_disabled", target=user)


@transaction.atomic
def two_factor_new_recovery_codes(*, actor: User, user: User, code: str) -> list[str]:
    """Replace the recovery codes (the old ones stop working); needs a current code."""
    if not two_factor_enabled(user=user):
        raise ValidationError(_("Turn on two-factor sign-in first."))
    if two_factor_verify(user=user, code=code) is None:
        raise ValidationError({"code": _("That code is not right. Enter a current code or a recovery code.")})
    codes = _new_recovery_codes(user=user)
    audit_record(actor=actor, action="user.two_factor_recovery_codes_renewed", target=user)
    return codes


def two_factor_recovery_codes_left(*, user: User) -> int:
    from django_otp.plugins.otp_static.models import StaticToken

    return StaticToken.objects.filter(device__user=user).count()


# --- The user's own sessions ----------------------------------------------------------------------


def user_session_end(*, user: User, session_id: int) -> bool:
    """End one of `user`'s sessions (by UserSession id); another user's session is left alone."""
    row = UserSession.objects.filter(user=user, pk=session_id).first()
    if row is None:
        return False
    with transaction.atomic():
        Session.objects.filter(session_key=row.session_key).delete()
        row.delete()
    return True


@transaction.atomic
def user_end_other_sessions(*, user: User, keep_session_key: str | None) -> int:
    """End every session of `user` but the current one; returns how many were ended."""
    rows = UserSession.objects.filter(user=user).exclude(session_key=keep_session_key or "")
    keys = list(rows.values_list("session_key", flat=True))
    deleted, _details = Session.objects.filter(session_key__in=keys).delete()
    rows.delete()
    audit_record(
        actor=user, action="user.other_sessions_ended", target=user, changes={"sessions_ended": deleted}
    )
    return deleted


def end_all_sessions_in_schema() -> int:
    """End every session stored in the current schema (a suspended tenant signs everyone out)."""
    deleted, _details = Session.objects.all().delete()
    UserSession.objects.all().delete()
    return deleted
