"""Tenant lifecycle services: validation, provisioning by cloning, failure and retry, suspension."""

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import ProgrammingError, connection
from django_tenants.utils import schema_context, schema_exists

from crm.accounts.models import Role, User
from crm.audit.models import AuditEvent
from crm.tenancy import services
from crm.tenancy.models import Domain, Tenant


@pytest.fixture
def public(db):
    connection.set_schema_to_public()
    yield
    connection.set_schema_to_public()


def _counts() -> tuple[int, int, int]:
    return Tenant.objects.count(), Domain.objects.count(), AuditEvent.objects.count()


@pytest.mark.parametrize(
    "slug, message",
    [
        ("Acme Co", "lowercase letters"),
        ("acme_co", "lowercase letters"),
        ("-acme", "lowercase letters"),
        ("acme-", "lowercase letters"),
        ("", "lowercase letters"),
        ("a" * 41, "lowercase letters"),
        ("public", "reserved"),
        ("www", "reserved"),
        ("admin", "reserved"),
        ("api", "reserved"),
        ("static", "reserved"),
        ("alpha", "already exists"),
    ],
)
def test_bad_slugs_are_refused_with_a_field_message_and_nothing_written(
    public, platform_admin, slug, message
):
    before = _counts()
    with pytest.raises(ValidationError) as caught:
        services.tenant_open(actor=platform_admin, name="Acme", slug=slug, admin_email="boss@acme.test")
    assert message in caught.value.message_dict["slug"][0]
    assert _counts() == before


def test_a_slug_whose_schema_is_left_over_is_refused(public, platform_admin):
    with connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "left_over"')
    with pytest.raises(ValidationError):
        services.tenant_create(actor=platform_admin, name="Left", slug="left-over", admin_email="a@left.test")


def test_open_records_the_tenant_in_provisioning_and_enqueues_the_task_on_commit(
    public, platform_admin, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tenant = services.tenant_open(
            actor=platform_admin,
            name=" Acme Trading ",
            slug="acme-trading",
            admin_email="Boss@Acme.test",
            time_zone="Europe/Paris",
            currency="EUR",
            default_language="en",
        )
    assert len(callbacks) == 1
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.PROVISIONING
    assert (tenant.name, tenant.schema_name, tenant.admin_email) == (
        "Acme Trading",
        "acme_trading",
        "boss@acme.test",
    )
    assert tenant.domains.get().domain == "acme-trading.testserver.local"
    assert not schema_exists("acme_trading")  # the worker builds it
    assert AuditEvent.objects.filter(action="tenant.created", target_id=str(tenant.pk)).exists()


def test_provisioning_clones_the_template_and_creates_the_first_admin(public, platform_admin):
    tenant = services.tenant_create(
        actor=platform_admin,
        name="Gamma",
        slug="gamma-co",
        admin_email="boss@gamma.test",
        default_language="en",
    )
    tenant = services.tenant_provision(tenant_id=tenant.pk)
    assert tenant.status == Tenant.Status.ACTIVE and tenant.provisioning_progress == 100
    assert schema_exists("gamma_co")
    with schema_context("gamma_co"):
        admin = User.objects.get()
        assert (admin.email, admin.role, admin.has_usable_password()) == (
            "boss@gamma.test",
            Role.ADMIN,
            False,
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM django_migrations WHERE app = 'accounts'")
            assert cursor.fetchone()[0] >= 2
    # The template's migration records came along with the clone: nothing left to record.
    assert services.record_missing_migrations(schema_name="gamma_co") == 0
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["boss@gamma.test"]
    assert "http://gamma-co.testserver.local/accounts/password-reset/" in mail.outbox[0].body
    assert AuditEvent.objects.filter(action="tenant.provisioned", target_id=str(tenant.pk)).exists()
    # A second run (a redelivered task) changes nothing.
    assert services.tenant_provision(tenant_id=tenant.pk).status == Tenant.Status.ACTIVE
    assert len(mail.outbox) == 1


def test_missing_migration_records_are_inserted(public, tenant_a):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM alpha.django_migrations WHERE app = 'audit'")
        deleted = cursor.rowcount
    assert deleted >= 1
    assert services.record_missing_migrations(schema_name="alpha") == deleted
    assert services.record_missing_migrations(schema_name="alpha") == 0


def test_a_failed_provisioning_is_marked_with_its_error_and_can_be_retried(
    public, platform_admin, django_capture_on_commit_callbacks
):
    tenant = services.tenant_create(
        actor=platform_admin, name="Delta", slug="delta", admin_email="a@delta.test"
    )
    with connection.cursor() as cursor:  # a broken, empty schema in the way
        cursor.execute('CREATE SCHEMA "delta"')
    with pytest.raises(ProgrammingError):
        services.tenant_provision(tenant_id=tenant.pk)
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.FAILED
    assert "django_migrations" in tenant.provisioning_message
    assert AuditEvent.objects.filter(action="tenant.provisioning_failed", target_id=str(tenant.pk)).exists()

    with connection.cursor() as cursor:
        cursor.execute('DROP SCHEMA "delta"')
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.tenant_retry_provisioning(actor=platform_admin, tenant=tenant)
    assert len(callbacks) == 1
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.PROVISIONING and tenant.provisioning_progress == 0
    assert services.tenant_provision(tenant_id=tenant.pk).status == Tenant.Status.ACTIVE
    with pytest.raises(ValidationError):
        services.tenant_retry_provisioning(actor=platform_admin, tenant=tenant)


def test_suspend_and_reactivate_are_audited_and_keep_the_data(public, platform_admin, tenant_a):
    with schema_context("alpha"):
        users_before = User.objects.count()
    services.tenant_suspend(actor=platform_admin, tenant=tenant_a)
    tenant_a.refresh_from_db()
    assert tenant_a.status == Tenant.Status.SUSPENDED and tenant_a.suspended_at is not None
    services.tenant_reactivate(actor=platform_admin, tenant=tenant_a)
    tenant_a.refresh_from_db()
    assert tenant_a.status == Tenant.Status.ACTIVE and tenant_a.suspended_at is None
    actions = list(
        AuditEvent.objects.filter(target_type="tenancy.tenant", target_id=str(tenant_a.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions[-2:] == ["tenant.suspended", "tenant.reactivated"]
    with schema_context("alpha"):
        assert User.objects.count() == users_before


def test_the_public_tenant_cannot_be_suspended(public, platform_admin):
    with pytest.raises(ValidationError):
        services.tenant_suspend(actor=platform_admin, tenant=Tenant.objects.get(schema_name="public"))
