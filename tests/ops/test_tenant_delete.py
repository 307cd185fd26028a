"""Deleting a company from the platform console: the operator types its slug; it stops being served
at once, its users are signed out, a final backup is queued, and it can be brought back until the
purge (the backup and purge themselves: test_tenant_backup.py)."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.audit.models import AuditEvent
from crm.tenancy.models import Tenant
from tests.conftest import PASSWORD


def _tenant_b():
    connection.set_schema_to_public()
    return Tenant.objects.get(slug="beta")


@pytest.fixture
def platform_client(platform_client):
    platform_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"  # the public site defaults to Chinese
    return platform_client


def test_the_delete_page_asks_for_the_slug_and_a_wrong_one_changes_nothing(platform_client, tenant_b):
    url = f"/console/{tenant_b.pk}/delete/"
    page = platform_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="slug-to-type">beta<' in html and "30 days" in html
    response = platform_client.post(url, {"confirm_slug": "alpha"})
    assert response.status_code == 200
    assert "Type the company&#x27;s address name exactly as shown: beta" in response.content.decode()
    tenant = _tenant_b()
    assert tenant.status == Tenant.Status.ACTIVE and tenant.delete_after is None
    assert not AuditEvent.objects.filter(action="tenant.deleted").exists()


def test_deleting_stops_the_company_signs_everyone_out_and_can_be_cancelled(
    platform_client, tenant_b, django_capture_on_commit_callbacks
):
    host = f"beta.{settings.BASE_DOMAIN}"
    beta_user = Client(HTTP_HOST=host)
    assert (
        beta_user.post("/accounts/login/", {"username": "admin@beta.test", "password": PASSWORD}).status_code
        == 302
    )
    connection.set_schema_to_public()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = platform_client.post(f"/console/{tenant_b.pk}/delete/", {"confirm_slug": " Beta "})
    assert response.status_code == 302 and response["Location"] == f"/console/{tenant_b.pk}/"
    assert len(callbacks) == 1  # the final backup, sent to a worker once the delete commits
    tenant = _tenant_b()
    assert tenant.status == Tenant.Status.DELETED
    expected = timezone.now() + timedelta(days=settings.TENANT_DELETE_GRACE_DAYS)
    assert abs((tenant.delete_after - expected).total_seconds()) < 60
    event = AuditEvent.objects.get(action="tenant.deleted", target_id=str(tenant.pk))
    assert event.changes["status"] == {"old": "active", "new": "deleted"}
    with schema_context(tenant.schema_name):
        assert not Session.objects.exists()
    # Its site answers "deleted" to everyone, signed in or not.
    gone = beta_user.get("/")
    assert gone.status_code == 410 and 'data-testid="tenant-deleted"' in gone.content.decode()
    connection.set_schema_to_public()
    detail = platform_client.get(f"/console/{tenant.pk}/").content.decode()
    assert 'data-testid="cancel-deletion"' in detail and 'data-testid="purge-after"' in detail
    # The other company is untouched.
    assert Tenant.objects.get(slug="alpha").status == Tenant.Status.ACTIVE
    response = platform_client.post(f"/console/{tenant.pk}/reactivate/")
    assert response.status_code == 302
    tenant = _tenant_b()
    assert tenant.status == Tenant.Status.ACTIVE and tenant.delete_after is None
    assert AuditEvent.objects.filter(action="tenant.deletion_cancelled", target_id=str(tenant.pk)).exists()


@pytest.mark.parametrize("status", [Tenant.Status.PROVISIONING, Tenant.Status.DELETED])
def test_a_company_being_set_up_or_already_deleted_cannot_be_deleted(platform_client, tenant_b, status):
    Tenant.objects.filter(pk=tenant_b.pk).update(status=status)
    response = platform_client.post(f"/console/{tenant_b.pk}/delete/", {"confirm_slug": "beta"})
    assert response.status_code == 200
    assert "This company cannot be deleted now." in response.content.decode()
    assert _tenant_b().status == status
