"""Two-factor sign-in: enrolment from the profile, the code step, recovery codes, the tenant's
"require for admins" setting, platform admins (always required), disabling, throttling."""

import re
import time

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from crm.accounts import services
from crm.accounts.models import User
from crm.audit.models import AuditEvent
from tests.conftest import PASSWORD, PLATFORM_ADMIN_EMAIL
from tests.crm.platform_fixtures import english_ui  # noqa: F401

pytestmark = pytest.mark.usefixtures("english_ui")

LOGIN = "/accounts/login/"
CODE = "/accounts/login/code/"
SETUP = "/accounts/login/two-factor-setup/"
RECOVERY = "/accounts/recovery-codes/"
TWO_FACTOR = "/accounts/profile/two-factor/"


def code_for(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """The code an authenticator app would show now (or `steps_ahead` 30-second steps later)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def allow_code_reuse(device: TOTPDevice) -> None:
    """A code is good once per 30-second step; tests that sign in again need the next step's code."""
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def enrol(user: User) -> tuple[TOTPDevice, list[str]]:
    device = services.two_factor_start_enrolment(user=user)
    codes = services.two_factor_confirm_enrolment(actor=user, user=user, code=code_for(device))
    device.refresh_from_db()
    allow_code_reuse(device)
    return device, codes


def tenant_client() -> Client:
    return Client(HTTP_HOST="alpha.testserver.local")


# --- Enrolment from the profile -------------------------------------------------------------------


def test_enrol_from_the_profile_shows_a_local_qr_code_and_the_key_then_recovery_codes_once(
    sales_client, sales_user
):
    page = sales_client.get(TWO_FACTOR)
    assert page.status_code == 200 and 'data-testid="two-factor-enable"' in page.content.decode()
    page = sales_client.get(TWO_FACTOR + "enable/")
    assert page["Cache-Control"] == "no-store"  # it shows the secret key
    html = page.content.decode()
    assert "<svg" in html and "<path" in html  # drawn here, no image from another site
    svg = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    assert "http" not in svg.replace("http://www.w3.org", "")
    assert sales_user.email not in svg and "@" not in svg  # only path data: nothing to escape
    device = TOTPDevice.objects.get(user=sales_user, confirmed=False)
    secret = re.search(r'data-secret="([A-Z2-7]+)"', html).group(1)
    assert secret and device.bin_key == __import__("base64").b32decode(secret)

    wrong = sales_client.post(
        TWO_FACTOR + "enable/", {"code": "000000" if code_for(device) != "000000" else "1"}
    )
    assert wrong.status_code == 200 and "code" in wrong.context["form"].errors
    assert not services.two_factor_enabled(user=sales_user)

    response = sales_client.post(TWO_FACTOR + "enable/", {"code": code_for(device)})
    assert response.status_code == 302 and response["Location"] == RECOVERY
    codes_page = sales_client.get(RECOVERY)
    shown = re.findall(r"<li class=\"col\"><code>([a-z2-7]{8})</code>", codes_page.content.decode())
    assert len(shown) == settings.TWO_FACTOR_RECOVERY_CODES
    assert codes_page["Cache-Control"] == "no-store"
    assert sorted(shown) == sorted(
        StaticToken.objects.filter(device__user=sales_user).values_list("token", flat=True)
    )
    # Shown once only.
    assert sales_client.get(RECOVERY).status_code == 302
    assert services.two_factor_enabled(user=sales_user)
    assert AuditEvent.objects.filter(action="user.two_factor_enabled", target_id=str(sales_user.pk)).exists()


def test_a_user_without_two_factor_signs_in_with_the_password_alone(admin_user):
    client = tenant_client()
    response = client.post(LOGIN, {"username": admin_user.email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/" and signed_in(client)


# --- The code step --------------------------------------------------------------------------------


def test_with_two_factor_the_password_alone_does_not_sign_in_and_a_code_does(manager_user):
    device, _codes = enrol(manager_user)
    client = tenant_client()
    response = client.post(
        LOGIN + "?next=/customers/", {"username": manager_user.email, "password": PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == CODE
    assert not signed_in(client)
    assert client.get("/").status_code == 302  # still signed out
    page = client.get(CODE)
    assert page.status_code == 200 and 'data-testid="two-factor-verify"' in page.content.decode()

    response = client.post(CODE, {"code": code_for(device)})
    assert response.status_code == 302 and response["Location"] == "/customers/"
    assert signed_in(client) and client.session.get("otp_device_id") == device.persistent_id
    assert client.get("/").status_code == 200


def test_the_code_step_refuses_an_off_site_next_address(manager_user):
    device, _codes = enrol(manager_user)
    client = tenant_client()
    client.post(LOGIN + "?next=https://evil.example/", {"username": manager_user.email, "password": PASSWORD})
    response = client.post(CODE, {"code": code_for(device)})
    assert response.status_code == 302 and response["Location"] == "/"


def test_a_recovery_code_signs_in_once_and_its_use_is_audited(manager_user):
    _device, codes = enrol(manager_user)
    client = tenant_client()
    client.post(LOGIN, {"username": manager_user.email, "password": PASSWORD})
    response = client.post(CODE, {"code": codes[0].upper()[:4] + "-" + codes[0][4:]})
    assert response.status_code == 302 and signed_in(client)
    event = AuditEvent.objects.get(
        action="user.two_factor_recovery_code_used", target_id=str(manager_user.pk)
    )
    assert event.changes == {"recovery_codes_left": settings.TWO_FACTOR_RECOVERY_CODES - 1}

    again = tenant_client()
    again.post(LOGIN, {"username": manager_user.email, "password": PASSWORD})
    response = again.post(CODE, {"code": codes[0]})
    assert response.status_code == 200 and not signed_in(again)
    assert "code" in response.context["form"].errors


def test_wrong_codes_end_the_step_and_count_towards_the_lockout(manager_user):
    device, _codes = enrol(manager_user)
    right = code_for(device)
    wrong = "123456" if right != "123456" else "654321"
    client = tenant_client()
    client.post(LOGIN, {"username": manager_user.email, "password": PASSWORD})
    for attempt in range(settings.TWO_FACTOR_MAX_CODE_FAILURES):
        TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0)  # skip the waiting
        response = client.post(CODE, {"code": wrong})
        assert not signed_in(client), attempt
    # After the last wrong code the step is over (or axes locks the account): no code helps now.
    assert response.status_code in (302, 429)
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0)
    response = client.post(CODE, {"code": right})
    assert not signed_in(client)
    # The wrong codes counted as failed sign-ins for this address: the right password is locked out too.
    fresh = tenant_client()
    response = fresh.post(LOGIN, {"username": manager_user.email.upper(), "password": PASSWORD})
    assert response.status_code == 429 and not signed_in(fresh)


def test_django_otp_throttling_slows_repeated_guesses(manager_user):
    device, _codes = enrol(manager_user)
    client = tenant_client()
    client.post(LOGIN, {"username": manager_user.email, "password": PASSWORD})
    right = code_for(device)
    client.post(CODE, {"code": "123456" if right != "123456" else "654321"})
    # Straight after a wrong code the device refuses even the right one for a moment.
    response = client.post(CODE, {"code": right})
    assert response.status_code == 200 and not signed_in(client)


def test_the_pending_step_expires(manager_user):
    device, _codes = enrol(manager_user)
    client = tenant_client()
    client.post(LOGIN, {"username": manager_user.email, "password": PASSWORD})
    session = client.session
    pending = session["_crm_two_factor_pending"]
    pending["at"] -= settings.TWO_FACTOR_PENDING_SECONDS + 1
    session["_crm_two_factor_pending"] = pending
    session.save()
    response = client.post(CODE, {"code": code_for(device)})
    assert response.status_code == 302 and response["Location"] == LOGIN and not signed_in(client)


def test_the_code_step_without_a_password_step_goes_back_to_sign_in(manager_user):
    client = tenant_client()
    assert client.get(CODE)["Location"] == LOGIN
    assert client.post(CODE, {"code": "123456"})["Location"] == LOGIN
    assert client.get(SETUP)["Location"] == LOGIN


# --- Disabling, new recovery codes ----------------------------------------------------------------


def test_turning_off_needs_a_current_code(sales_client, sales_user):
    device, _codes = enrol(sales_user)
    right = code_for(device)
    response = sales_client.post(
        TWO_FACTOR + "disable/", {"disable-code": "000000" if right != "000000" else "1"}
    )
    assert response.status_code == 302 and services.two_factor_enabled(user=sales_user)
    response = sales_client.post(TWO_FACTOR + "disable/", {"disable-code": ""})
    assert services.two_factor_enabled(user=sales_user)
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0)
    response = sales_client.post(TWO_FACTOR + "disable/", {"disable-code": code_for(device)})
    assert response.status_code == 302 and not services.two_factor_enabled(user=sales_user)
    assert not StaticToken.objects.filter(device__user=sales_user).exists()
    assert AuditEvent.objects.filter(action="user.two_factor_disabled", target_id=str(sales_user.pk)).exists()


def test_new_recovery_codes_replace_the_old_ones(sales_client, sales_user):
    device, old_codes = enrol(sales_user)
    response = sales_client.post(TWO_FACTOR + "new-codes/", {"renew-code": code_for(device)})
    assert response.status_code == 302 and response["Location"] == RECOVERY
    new = set(StaticToken.objects.filter(device__user=sales_user).values_list("token", flat=True))
    assert len(new) == settings.TWO_FACTOR_RECOVERY_CODES and not new & set(old_codes)


# --- Required for a tenant's admins ---------------------------------------------------------------


def test_only_admins_reach_the_security_settings(admin_client, manager_client, sales_client):
    assert admin_client.get("/accounts/settings/security/").status_code == 200
    assert manager_client.get("/accounts/settings/security/").status_code == 403
    assert (
        sales_client.post("/accounts/settings/security/", {"require_two_factor_for_admins": "on"}).status_code
        == 403
    )
    assert not services.account_settings_get().require_two_factor_for_admins


def test_a_tenant_requiring_two_factor_makes_admins_enrol_at_next_sign_in(
    admin_client, admin_user, manager_user
):
    response = admin_client.post("/accounts/settings/security/", {"require_two_factor_for_admins": "on"})
    assert response.status_code == 302 and services.account_settings_get().require_two_factor_for_admins
    assert AuditEvent.objects.filter(action="settings.two_factor_requirement_changed").exists()

    # A manager is not affected ...
    manager = tenant_client()
    assert manager.post(LOGIN, {"username": manager_user.email, "password": PASSWORD})["Location"] == "/"
    # ... an admin must set it up before getting in.
    client = tenant_client()
    response = client.post(LOGIN, {"username": admin_user.email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == SETUP and not signed_in(client)
    assert client.get(CODE)["Location"] == SETUP
    page = client.get(SETUP)
    assert page.status_code == 200 and 'data-testid="two-factor-required"' in page.content.decode()
    assert client.get("/").status_code == 302
    device = TOTPDevice.objects.get(user=admin_user, confirmed=False)
    response = client.post(SETUP, {"code": code_for(device)})
    assert response.status_code == 302 and response["Location"] == RECOVERY and signed_in(client)
    assert client.get(RECOVERY).status_code == 200
    assert services.two_factor_enabled(user=admin_user)
    # Required: it cannot be turned off.
    client.post(TWO_FACTOR + "disable/", {"disable-code": code_for(device, steps_ahead=1)})
    assert services.two_factor_enabled(user=admin_user)


# --- Platform admins (console) --------------------------------------------------------------------


def test_platform_admins_always_need_two_factor(public_client, platform_admin):
    connection.set_schema_to_public()
    response = public_client.post(LOGIN, {"username": PLATFORM_ADMIN_EMAIL, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == SETUP
    assert "_auth_user_id" not in public_client.session
    assert public_client.get("/console/").status_code == 302
    assert public_client.get(SETUP).status_code == 200
    device = TOTPDevice.objects.get(user=platform_admin, confirmed=False)
    response = public_client.post(SETUP, {"code": code_for(device)})
    assert response.status_code == 302 and response["Location"] == RECOVERY
    continue_to = re.search(
        r'href="([^"]+)" data-testid="recovery-continue"', public_client.get(RECOVERY).content.decode()
    )
    assert continue_to.group(1) == "/console/"
    assert public_client.get("/console/").status_code == 200

    # Next time: password, then a code.
    allow_code_reuse(device)
    again = Client(HTTP_HOST=settings.BASE_DOMAIN)
    response = again.post(LOGIN, {"username": PLATFORM_ADMIN_EMAIL, "password": PASSWORD})
    assert response["Location"] == CODE and "_auth_user_id" not in again.session
    response = again.post(CODE, {"code": code_for(device)})
    assert response.status_code == 302 and response["Location"] == "/console/"


def test_the_django_admin_sign_in_form_is_not_a_way_around_two_factor(manager_user):
    enrol(manager_user)
    User.objects.filter(pk=manager_user.pk).update(is_staff=True)
    client = tenant_client()
    response = client.get("/django-admin/login/?next=/django-admin/")
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    response = client.post(
        "/django-admin/login/?next=/django-admin/", {"username": manager_user.email, "password": PASSWORD}
    )
    assert not signed_in(client)
