"""Accounts services: invitations with signed tokens, roles, activation, sessions."""

import hashlib
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core import mail, signing
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.accounts import services
from crm.accounts.models import Invitation, Role, User, UserSession
from crm.accounts.services import InvitationTokenError
from crm.audit.models import AuditEvent

NEW_PASSWORD = "Lantern-orbit-4417"


def _token_from(message) -> str:
    link = next(line for line in message.body.splitlines() if "/accounts/invitation/" in line)
    return link.rstrip("/").rsplit("/", 1)[-1]


@pytest.fixture
def invite(admin_user, tenant, django_capture_on_commit_callbacks):
    def make(email="new.person@alpha.test", role=Role.SALES, full_name="New Person"):
        with django_capture_on_commit_callbacks(execute=True):
            return services.invitation_create(
                actor=admin_user, email=email, full_name=full_name, role=role, tenant=tenant
            )

    return make


def test_invitation_is_recorded_audited_and_emailed_with_a_working_link(invite, tenant):
    invitation = invite(email="New.Person@Alpha.test")
    assert invitation.email == "new.person@alpha.test"
    assert invitation.is_pending and invitation.last_sent_at is not None
    assert AuditEvent.objects.filter(action="invitation.created", target_id=str(invitation.pk)).exists()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new.person@alpha.test"]
    assert "http://alpha.testserver.local/accounts/invitation/" in message.body
    assert services.invitation_check_token(token=_token_from(message)).pk == invitation.pk


def test_token_names_the_invitation_schema_and_a_secret_whose_hash_is_on_the_row(invite):
    invitation = invite()
    token = services.invitation_make_token(invitation=invitation)
    payload = signing.loads(token, salt="crm.invite")
    assert set(payload) == {"i", "s", "v"} and payload["i"] == invitation.pk and payload["s"] == "alpha"
    assert len(payload["v"]) >= 40  # secrets.token_urlsafe(32)
    invitation.refresh_from_db()
    assert invitation.token_hash == hashlib.sha256(payload["v"].encode()).hexdigest()
    assert payload["v"] not in invitation.token_hash
    assert invitation.expires_at - timezone.now() > settings.INVITE_MAX_AGE - timedelta(minutes=1)
    with pytest.raises(signing.BadSignature):
        signing.loads(token, salt="another.salt")


def test_a_token_forged_with_the_secret_key_is_refused(invite):
    """Anyone who knows SECRET_KEY can sign a payload; without the row's random secret it is worthless."""
    invitation = invite()
    assert settings.SECRET_KEY  # the forger has it
    forged_old_shape = signing.dumps({"i": invitation.pk, "s": "alpha"}, salt="crm.invite", compress=True)
    forged_guess = signing.dumps(
        {"i": invitation.pk, "s": "alpha", "v": "guessed-secret"}, salt="crm.invite", compress=True
    )
    for forged in (forged_old_shape, forged_guess):
        with pytest.raises(InvitationTokenError) as caught:
            services.invitation_accept(token=forged, full_name="Mallory", password=NEW_PASSWORD)
        assert caught.value.reason == InvitationTokenError.INVALID
    assert not User.objects.filter(email=invitation.email).exists()
    assert Invitation.objects.get(pk=invitation.pk).is_pending


def test_expiry_is_read_from_the_row_not_from_the_token(invite):
    invitation = invite()
    token = services.invitation_make_token(invitation=invitation)  # a freshly signed token
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(InvitationTokenError) as caught:
        services.invitation_accept(token=token, full_name="Late", password=NEW_PASSWORD)
    assert caught.value.reason == InvitationTokenError.EXPIRED
    assert not User.objects.filter(email=invitation.email).exists()
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() + timedelta(hours=1))
    assert services.invitation_check_token(token=token).pk == invitation.pk


def test_an_accepted_or_revoked_invitation_can_never_be_used_again(invite):
    accepted = invite(email="once@alpha.test")
    token = services.invitation_make_token(invitation=accepted)
    services.invitation_accept(token=token, full_name="Once", password=NEW_PASSWORD)
    # Even with its expiry pushed out again, the accepted link stays dead.
    Invitation.objects.filter(pk=accepted.pk).update(expires_at=timezone.now() + timedelta(days=30))
    with pytest.raises(InvitationTokenError) as used:
        services.invitation_accept(token=token, full_name="Twice", password=NEW_PASSWORD)
    assert used.value.reason == InvitationTokenError.USED

    revoked = invite(email="revoked@alpha.test")
    token = services.invitation_make_token(invitation=revoked)
    services.invitation_revoke(actor=revoked.invited_by, invitation=revoked)
    with pytest.raises(InvitationTokenError) as caught:
        services.invitation_accept(token=token, full_name="Late", password=NEW_PASSWORD)
    assert caught.value.reason == InvitationTokenError.REVOKED
    assert not User.objects.filter(email="revoked@alpha.test").exists()


