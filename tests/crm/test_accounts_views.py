"""Settings -> Users: list, invite, accept, resend/revoke, role changes, (de)activation, audit log."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import Client
from django.utils import timezone

from crm.accounts.models import Invitation, Role, User
from crm.audit.models import AuditEvent
from tests.crm.platform_fixtures import english_ui  # noqa: F401
from tests.factories import UserFactory

USERS = "/accounts/settings/users/"
NEW_PASSWORD = "Lantern-orbit-4417"

pytestmark = pytest.mark.usefixtures("english_ui")


def _invite(client, capture, **data):
    payload = {"email": "new.person@alpha.test", "full_name": "New Person", "role": "sales", **data}
    with capture(execute=True):
        return client.post(USERS + "invite/", payload)


def _token(message) -> str:
    line = next(line for line in message.body.splitlines() if "/accounts/invitation/" in line)
    return line.rstrip("/").rsplit("/", 1)[-1]


def test_settings_page_links_to_users(admin_client):
    html = admin_client.get("/accounts/settings/").content.decode()
    assert f'href="{USERS}"' in html


def test_users_list_shows_name_email_role_status_and_pending_invitations(
    admin_client, sales_user, django_capture_on_commit_callbacks
):
    _invite(admin_client, django_capture_on_commit_callbacks, email="pending@alpha.test")
    html = admin_client.get(USERS).content.decode()
    assert sales_user.email in html and sales_user.full_name in html
    assert 'data-invitation="pending@alpha.test"' in html
    assert "Sales" in html and "Never" in html


def test_users_list_query_count_does_not_grow_with_users(
    admin_client, django_assert_num_queries, django_capture_on_commit_callbacks
):
    # incl. the bell and the alerts badge (last visit + count) on a cold cache
    with django_assert_num_queries(11):
        admin_client.get(USERS)
    UserFactory.create_batch(40)
    for number in range(5):
        _invite(admin_client, django_capture_on_commit_callbacks, email=f"p{number}@alpha.test")
    with django_assert_num_queries(8):  # 44 more rows; one query fewer (cached by the first request)
        response = admin_client.get(USERS)
    assert len(response.context["users"]) == 44 and len(response.context["invitations"]) == 5


def test_users_list_filters(admin_client, sales_user, manager_user):
    response = admin_client.get(USERS + "?role=manager")
    assert [u.email for u in response.context["users"]] == [manager_user.email]
    response = admin_client.get(USERS + "?q=sales2")
    assert [u.email for u in response.context["users"]] == ["sales2@alpha.test"]


def test_invite_accept_and_sign_in(admin_client, anon_client, django_capture_on_commit_callbacks):
    response = _invite(admin_client, django_capture_on_commit_callbacks, role="manager")
    assert response.status_code == 302 and response["Location"] == USERS
    assert len(mail.outbox) == 1
    token = _token(mail.outbox[0])

    page = anon_client.get(f"/accounts/invitation/{token}/")
    assert page.status_code == 200 and "new.person@alpha.test" in page.content.decode()
    response = anon_client.post(
        f"/accounts/invitation/{token}/",
        {"full_name": "Nina Neu", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(email="new.person@alpha.test")
    assert user.role == Role.MANAGER and user.full_name == "Nina Neu"
    assert anon_client.get("/").status_code == 200  # signed in
    assert Invitation.objects.get(email=user.email).accepted_at is not None
    # The same link again: a clear page, nothing written.
    again = anon_client.get(f"/accounts/invitation/{token}/")
    assert again.status_code == 400 and 'data-reason="used"' in again.content.decode()


def test_invite_form_errors_are_shown_at_the_field(
    admin_client, sales_user, django_capture_on_commit_callbacks
):
    response = _invite(admin_client, django_capture_on_commit_callbacks, email=sales_user.email)
    assert response.status_code == 200
    assert "already has an account" in response.context["form"].errors["email"][0]
    response = _invite(admin_client, django_capture_on_commit_callbacks, email="not-an-email")
    assert "email" in response.context["form"].errors
    assert not Invitation.objects.exists() and not mail.outbox


def test_accept_page_validates_the_password_and_writes_nothing(
    admin_client, anon_client, django_capture_on_commit_callbacks
):
    _invite(admin_client, django_capture_on_commit_callbacks)
    token = _token(mail.outbox[0])
    users_before = User.objects.count()
    for data, field in (
        ({"full_name": "N", "password1": "short", "password2": "short"}, "password1"),
        ({"full_name": "N", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"}, "password2"),
        ({"full_name": "", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}, "full_name"),
    ):
        response = anon_client.post(f"/accounts/invitation/{token}/", data)
        assert response.status_code == 200 and field in response.context["form"].errors
    assert User.objects.count() == users_before
    assert Invitation.objects.get().is_pending


def test_expired_invitation_shows_a_clear_message_and_writes_nothing(
    admin_client, anon_client, monkeypatch, django_capture_on_commit_callbacks
):
    _invite(admin_client, django_capture_on_commit_callbacks)
    token = _token(mail.outbox[0])
    # The link's expiry is kept on the invitation row, not in the (freshly signed) token.
    Invitation.objects.update(expires_at=timezone.now() - timedelta(hours=1))
    users_before = User.objects.count()
    response = anon_client.post(
        f"/accounts/invitation/{token}/",
        {"full_name": "Late", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-reason="expired"' in html and "The invitation link has expired" in html
    assert User.objects.count() == users_before and Invitation.objects.get().is_pending


@pytest.mark.parametrize("token", ["garbage", "eyJpIjoxLCJzIjoiYWxwaGEifQ:1abcde:forged-signature"])
def test_tampered_tokens_show_a_clear_page(anon_client, token):
    response = anon_client.get(f"/accounts/invitation/{token}/")
    assert response.status_code == 400 and 'data-reason="invalid"' in response.content.decode()


def test_a_token_from_another_tenant_shows_a_clear_page_and_writes_nothing(
    admin_client, client_for, tenant_b, django_capture_on_commit_callbacks
):
    _invite(admin_client, django_capture_on_commit_callbacks, email="wanderer@alpha.test")
    token = _token(mail.outbox[0])
    beta = Client(HTTP_HOST="beta.testserver.local")
    response = beta.post(
        f"/accounts/invitation/{token}/",
        {"full_name": "W", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 400 and 'data-reason="other_tenant"' in response.content.decode()
    from django_tenants.utils import schema_context

    with schema_context("beta"):
        assert not User.objects.filter(email="wanderer@alpha.test").exists()


def test_resend_and_revoke(admin_client, anon_client, django_capture_on_commit_callbacks):
    _invite(admin_client, django_capture_on_commit_callbacks)
    invitation = Invitation.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/accounts/settings/invitations/{invitation.pk}/resend/")
    assert response.status_code == 302 and len(mail.outbox) == 2
    token = _token(mail.outbox[1])
    admin_client.post(f"/accounts/settings/invitations/{invitation.pk}/revoke/")
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    response = anon_client.get(f"/accounts/invitation/{token}/")
    assert 'data-reason="revoked"' in response.content.decode()
    response = admin_client.post(f"/accounts/settings/invitations/{invitation.pk}/resend/", follow=True)
    assert "has been revoked" in response.content.decode()
    assert len(mail.outbox) == 2


def test_change_role(admin_client, sales_user):
    response = admin_client.post(f"{USERS}{sales_user.pk}/role/", {"role": "manager"}, follow=True)
    sales_user.refresh_from_db()
    assert sales_user.role == Role.MANAGER
    assert "is now Manager" in response.content.decode()
    assert "user.role_changed" in response.content.decode()  # the history on the user page


def test_admin_cannot_demote_or_deactivate_themselves(admin_client, admin_user):
    response = admin_client.post(f"{USERS}{admin_user.pk}/role/", {"role": "sales"}, follow=True)
    assert "You cannot change your own role" in response.content.decode()
    response = admin_client.post(f"{USERS}{admin_user.pk}/deactivate/", follow=True)
    assert "You cannot deactivate your own account" in response.content.decode()
    admin_user.refresh_from_db()
    assert admin_user.role == Role.ADMIN and admin_user.is_active
    assert not AuditEvent.objects.filter(target_id=str(admin_user.pk), action__startswith="user.").exists()


def test_deactivated_user_is_signed_out_at_once(admin_client, client_for, sales_user):
    sales = client_for(sales_user)
    assert sales.get("/").status_code == 200
    key = sales.cookies[settings.SESSION_COOKIE_NAME].value
    response = admin_client.post(f"{USERS}{sales_user.pk}/deactivate/", follow=True)
    assert "has been deactivated" in response.content.decode()
    assert not Session.objects.filter(session_key=key).exists()
    response = sales.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    # Reactivated, they may sign in again (the old session stays gone).
    admin_client.post(f"{USERS}{sales_user.pk}/reactivate/")
    sales_user.refresh_from_db()
    assert sales_user.is_active
    assert sales.get("/").status_code == 302


def test_user_pages_answer_404_for_unknown_ids(admin_client):
    assert admin_client.get(f"{USERS}999999/").status_code == 404
    assert admin_client.post(f"{USERS}999999/deactivate/").status_code == 404
    assert admin_client.post("/accounts/settings/invitations/999999/revoke/").status_code == 404


def test_audit_log_lists_the_tenants_events_newest_first_with_paging(admin_client, admin_user, sales_user):
    from crm.audit.services import audit_record

    for number in range(55):
        audit_record(
            actor=admin_user, action="user.profile_updated", target=sales_user, changes={"n": number}
        )
    first = admin_client.get("/accounts/settings/audit/?event=user.profile_updated")
    assert len(first.context["events"]) == 50 and first.context["next_before"]
    assert first.context["events"][0].changes == {"n": 54}
    older = admin_client.get(
        f"/accounts/settings/audit/?event=user.profile_updated&before={first.context['next_before']}"
    )
    assert [e.changes["n"] for e in older.context["events"]] == [4, 3, 2, 1, 0]
    assert older.context["next_before"] is None


def test_non_admins_cannot_use_the_user_pages(manager_client, sales_client, sales_user2):
    for client in (manager_client, sales_client):
        assert client.get(USERS).status_code == 403
        assert client.post(f"{USERS}{sales_user2.pk}/deactivate/").status_code == 403
    sales_user2.refresh_from_db()
    assert sales_user2.is_active
