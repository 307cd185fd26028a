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
    # The same id at beta is beta's own user, never alpha's (ids are per schema: give beta a user
    # with alpha's user's id, so the page has someone to show).
    assert alpha_user.pk not in beta_ids
    with schema_context("beta"):
        User.objects.create_user(
            pk=alpha_user.pk, email="same-id@beta.test", password=PASSWORD, full_name="Beta Same Id"
        )
    response = beta.get(f"/accounts/settings/users/{alpha_user.pk}/")
    assert response.status_code == 200
    assert "Beta Same Id" in response.content.decode() and marker not in response.content.decode()


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
    # Suspension ended every session at once: the old cookie no longer signs anyone in.
    response = signed_in.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
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


# --- Lockout counts the normalised address (issue 8, item 3) -----------------------------------------

VARIANTS = ("{email}", "{upper}", " {email} ", "{upper}  ", "{title}")


def _variants(email: str) -> list[str]:
    local, domain = email.split("@")
    return [
        template.format(email=email, upper=email.upper(), title=f"{local.title()}@{domain.title()}")
        for template in VARIANTS
    ]


def _fail_five_times_with_mixed_spellings(client: Client, email: str) -> None:
    for attempt, spelling in enumerate(_variants(email)):
        response = _login(client, spelling, "wrong-password-1")
        assert not _signed_in(client), attempt
    assert response.status_code == 429 or LOCKOUT_TEXT in response.content.decode()


def test_tenant_lockout_holds_for_every_spelling_of_the_address(tenant, manager_user):
    client = Client(HTTP_HOST="alpha.testserver.local")
    _fail_five_times_with_mixed_spellings(client, manager_user.email)
    for spelling in _variants(manager_user.email) + ["\tMANAGER@ALPHA.TEST\n"]:
        response = _login(Client(HTTP_HOST="alpha.testserver.local"), spelling, PASSWORD)
        assert response.status_code == 429, repr(spelling)
        assert LOCKOUT_TEXT in response.content.decode()


def test_tenant_lockout_after_five_failures_of_one_spelling_refuses_the_others(tenant, manager_user):
    client = Client(HTTP_HOST="alpha.testserver.local")
    for _attempt in range(settings.AXES_FAILURE_LIMIT):
        _login(client, manager_user.email, "wrong-password-1")
    for spelling in _variants(manager_user.email):
        fresh = Client(HTTP_HOST="alpha.testserver.local")
        response = _login(fresh, spelling, PASSWORD)
        assert response.status_code == 429 and not _signed_in(fresh), repr(spelling)


def test_console_lockout_holds_for_every_spelling_of_a_superusers_address(platform_admin):
    email = platform_admin.email
    assert platform_admin.is_superuser
    public = Client(HTTP_HOST=settings.BASE_DOMAIN)
    connection.set_schema_to_public()
    _fail_five_times_with_mixed_spellings(public, email)
    for spelling in _variants(email):
        fresh = Client(HTTP_HOST=settings.BASE_DOMAIN)
        response = _login(fresh, spelling, PASSWORD)
        assert response.status_code == 429 and not _signed_in(fresh), repr(spelling)
        # Not even as far as the two-factor step.
        assert "_crm_two_factor_pending" not in fresh.session


def test_a_right_password_in_another_spelling_signs_in_before_any_lockout(tenant, manager_user):
    client = Client(HTTP_HOST="alpha.testserver.local")
    response = _login(client, f"  {manager_user.email.upper()} ", PASSWORD)
    assert response.status_code == 302 and _signed_in(client)


# --- Suspension ends sessions; the password-reset link ignores the requester's Host port -------------


def test_suspending_a_tenant_deletes_all_its_sessions_at_once(tenant_a, platform_admin):
    from django.contrib.sessions.models import Session

    from crm.accounts.models import UserSession

    clients = []
    for key in ("admin", "manager", "sales"):
        client = Client(HTTP_HOST="alpha.testserver.local")
        assert _login(client, f"{key}@alpha.test", PASSWORD).status_code == 302
        clients.append(client)
    with schema_context("alpha"):
        assert Session.objects.count() >= 3 and UserSession.objects.count() >= 3
    connection.set_schema_to_public()
    tenancy_services.tenant_suspend(actor=platform_admin, tenant=tenant_a)
    with schema_context("alpha"):
        assert Session.objects.count() == 0 and UserSession.objects.count() == 0
    connection.set_schema_to_public()
    tenancy_services.tenant_reactivate(actor=platform_admin, tenant=tenant_a)
    for client in clients:
        assert client.get("/").status_code == 302


def test_suspending_one_tenant_leaves_another_tenants_sessions(tenant_a, tenant_b, platform_admin):
    beta = Client(HTTP_HOST="beta.testserver.local")
    assert _login(beta, "sales@beta.test", PASSWORD).status_code == 302
    connection.set_schema_to_public()
    tenancy_services.tenant_suspend(actor=platform_admin, tenant=tenant_a)
    assert beta.get("/").status_code == 200


def test_password_reset_link_uses_the_configured_site_not_the_requesters_host_port(tenant, settings):
    from django.core import mail

    settings.SITE_SCHEME, settings.SITE_PORT = "https", "8443"
    client = Client(HTTP_HOST="alpha.testserver.local:6666")
    response = client.post("/accounts/password-reset/", {"email": "sales@alpha.test"})
    assert response.status_code == 302
    body = mail.outbox[-1].body
    link = next(line for line in body.splitlines() if "/accounts/password-reset/" in line)
    assert link.startswith("https://alpha.testserver.local:8443/accounts/password-reset/"), link
    assert "6666" not in body


def test_failures_reported_in_any_spelling_are_counted_under_one_address(tenant, manager_user):
    """Whatever reports a failure (the form, the code step), axes keys it by the normalised address."""
    from axes.models import AccessAttempt
    from django.contrib.auth.signals import user_login_failed
    from django.test import RequestFactory

    request = RequestFactory().post("/accounts/login/", HTTP_HOST="alpha.testserver.local")
    for spelling in _variants(manager_user.email):
        user_login_failed.send(sender=__name__, credentials={"username": spelling}, request=request)
    attempts = AccessAttempt.objects.all()
    assert {attempt.username for attempt in attempts} == {manager_user.email}
    assert sum(attempt.failures_since_start for attempt in attempts) == len(VARIANTS)
