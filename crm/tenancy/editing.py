"""The platform console's changes to a company after it was set up: its settings, and the first
administrator's invitation sent again.

The first admin is created by provisioning without a password and e-mailed a link to choose one
(crm.accounts.services.set_password_link: Django's password-reset token). That token is derived from
the user's password field, so giving the pending admin a fresh unusable password kills every link sent
before, and choosing a password kills the new one after its first use. The admin "has accepted" once
they have a usable password or have signed in.
"""

from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django_tenants.utils import schema_context, schema_exists

from crm.audit.models import AuditEvent
from crm.audit.services import audit_diff, audit_record
from crm.errors import ApplicationError

from .models import Tenant
from .services import tenant_settings_apply
from .worker_cache import tenant_settings_changed

EDITABLE_FIELDS = ("name", "time_zone", "currency", "default_language", "admin_email")
RESEND_EVENT = "tenant.admin_invitation_resent"
# At most one invitation e-mail per company in this many seconds (a double click, an impatient
# operator): the audit rows of earlier resends are the record it is checked against.
RESEND_INTERVAL_SECONDS = 60


class FirstAdmin:
    """What the console knows of a company's first administrator."""

    MISSING = "missing"  # no schema yet, or no user with the admin e-mail in it
    PENDING = "pending"  # has not chosen a password nor signed in
    ACCEPTED = "accepted"


def _first_admin_user(tenant: Tenant, *, for_update: bool = False):
    """The first admin's User row in the tenant's schema, or None; call inside its schema_context."""
    from crm.accounts.models import User

    users = User.objects.filter(email__iexact=tenant.admin_email)
    if for_update:
        users = users.select_for_update()
    return users.first() if tenant.admin_email else None


def _require_platform_admin(actor) -> None:
    """The second line behind the views' platform_admin_required: only platform admins change companies."""
    if not (actor is not None and actor.is_active and actor.is_superuser):
        raise PermissionDenied


def _has_accepted(user) -> bool:
    return user.has_usable_password() or user.last_login is not None


def first_admin_state(*, tenant: Tenant) -> str:
    """FirstAdmin.MISSING / PENDING / ACCEPTED (one query in the tenant's schema)."""
    if tenant.status in (Tenant.Status.PROVISIONING, Tenant.Status.FAILED) or not schema_exists(
        tenant.schema_name
    ):
        return FirstAdmin.MISSING
    with schema_context(tenant.schema_name):
        user = _first_admin_user(tenant)
    if user is None:
        return FirstAdmin.MISSING
    return FirstAdmin.ACCEPTED if _has_accepted(user) else FirstAdmin.PENDING


@transaction.atomic
def tenant_update(
    *,
    actor,
    tenant: Tenant,
    name: str | None = None,
    time_zone: str | None = None,
    currency: str | None = None,
    default_language: str | None = None,
    admin_email: str | None = None,
) -> Tenant:
    """Change a company's settings (None: leave as is) with provisioning's rules; audited as
    `tenant.updated` with each changed field's old and new value. Nothing is written when any value
    is refused. The first admin's e-mail can change only while they have not accepted their
    invitation; their account in the company's workspace changes with it (and the link sent to the
    old address stops working: the token covers the e-mail)."""
    _require_platform_admin(actor)
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if tenant.status == Tenant.Status.DELETED:
        raise ApplicationError(_("A deleted company cannot be edited. Cancel its deletion first."))
    given = {
        field: value
        for field, value in {
            "name": name,
            "time_zone": time_zone,
            "currency": currency,
            "default_language": default_language,
            "admin_email": admin_email,
        }.items()
        if value is not None
    }
    before = {field: getattr(tenant, field) for field in EDITABLE_FIELDS}
    tenant_settings_apply(tenant, **given)
    after = {field: getattr(tenant, field) for field in EDITABLE_FIELDS}
    changes = audit_diff(before, after)
    if not changes:
        return tenant
    if "admin_email" in changes:
        if not tenant.admin_email:
            raise ValidationError({"admin_email": _("Enter the first admin's email.")})
        if tenant.status == Tenant.Status.PROVISIONING:
            # The worker creates the first admin from the address it read when it started.
            raise ValidationError(
                {"admin_email": _("The company is being set up; change the e-mail once it is ready.")}
            )
        _move_first_admin(tenant=tenant, old_email=before["admin_email"])
    tenant.save(update_fields=[*changes, "updated_at"])
    audit_record(actor=actor, action="tenant.updated", target=tenant, changes=changes)
    schema = tenant.schema_name
    transaction.on_commit(lambda: tenant_settings_changed(schema))  # workers drop their cached row
    return tenant