def test_accepting_locks_the_invitation_row_so_a_second_accept_waits_and_is_refused(invite):
    invitation = invite()
    token = services.invitation_make_token(invitation=invitation)
    with CaptureQueriesContext(connection) as queries:
        services.invitation_accept(token=token, full_name="Nina", password=NEW_PASSWORD)
    reads = [q["sql"] for q in queries.captured_queries if 'FROM "accounts_invitation"' in q["sql"]]
    assert reads and all("FOR UPDATE" in sql for sql in reads), reads


def test_a_resent_invitation_retires_the_old_link(
    invite, admin_user, tenant, django_capture_on_commit_callbacks
):
    invitation = invite()
    old = _token_from(mail.outbox[-1])
    with django_capture_on_commit_callbacks(execute=True):
        services.invitation_resend(actor=admin_user, invitation=invitation, tenant=tenant)
    new = _token_from(mail.outbox[-1])
    with pytest.raises(InvitationTokenError) as caught:
        services.invitation_check_token(token=old)
    assert caught.value.reason == InvitationTokenError.INVALID
    assert services.invitation_check_token(token=new).pk == invitation.pk


def test_inviting_an_existing_user_or_a_pending_address_is_refused(invite, admin_user, sales_user):
    with pytest.raises(ValidationError) as existing:
        invite(email=sales_user.email.upper())
    assert "email" in existing.value.message_dict
    invite(email="twice@alpha.test")
    with pytest.raises(ValidationError) as twice:
        invite(email="twice@alpha.test")
    assert "already been invited" in twice.value.message_dict["email"][0]
    assert Invitation.objects.filter(email="twice@alpha.test").count() == 1


def test_accepting_creates_the_user_with_the_invited_role_and_marks_the_invitation(invite):
    invitation = invite(role=Role.MANAGER)
    token = services.invitation_make_token(invitation=invitation)
    user = services.invitation_accept(token=token, full_name="  Nina Neu ", password=NEW_PASSWORD)
    assert user.role == Role.MANAGER and user.full_name == "Nina Neu"
    assert user.check_password(NEW_PASSWORD)
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    with pytest.raises(InvitationTokenError) as again:
        services.invitation_accept(token=token, full_name="x", password=NEW_PASSWORD)
    assert again.value.reason == InvitationTokenError.USED
    assert AuditEvent.objects.filter(action="user.created", target_id=str(user.pk)).exists()


def test_a_weak_password_is_refused_and_nothing_is_written(invite):
    invitation = invite()
    token = services.invitation_make_token(invitation=invitation)
    users_before = User.objects.count()
    with pytest.raises(ValidationError) as weak:
        services.invitation_accept(token=token, full_name="Nina", password="12345678")
    assert "password1" in weak.value.message_dict
    assert User.objects.count() == users_before
    invitation.refresh_from_db()
    assert invitation.is_pending


def test_expired_tampered_revoked_and_foreign_tokens_are_refused(invite, tenant_b):
    invitation = invite()
    foreign = services.invitation_make_token(invitation=invitation, schema_name=tenant_b.schema_name)
    token = services.invitation_make_token(invitation=invitation)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(InvitationTokenError) as expired:
        services.invitation_accept(token=token, full_name="x", password=NEW_PASSWORD)
    assert expired.value.reason == InvitationTokenError.EXPIRED
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() + timedelta(days=1))

    cases = {
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"): InvitationTokenError.INVALID,
        "not-a-token": InvitationTokenError.INVALID,
        "x" * 5000: InvitationTokenError.INVALID,
        foreign: InvitationTokenError.OTHER_TENANT,
    }
    for bad, reason in cases.items():
        with pytest.raises(InvitationTokenError) as caught:
            services.invitation_accept(token=bad, full_name="x", password=NEW_PASSWORD)
        assert caught.value.reason == reason, bad[:40]
    services.invitation_revoke(actor=invitation.invited_by, invitation=invitation)
    with pytest.raises(InvitationTokenError) as revoked:
        services.invitation_check_token(token=token)
    assert revoked.value.reason == InvitationTokenError.REVOKED
    assert not User.objects.filter(email=invitation.email).exists()


def test_a_token_from_alpha_does_nothing_in_beta(invite, tenant_b):
    invitation = invite(email="crossing@alpha.test")
    token = services.invitation_make_token(invitation=invitation)
    with schema_context(tenant_b.schema_name):
        # Even if beta happened to hold an invitation with the same id, the schema in the token differs.
        with pytest.raises(InvitationTokenError) as caught:
            services.invitation_accept(token=token, full_name="x", password=NEW_PASSWORD)
        assert caught.value.reason == InvitationTokenError.OTHER_TENANT
        assert not User.objects.filter(email="crossing@alpha.test").exists()


