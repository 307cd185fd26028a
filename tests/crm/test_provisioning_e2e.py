"""Provisioning end to end with a real Celery worker: console form -> task -> active tenant -> its
admin chooses a password through the emailed kind of link and signs in at the new host.

The data must be committed for the worker process to see it, so this test runs outside the usual
rolled-back transaction and removes what it created at the end (like the `committed_tenant` fixture).
"""

import time
import uuid
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context, schema_exists

from crm.accounts.models import Role, User
from crm.accounts.services import set_password_link
from crm.audit.models import AuditEvent
from crm.tenancy.models import Tenant
from tests.conftest import PLATFORM_ADMIN_EMAIL

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]

NEW_PASSWORD = "Harbour-lights-8826"


def _drop_tenant(slug: str) -> None:
    connection.set_schema_to_public()
    for tenant in Tenant.objects.filter(slug=slug):
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema_name}" CASCADE')
        AuditEvent.objects.filter(target_type="tenancy.tenant", target_id=str(tenant.pk)).delete()
        tenant.delete()


def _wait_until_active(client: Client, tenant_id: int, worker_log, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    html = ""
    while time.monotonic() < deadline:
        html = client.get(f"/console/{tenant_id}/progress/").content.decode()
        if 'data-status="active"' in html or 'data-status="failed"' in html:
            return html
        time.sleep(0.3)
    raise AssertionError(
        f"Provisioning did not finish in {timeout} s.\n{html}\n--- worker log ---\n{worker_log.read_text()}"
    )


def test_console_to_worker_to_active_tenant_to_admin_sign_in(celery_worker, django_db_blocker):
    slug = f"e2e-{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        try:
            connection.set_schema_to_public()
            console = Client(HTTP_HOST=settings.BASE_DOMAIN)
            console.force_login(User.objects.get(email=PLATFORM_ADMIN_EMAIL))
            response = console.post(
                "/console/new/",
                {
                    "name": "End To End 端到端",
                    "slug": slug,
                    "time_zone": "Asia/Shanghai",
                    "currency": "CNY",
                    "default_language": "en",
                    "admin_email": f"boss@{slug}.test",
                },
            )
            assert response.status_code == 302, response.content.decode()[:2000]
            tenant = Tenant.objects.get(slug=slug)
            assert response["Location"] == f"/console/{tenant.pk}/"

            html = _wait_until_active(console, tenant.pk, celery_worker["log"])
            assert 'data-status="active"' in html, html
            assert f'href="http://{slug}.testserver.local/"' in html
            tenant.refresh_from_db()
            assert tenant.provisioning_progress == 100 and schema_exists(tenant.schema_name)

            with schema_context(tenant.schema_name):
                admin = User.objects.get(email=f"boss@{slug}.test")
                assert admin.role == Role.ADMIN and not admin.has_usable_password()
                assert admin.language == ""  # not pinned: the company's language until they choose
                link = set_password_link(user=admin, tenant=tenant)
            connection.set_schema_to_public()

            site = Client(HTTP_HOST=f"{slug}.testserver.local")
            assert site.get("/").status_code == 302  # not signed in yet
            response = site.get(urlparse(link).path)
            assert response.status_code == 302  # Django hides the token behind a session redirect
            response = site.post(
                response["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
            )
            assert response.status_code == 302, response.content.decode()[:2000]
            response = site.post(
                "/accounts/login/", {"username": f"boss@{slug}.test", "password": NEW_PASSWORD}
            )
            assert response.status_code == 302 and "_auth_user_id" in site.session
            home = site.get("/")
            assert home.status_code == 200 and "End To End" in home.content.decode()

            # The platform's audit trail (public schema) has the whole story.
            connection.set_schema_to_public()
            actions = set(
                AuditEvent.objects.filter(target_type="tenancy.tenant", target_id=str(tenant.pk)).values_list(
                    "action", flat=True
                )
            )
            assert {"tenant.created", "tenant.provisioned"} <= actions
        finally:
            _drop_tenant(slug)
            connection.set_schema_to_public()


def test_console_create_form_offers_every_field(platform_client):
    # Also makes pytest-django set up the test database when this module runs on its own: it does so
    # only when a collected test uses `db`, and the committed test above deliberately does not.
    html = platform_client.get("/console/new/").content.decode()
    for field in ("name", "slug", "time_zone", "currency", "default_language", "admin_email"):
        assert f'name="{field}"' in html
