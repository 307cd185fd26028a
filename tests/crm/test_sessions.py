"""Profile -> Active sessions: the user's own sessions with browser, address and last seen; ending one,
ending all the others; nobody can end another user's session."""

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from crm.accounts.models import UserSession
from crm.audit.models import AuditEvent
from tests.conftest import PASSWORD
from tests.crm.platform_fixtures import english_ui  # noqa: F401

pytestmark = pytest.mark.usefixtures("english_ui")

SESSIONS = "/accounts/profile/sessions/"
PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
DESKTOP_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def _signed_in_client(email: str, user_agent: str, ip: str) -> Client:
    client = Client(HTTP_HOST="alpha.testserver.local", HTTP_USER_AGENT=user_agent, REMOTE_ADDR=ip)
    response = client.post("/accounts/login/", {"username": email, "password": PASSWORD})
    assert response.status_code == 302
    return client


def test_the_page_lists_the_users_sessions_with_browser_address_and_the_current_one_marked(
    tenant, manager_user, sales_user
):
    desktop = _signed_in_client(manager_user.email, DESKTOP_UA, "203.0.113.7")
    _signed_in_client(manager_user.email, PHONE_UA, "198.51.100.9")
    _signed_in_client(sales_user.email, DESKTOP_UA, "192.0.2.44")  # someone else's
    response = desktop.get(SESSIONS)
    assert response.status_code == 200
    rows = response.context["sessions"]
    assert len(rows) == 2 and rows[0].is_current and not rows[1].is_current
    assert rows[0].browser == "Chrome · Windows" and rows[1].browser == "Safari · iPhone"
    html = response.content.decode()
    assert "203.0.113.7" in html and "198.51.100.9" in html and "192.0.2.44" not in html
    assert html.count('data-testid="current-session"') == 1
    assert all(row.last_seen_at is not None for row in rows)


def test_signing_out_one_session_ends_it_on_the_server(tenant, manager_user):
    desktop = _signed_in_client(manager_user.email, DESKTOP_UA, "203.0.113.7")
    phone = _signed_in_client(manager_user.email, PHONE_UA, "198.51.100.9")
    other = next(row for row in desktop.get(SESSIONS).context["sessions"] if not row.is_current)
    response = desktop.post(f"{SESSIONS}{other.pk}/end/")
    assert response.status_code == 302
    assert not Session.objects.filter(session_key=other.session_key).exists()
    assert phone.get("/").status_code == 302  # the phone is signed out
    assert desktop.get("/").status_code == 200


def test_sign_out_everywhere_else_keeps_only_the_current_session(tenant, manager_user):
    current = _signed_in_client(manager_user.email, DESKTOP_UA, "203.0.113.7")
    others = [_signed_in_client(manager_user.email, PHONE_UA, f"198.51.100.{n}") for n in (1, 2, 3)]
    response = current.post(SESSIONS + "end-others/")
    assert response.status_code == 302
    assert all(client.get("/").status_code == 302 for client in others)
    assert current.get("/").status_code == 200
    assert UserSession.objects.filter(user=manager_user).count() == 1
    assert AuditEvent.objects.filter(
        action="user.other_sessions_ended", target_id=str(manager_user.pk)
    ).exists()


def test_nobody_can_end_another_users_session(tenant, manager_user, sales_user):
    victim = _signed_in_client(sales_user.email, DESKTOP_UA, "192.0.2.44")
    attacker = _signed_in_client(manager_user.email, DESKTOP_UA, "203.0.113.7")
    row = UserSession.objects.get(user=sales_user)
    attacker.post(f"{SESSIONS}{row.pk}/end/")
    attacker.post(SESSIONS + "end-others/")
    assert victim.get("/").status_code == 200
    assert Session.objects.filter(session_key=row.session_key).exists()


def test_the_sessions_page_needs_a_signed_in_user(anon_client):
    response = anon_client.get(SESSIONS)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert anon_client.post(SESSIONS + "end-others/").status_code == 302