def test_resend_sends_a_fresh_link_and_revoke_stops_it(
    invite, admin_user, tenant, django_capture_on_commit_callbacks
):
    invitation = invite()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.invitation_resend(actor=admin_user, invitation=invitation, tenant=tenant)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [invitation.email]
    services.invitation_revoke(actor=admin_user, invitation=invitation)
    with pytest.raises(ValidationError):
        services.invitation_resend(actor=admin_user, invitation=invitation, tenant=tenant)
    with pytest.raises(ValidationError):
        services.invitation_revoke(actor=admin_user, invitation=invitation)
    actions = set(AuditEvent.objects.filter(target_id=str(invitation.pk)).values_list("action", flat=True))
    assert {"invitation.created", "invitation.resent", "invitation.revoked"} <= actions


def test_change_role_is_audited(admin_user, sales_user):
    services.user_change_role(actor=admin_user, user=sales_user, role=Role.MANAGER)
    sales_user.refresh_from_db()
    assert sales_user.role == Role.MANAGER
    event = AuditEvent.objects.get(action="user.role_changed", target_id=str(sales_user.pk))
    assert event.changes == {"role": {"old": "sales", "new": "manager"}}


def test_you_cannot_change_your_own_role(admin_user):
    with pytest.raises(ValidationError):
        services.user_change_role(actor=admin_user, user=admin_user, role=Role.SALES)
    admin_user.refresh_from_db()
    assert admin_user.role == Role.ADMIN


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(admin_user, manager_user):
    other_admin = User.objects.create_user(email="admin2@alpha.test", password="x", role=Role.ADMIN)
    # Two admins: one may demote the other ...
    services.user_change_role(actor=admin_user, user=other_admin, role=Role.SALES)
    # ... but the remaining one can be removed by nobody (a manager promoted to admin tries).
    services.user_change_role(actor=admin_user, user=manager_user, role=Role.ADMIN)
    services.user_deactivate(actor=manager_user, user=admin_user)
    with pytest.raises(ValidationError) as demote:
        services.user_change_role(actor=admin_user, user=manager_user, role=Role.SALES)
    assert "last active admin" in demote.value.messages[0]
    with pytest.raises(ValidationError):
        services.user_deactivate(actor=other_admin, user=manager_user)
    manager_user.refresh_from_db()
    assert manager_user.role == Role.ADMIN and manager_user.is_active


def test_you_cannot_deactivate_yourself(admin_user):
    with pytest.raises(ValidationError):
        services.user_deactivate(actor=admin_user, user=admin_user)
    admin_user.refresh_from_db()
    assert admin_user.is_active


def test_deactivation_deletes_the_users_sessions_only(client_for, admin_user, sales_user, sales_user2):
    client_for(sales_user)
    client_for(sales_user)
    client_for(sales_user2)
    own_keys = set(UserSession.objects.filter(user=sales_user).values_list("session_key", flat=True))
    other_keys = set(UserSession.objects.filter(user=sales_user2).values_list("session_key", flat=True))
    assert len(own_keys) == 2 and len(other_keys) == 1
    assert Session.objects.filter(session_key__in=own_keys).count() == 2

    services.user_deactivate(actor=admin_user, user=sales_user)

    sales_user.refresh_from_db()
    assert not sales_user.is_active
    assert not Session.objects.filter(session_key__in=own_keys).exists()
    assert Session.objects.filter(session_key__in=other_keys).count() == 1
    event = AuditEvent.objects.get(action="user.deactivated", target_id=str(sales_user.pk))
    assert event.changes["sessions_ended"] == 2

    services.user_reactivate(actor=admin_user, user=sales_user)
    sales_user.refresh_from_db()
    assert sales_user.is_active
    assert AuditEvent.objects.filter(action="user.reactivated", target_id=str(sales_user.pk)).exists()


def test_sessions_are_mapped_in_the_schema_they_belong_to(client_for, sales_user, tenant_b):
    client_for(sales_user)
    keys = list(UserSession.objects.filter(user=sales_user).values_list("session_key", flat=True))
    assert len(keys) == 1 and Session.objects.filter(session_key__in=keys).count() == 1
    with schema_context(tenant_b.schema_name):
        assert not UserSession.objects.filter(session_key__in=keys).exists()
        assert not Session.objects.filter(session_key__in=keys).exists()


def test_first_admin_welcome_email_links_to_choose_a_password(tenant, admin_user):
    services.send_first_admin_welcome(tenant=tenant)
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    assert "http://alpha.testserver.local/accounts/password-reset/" in body
    assert admin_user.email in body
