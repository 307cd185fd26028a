"""Tenant lifecycle: create, provision (clone the template schema), suspend, reactivate.

Provisioning does not grow with the number of migrations: the template schema `TENANT_BASE_SCHEMA`
is kept migrated, and a new tenant's schema is a copy of it (django-tenants' clone_schema), after
which its migrations are only recorded as applied.
"""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from django.utils.translation import gettext as _
from django_tenants.utils import schema_context, schema_exists

from crm.audit.services import audit_record

from .models import Domain, Tenant

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


def schema_name_for_slug(slug: str) -> str:
    # Slugs never contain "_", so mapping "-" to "_" cannot make two slugs share a schema.
    return slug.replace("-", "_")


def validate_slug(slug: str) -> None:
    if not SLUG_RE.match(slug or ""):
        raise ValidationError(
            {
                "slug": _(
                    "Use 1-40 lowercase letters, digits and hyphens, "
                    "starting and ending with a letter or digit."
                )
            }
        )
    if slug in settings.RESERVED_TENANT_SLUGS or schema_name_for_slug(slug) in settings.RESERVED_TENANT_SLUGS:
        raise ValidationError(
            {"slug": _("“%(slug)s” is reserved. Please choose another name.") % {"slug": slug}}
        )
    if (
        Tenant.objects.filter(slug=slug).exists()
        or Tenant.objects.filter(schema_name=schema_name_for_slug(slug)).exists()
    ):
        raise ValidationError({"slug": _("A company with this address already exists.")})


def ensure_public_tenant() -> Tenant:
    """The public schema's own row and the bare base domain, which route to the platform site."""
    tenant, _created = Tenant.objects.get_or_create(
        schema_name="public",
        defaults={"name": "Platform", "slug": "public", "status": Tenant.Status.ACTIVE},
    )
    Domain.objects.get_or_create(domain=settings.BASE_DOMAIN, defaults={"tenant": tenant, "is_primary": True})
    return tenant


def template_needs_migrating() -> bool:
    base = settings.TENANT_BASE_SCHEMA
    if not schema_exists(base):
        return True
    with schema_context(base):
        executor = MigrationExecutor(connection)
        return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def ensure_template_schema(*, verbosity: int = 0) -> None:
    """Create and migrate the template schema new tenants are cloned from; a no-op when current."""
    base = settings.TENANT_BASE_SCHEMA
    if not template_needs_migrating():
        return
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{base}"')
    call_command("migrate_schemas", schema_name=base, tenant=True, interactive=False, verbosity=verbosity)
    connection.set_schema_to_public()


@transaction.atomic
def tenant_create(
    *,
    actor=None,
    name: str,
    slug: str,
    admin_email: str,
    time_zone: str = "Asia/Shanghai",
    currency: str = "CNY",
    default_language: str = "zh-hans",
) -> Tenant:
    """Record a new tenant in the provisioning state; `tenant_provision` builds its schema."""
    slug = (slug or "").strip().lower()
    validate_slug(slug)
    tenant = Tenant(
        name=name.strip(),
        slug=slug,
        schema_name=schema_name_for_slug(slug),
        admin_email=admin_email.strip().lower(),
        time_zone=time_zone,
        currency=currency,
        default_language=default_language,
        status=Tenant.Status.PROVISIONING,
        provisioning_message=_("Waiting for a worker"),
    )
    tenant.full_clean()
    tenant.save()
    Domain.objects.create(domain=tenant.primary_domain, tenant=tenant, is_primary=True)
    if actor is not None:
        audit_record(actor=actor, action="tenant.created", target=tenant, changes={"slug": slug})
    return tenant


def _set_progress(tenant: Tenant, percent: int, message: str) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(provisioning_progress=percent, provisioning_message=message)


def tenant_provision(*, tenant_id: int, admin_password: str | None = None) -> Tenant:
    """Build the tenant's schema and first admin; idempotent, so a re-run after a crash finishes the job.

    Without a password the first admin is sent an invitation email to choose one.
    """
    from crm.accounts.models import Role, User

    connection.set_schema_to_public()
    tenant = Tenant.objects.get(pk=tenant_id)
    if tenant.status in (Tenant.Status.ACTIVE, Tenant.Status.SUSPENDED):
        return tenant
    try:
        _set_progress(tenant, 10, _("Preparing the template"))
        ensure_template_schema()
        _set_progress(tenant, 30, _("Creating the database schema"))
        if not schema_exists(tenant.schema_name):
            tenant.create_schema(check_if_exists=True, verbosity=0)
        connection.set_schema_to_public()
        _set_progress(tenant, 80, _("Creating the first administrator"))
        invite_needed = False
        if tenant.admin_email:
            with schema_context(tenant.schema_name):
                if not User.objects.filter(email__iexact=tenant.admin_email).exists():
                    User.objects.create_user(
                        email=tenant.admin_email,
                        password=admin_password,
                        role=Role.ADMIN,
                        language=tenant.default_language,
                    )
                    invite_needed = admin_password is None
        Tenant.objects.filter(pk=tenant.pk).update(
            status=Tenant.Status.ACTIVE, provisioning_progress=100, provisioning_message=_("Ready")
        )
        tenant.refresh_from_db()
        if invite_needed:
            from crm.accounts.services import send_first_admin_welcome

            with schema_context(tenant.schema_name):
                send_first_admin_welcome(tenant=tenant)
        return tenant
    except Exception as exc:
        connection.set_schema_to_public()
        Tenant.objects.filter(pk=tenant.pk).update(
            status=Tenant.Status.FAILED, provisioning_message=str(exc)[:300]
        )
        raise


@transaction.atomic
def tenant_suspend(*, actor, tenant: Tenant) -> Tenant:
    if tenant.schema_name == "public":
        raise ValidationError(_("The platform itself cannot be suspended."))
    if tenant.status != Tenant.Status.SUSPENDED:
        tenant.status = Tenant.Status.SUSPENDED
        tenant.suspended_at = timezone.now()
        tenant.save(update_fields=["status", "suspended_at", "updated_at"])
        audit_record(actor=actor, action="tenant.suspended", target=tenant)
    return tenant


@transaction.atomic
def tenant_reactivate(*, actor, tenant: Tenant) -> Tenant:
    if tenant.status == Tenant.Status.SUSPENDED:
        tenant.status = Tenant.Status.ACTIVE
        tenant.suspended_at = None
        tenant.save(update_fields=["status", "suspended_at", "updated_at"])
        audit_record(actor=actor, action="tenant.reactivated", target=tenant)
    return tenant