def _move_first_admin(*, tenant: Tenant, old_email: str) -> None:
    """Give the pending first admin's account in the tenant's schema the new e-mail (nothing to move
    before provisioning has created it)."""
    from crm.accounts.models import User

    if not schema_exists(tenant.schema_name):
        return
    with schema_context(tenant.schema_name):
        user = User.objects.select_for_update().filter(email__iexact=old_email).first() if old_email else None
        if user is None:
            return
        if _has_accepted(user):
            raise ValidationError(
                {
                    "admin_email": _(
                        "The first admin has already signed in; they change their e-mail in the workspace."
                    )
                }
            )
        if User.objects.filter(email__iexact=tenant.admin_email).exclude(pk=user.pk).exists():
            raise ValidationError({"admin_email": _("Someone in this company already uses this e-mail.")})
        user.email = tenant.admin_email
        user.save(update_fields=["email", "updated_at"])


@transaction.atomic
def tenant_admin_invitation_resend(*, actor, tenant: Tenant) -> str:
    """E-mail the pending first admin a new link to choose their password; earlier links stop
    working. Refused once they have accepted, more than once a minute, or while the company is not
    active. Audited as `tenant.admin_invitation_resent`. Returns the address it was sent to.

    The e-mail is sent inside the transaction: if it cannot be sent, nothing changes and the link
    sent before still works."""
    from crm.accounts.services import send_first_admin_welcome

    _require_platform_admin(actor)
    # The company's row is locked: two clicks at once are serialised, and the second sees the first's
    # audit row and is refused by the rate limit.
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if tenant.status != Tenant.Status.ACTIVE:
        raise ApplicationError(_("Only an active company's first admin can be invited again."))
    wait = resend_wait_seconds(tenant=tenant)
    if wait > 0:
        raise ApplicationError(
            ngettext(
                "An invitation was sent less than a minute ago. Try again in %(seconds)d second.",
                "An invitation was sent less than a minute ago. Try again in %(seconds)d seconds.",
                wait,
            )
            % {"seconds": wait}
        )
    with schema_context(tenant.schema_name):
        user = _first_admin_user(tenant, for_update=True)
        if user is None:
            raise ApplicationError(
                _("This company has no account for %(email)s to invite.") % {"email": tenant.admin_email}
            )
        if _has_accepted(user):
            raise ApplicationError(
                _(
                    "%(email)s has already accepted the invitation. If they forgot their password, they "
                    "can reset it from the sign-in page."
                )
                % {"email": user.email}
            )
        # A fresh unusable password: every link sent before (its token covers this field) stops working.
        user.set_unusable_password()
        user.save(update_fields=["password"])
        try:
            send_first_admin_welcome(tenant=tenant)
        except Exception as exc:  # the mail server's error, whatever its class
            raise ApplicationError(
                _("The e-mail could not be sent (%(error)s). The link sent before still works.")
                % {"error": str(exc)[:200] or exc.__class__.__name__}
            ) from exc
        email = user.email
    audit_record(actor=actor, action=RESEND_EVENT, target=tenant, changes={"admin_email": email})
    return email


def resend_wait_seconds(*, tenant: Tenant) -> int:
    """Seconds before the first admin's invitation can be sent again (0: now)."""
    since = timezone.now() - timedelta(seconds=RESEND_INTERVAL_SECONDS)
    last = (
        AuditEvent.objects.filter(
            action=RESEND_EVENT,
            target_type=tenant._meta.label_lower,
            target_id=str(tenant.pk),
            created_at__gte=since,
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if last is None:
        return 0
    return max(1, round(RESEND_INTERVAL_SECONDS - (timezone.now() - last).total_seconds()))
