"""Security properties across tenants: isolation, session replay, login throttling, suspension."""

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from crm.accounts import services as account_services
from crm.accounts.models import Role, User
from crm.audit.services import audit_record
from crm.tenancy import services as tenancy_services
from tests.conftest import PASSWORD
from tests.crm.platform_fixtures import english_ui  # noqa: F401

LOCKOUT_TEXT = "Too many failed sign-in attempts"

pytestmark = pytest.mark.usefixtures("english_ui")


def _login(client: Client, email: str, password: str):
    return client.post("/accounts/login/", {"username": email, "password": password})


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def alpha_marker(tenant, admin_user, django_capture_on_commit_callbacks):
    """Data that exists only in alpha: a user, an invitation and audit events with a unique marker."""
    marker = "zq-alpha-only"
    user = User.objects.create_user(
        email=f"{marker}@alpha.test", password=PASSWORD, full_name=f"Person {marker}", role=Role.SALES
    )
    with django_capture_on_commit_callbacks(execute=True):
        account_services.invitation_create(
            actor=admin_user, email=f"invitee-{marker}@alpha.test", role=Role.SALES, tenant=tenant
        )
    audit_record(actor=admin_user, action=f"user.{marker}", target=user, changes={"marker": marker})
    return {"marker": marker, "user": user}


def test_data_created_in_alpha_is_invisible_in_beta(alpha_marker, client_for, tenant_b, admin_client):
    marker, alpha_user = alpha_marker["marker"], alpha_marker["user"]
    # Alpha's admin sees it (so the pages below would show it if it leaked) ...
    for path in ("/accounts/settings/users/", "/accounts/settings/audit/"):
        assert marker in admin_client.get(path).content.decode(), path
    # ... beta's admin does not, on any page.
    with schema_context("beta"):
        beta_admin = User.objects.get(email="admin@beta.test")
        beta_ids = set(User.objects.values_list("pk", flat=True))
    beta = client_for(beta_admin, tenant_b)
    for path in (
        "/",
        "/accounts/settings/users/",
        "/accounts/settings/users/?q=zq",
        "/accounts/settings/audit/",
        "/accounts/settings/audit/?action=user.zq",
        "/accounts/profile/",
    ):
        response = beta.get(path)
        assert response.status_code == 200, path
        assert marker not in response.content.decode(), path
    # The same id at beta is beta's own user (or nobody): never alpha's.
    response = beta.get(f"/accounts/settings/users/{alpha_user.pk}/")
    assert marker not in response.content.decode()
    assert response.status_code == (200 if alpha_user.pk in beta_ids else 404)


def test_a_user_of_alpha_cannot_sign_in_at_beta(tenant_b):
    beta = Client(HTTP_HOST="beta.testserver.local")
    response = _login(beta, "admin@alpha.test", PASSWORD)
    assert response.status_code == 200 and not _signed_in(beta)
    assert "do not match an active account here" in response.content.decode()
    alpha = Client(HTTP_HOST="alpha.testserver.local")
    assert _login(alpha, "admin@alpha.test", PASSWORD).status_code == 302 and _signed_in(alpha)


def test_a_session_cookie_from_alpha_is_not_valid_at_beta(tenant_a, tenant_b):
    alpha = Client(HTTP_HOST="alpha.testserver.local")
    assert _login(alpha, "sales@alpha.test", PASSWORD).status_code == 302
    assert alpha.get("/").status_code == 200
    cookie = alpha.cookies[settings.SESSION_COOKIE_NAME].value

    replay = Client(HTTP_HOST="beta.testserver.local")
    replay.cookies[settings.SESSION_COOKIE_NAME] = cookie
    response = replay.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    response = replay.get("/accounts/profile/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_wrong_password_six_times_locks_that_account_from_that_address_only(tenant):
    client = Client(HTTP_HOST="alpha.testserver.local", REMOTE_ADDR="10.1.2.3")
    for attempt in range(1, 5):
        response = _login(client, "sales@alpha.test", "wrong-password")
        assert response.status_code == 200, attempt
        assert LOCKOUT_TEXT not in response.content.decode()
    _login(client, "sales@alpha.test", "wrong-password")  # the fifth failure reaches the limit
    sixth = _login(client, "sales@alpha.test", "wrong-password")
    assert sixth.status_code == 429 and LOCKOUT_TEXT in sixth.content.decode()
    # Locked: even the right password is refused now ...
    right = _login(client, "sales@alpha.test", PASSWORD)
    assert right.status_code == 429 and not _signed_in(client)
    # ... while another account from the same address signs in,
    other = Client(HTTP_HOST="alpha.testserver.local", REMOTE_ADDR="10.1.2.3")
    assert _login(other, "sales2@alpha.test", PASSWORD).status_code == 302 and _signed_in(other)
    # and the same account from another address too (the lock is per account and address).
    elsewhere = Client(HTTP_HOST="alpha.testserver.local", REMOTE_ADDR="10.9.9.9")
    assert _login(elsewhere, "sales@alpha.test", PASSWORD).status_code == 302


def test_a_successful_sign_in_resets_the_failure_count(tenant):
    client = Client(HTTP_HOST="alpha.testserver.local", REMOTE_ADDR="10.4.4.4")
    for _ in range(4):
        _login(client, "manager@alpha.test", "wrong-password")
    assert _login(client, "manager@alpha.test", PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    for attempt in range(4):
        response = _login(client, "manager@alpha.test", "wrong-password")
        assert response.status_code == 200 and LOCKOUT_TEXT not in response.content.decode(), attempt
    assert _login(client, "manager@alpha.test", PASSWORD).status_code == 302


def test_suspended_tenant_shows_the_suspended_page_and_refuses_sign_in(tenant_a, platform_admin, client_for):
    signed_in = client_for(_alpha_user("sales"), tenant_a)
    connection.set_schema_to_public()
    tenancy_services.tenant_suspend(actor=platform_admin, tenant=tenant_a)
    with schema_context("alpha"):
        users_before = User.objects.count()

    for path in ("/", "/accounts/login/", "/accounts/settings/users/"):
        response = signed_in.get(path)
        assert response.status_code == 403, path
        assert 'data-testid="tenant-suspended"' in response.content.decode()
    fresh = Client(HTTP_HOST="alpha.testserver.local")
    response = _login(fresh, "admin@alpha.test", PASSWORD)
    assert response.status_code == 403 and not _signed_in(fresh)

    connection.set_schema_to_public()
    tenancy_services.tenant_reactivate(actor=platform_admin, tenant=tenant_a)
    with schema_context("alpha"):
        assert User.objects.count() == users_before
    assert signed_in.get("/").status_code == 200
    assert _login(fresh, "admin@alpha.test", PASSWORD).status_code == 302


def _alpha_user(key: str) -> User:
    with schema_context("alpha"):
        return User.objects.get(email=f"{key}@alpha.test")


def test_a_deactivated_users_open_session_stops_working_at_once(tenant, admin_user, sales_user):
    client = Client(HTTP_HOST="alpha.testserver.local")
    assert _login(client, sales_user.email, PASSWORD).status_code == 302
    assert client.get("/").status_code == 200
    account_services.user_deactivate(actor=admin_user, user=sales_user)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert _login(client, sales_user.email, PASSWORD).status_code == 200 and not _signed_in(client)
