"""Provisioning is all or nothing: a failure after the schema was cloned (creating the first admin)
leaves no schema behind, marks the tenant failed with the error, and a retry builds it."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context, schema_exists

from crm.accounts.models import User
from crm.tenancy import services
from crm.tenancy.models import Tenant


@pytest.fixture
def public(db):
    connection.set_schema_to_public()
    yield
    connection.set_schema_to_public()


def test_a_failure_part_way_leaves_no_half_schema_and_a_retry_works(
    public, platform_admin, monkeypatch, django_capture_on_commit_callbacks
):
    tenant = services.tenant_create(
        actor=platform_admin, name="Epsilon", slug="epsilon", admin_email="a@eps.test"
    )
    manager_class = type(User.objects)
    real_create_user = manager_class.create_user

    def refuse(self, *args, **kwargs):
        assert schema_exists("epsilon"), "the schema is cloned before the admin is created"
        raise RuntimeError("mail of the first admin refused")

    monkeypatch.setattr(manager_class, "create_user", refuse)
    with pytest.raises(RuntimeError):
        services.tenant_provision(tenant_id=tenant.pk, admin_password="x-Long-pass-2026")
    connection.set_schema_to_public()
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.FAILED and "refused" in tenant.provisioning_message
    assert not schema_exists("epsilon")

    monkeypatch.setattr(manager_class, "create_user", real_create_user)
    with django_capture_on_commit_callbacks(execute=False):
        services.tenant_retry_provisioning(actor=platform_admin, tenant=tenant)
    assert services.tenant_provision(tenant_id=tenant.pk, admin_password="x-Long-pass-2026").status == (
        Tenant.Status.ACTIVE
    )
    with schema_context("epsilon"):
        assert list(User.objects.values_list("email", flat=True)) == ["a@eps.test"]
