"""Tenant lifecycle: create, provision (clone the template schema), suspend, reactivate.

Provisioning does not grow with the number of migrations: the template schema `TENANT_BASE_SCHEMA`
is kept migrated, and a new tenant's schema is a copy of it, rows included (`django_migrations`,
content types, permissions) -- see `cloning.py` for why the copy is not django-tenants' clone_schema
function. Any migration the copy does not list yet is then recorded with one INSERT, instead of
`migrate_schemas --fake`, which loads the whole migration machinery for each new tenant.
"""

import hashlib
import logging
import re
import zlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django_tenants.clone import CloneSchema
from django_tenants.utils import schema_context, schema_exists

from crm.audit.services import audit_record
from crm.jobs.runner import JobRun, run_record
from crm.timezones import validate_time_zone

from . import cloning
from .models import Domain, Tenant

logger = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")

# Progress messages are stored untranslated (English msgids) and translated when the page renders,
# so the worker's language does not decide what the operator reads.
MSG_WAITING = gettext_noop("Waiting for a worker")
MSG_TEMPLATE = gettext_noop("Preparing the template")
MSG_SCHEMA = gettext_noop("Creating the database schema and the first administrator")
MSG_READY = gettext_noop("Ready")
MSG_BUSY = gettext_noop("Another worker is provisioning this company")


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
        or Domain.objects.filter(domain=f"{slug}.{settings.BASE_DOMAIN}").exists()
        or schema_exists(schema_name_for_slug(slug))
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


def tenant_settings_apply(tenant: Tenant, **values: str) -> None:
    """Set a company's settings on `tenant` (unsaved) and check them: the one place for their rules,
    shared by provisioning (tenant_create), the console's edit (crm.tenancy.editing.tenant_update) and
    the company's own profile page (crm.tenancy.profile.tenant_update_profile).
    `values` holds any of name, admin_email, time_zone, currency, default_language; every problem is
    raised at once as a ValidationError by field."""
    if "name" in values:
        tenant.name = (values["name"] or "").strip()
    if "admin_email" in values:
        tenant.admin_email = (values["admin_email"] or "").strip().lower()
    for field in ("time_zone", "currency", "default_language"):
        if field in values:
            setattr(tenant, field, values[field] or "")
    errors: dict[str, list[str]] = {}
    try:
        validate_time_zone(tenant.time_zone)
    except ValidationError as error:
        errors["time_zone"] = error.messages
    try:
        tenant.full_clean(exclude=list(errors))
    except ValidationError as error:
        for field, messages in error.message_dict.items():
            errors.setdefault(field, messages)
    if errors:
        raise ValidationError(errors)


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
        slug=slug,
        schema_name=schema_name_for_slug(slug),
        status=Tenant.Status.PROVISIONING,
        provisioning_message=MSG_WAITING,
    )
    tenant_settings_apply(
        tenant,
        name=name,
        admin_email=admin_email,
        time_zone=time_zone,
        currency=currency,
        default_language=default_language,
    )
    tenant.save()
    Domain.objects.create(domain=tenant.primary_domain, tenant=tenant, is_primary=True)
    if actor is not None:
        audit_record(
            actor=actor,
            action="tenant.created",
            target=tenant,
            changes={"slug": slug, "admin_email": tenant.admin_email},
        )
    return tenant


def tenant_enqueue_provisioning(*, tenant: Tenant) -> None:
    """Send the provisioning task once the tenant row is committed; it runs in the public schema."""
    from .tasks import provision_tenant_task

    tenant_id = tenant.pk

    def send() -> None:
        with schema_context("public"):
            provision_tenant_task.delay(tenant_id)

    transaction.on_commit(send)


@transaction.atomic
def tenant_open(
    *,
    actor,
    name: str,
    slug: str,
    admin_email: str,
    time_zone: str = "Asia/Shanghai",
    currency: str = "CNY",
    default_language: str = "zh-hans",
) -> Tenant:
    """The platform console's "create a company": the row now, the schema in a Celery task."""
    tenant = tenant_create(
        actor=actor,
        name=name,
        slug=slug,
        admin_email=admin_email,
        time_zone=time_zone,
        currency=currency,
        default_language=default_language,
    )
    tenant_enqueue_provisioning(tenant=tenant)
    return tenant


@transaction.atomic
def tenant_retry_provisioning(*, actor, tenant: Tenant) -> Tenant:
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if tenant.status != Tenant.Status.FAILED:
        raise ValidationError(_("Only a company whose set-up failed can be retried."))
    previous_error = tenant.provisioning_message
    tenant.status = Tenant.Status.PROVISIONING
    tenant.provisioning_progress = 0
    tenant.provisioning_message = MSG_WAITING
    tenant.save(update_fields=["status", "provisioning_progress", "provisioning_message", "updated_at"])
    audit_record(
        actor=actor, action="tenant.provisioning_retried", target=tenant, changes={"error": previous_error}
    )
    tenant_enqueue_provisioning(tenant=tenant)
    return tenant


def _clone_function_digest() -> str:
    from django_tenants.clone import CLONE_SCHEMA_FUNCTION

    return hashlib.sha1(CLONE_SCHEMA_FUNCTION.encode()).hexdigest()[:16]


def _ensure_clone_function() -> None:
    """Install django-tenants' clone_schema SQL function once (again only when its text changes).

    django-tenants re-creates it (dropping and re-creating its types) before every clone, which costs
    time and collides when two workers clone at once. The installed version is kept in a comment.
    """
    digest = _clone_function_digest()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p
            JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'public' AND p.proname = 'clone_schema'
            """
        )
        if any(row[0] == f"crm:{digest}" for row in cursor.fetchall()):
            return
        CloneSchema()._create_clone_schema_function()
        cursor.execute(
            f"COMMENT ON FUNCTION public.clone_schema(text, text, public.cloneparms[]) IS 'crm:{digest}'"
        )


def _clone_template(schema_name: str) -> None:
    """Copy the template schema (tables, sequences, rows) into a new schema.

    The fast path (`cloning.clone_schema_fast`) copies the template with a short DDL script and does
    not slow down as tenants accumulate. If the template ever holds objects that path does not copy,
    django-tenants' clone function does the work instead; those clones run one at a time (an
    advisory lock), because that function creates and drops helper types in the public schema.
    """
    connection.set_schema_to_public()
    base = settings.TENANT_BASE_SCHEMA
    unsupported = cloning.unsupported_objects(base)
    if not unsupported:
        cloning.clone_schema_fast(source=base, target=schema_name)
    else:
        logger.info("Cloning %s with django-tenants' function because of: %s", base, ", ".join(unsupported))
        _ensure_clone_function()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CLONE_LOCK_KEY])
            cursor.execute("SELECT public.clone_schema(%s, %s, 'DATA')", [base, schema_name])
    connection.set_schema_to_public()


def tenant_spares_prepare(*, count: int = 1) -> int:
    """Keep a ready copy of the template so the next provisioning only renames it (see cloning.py).

    Runs after a provisioning, in the worker, once the new tenant is already active; a failure here
    is logged and never affects a tenant."""
    try:
        connection.set_schema_to_public()
        ensure_template_schema()
        return cloning.spares_prepare(source=settings.TENANT_BASE_SCHEMA, count=count)
    except Exception:
        logger.exception("Could not prepare a spare tenant schema.")
        return 0
    finally:
        connection.set_schema_to_public()


def record_missing_migrations(*, schema_name: str) -> int:
    """Mark as applied, in the tenant's `django_migrations`, every migration on disk it does not list.

    The clone copied the template's records, so this normally inserts nothing; it keeps a schema
    cloned from a slightly older template consistent. Returns the number of rows inserted.
    """
    on_disk = sorted(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
    quoted = connection.ops.quote_name(schema_name)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT app, name FROM {quoted}.django_migrations")
        applied = set(cursor.fetchall())
        missing = [key for key in on_disk if key not in applied]
        if missing:
            now = timezone.now()
            cursor.executemany(
                f"INSERT INTO {quoted}.django_migrations (app, name, applied) VALUES (%s, %s, %s)",
                [(app, name, now) for app, name in missing],
            )
    return len(missing)


PROVISION_LOCK_CLASS = zlib.crc32(b"crm.tenancy.provision") & 0x7FFFFFFF
CLONE_LOCK_KEY = zlib.crc32(b"crm.tenancy.clone")


def _lock_key(tenant_id: int) -> tuple[int, int]:
    return PROVISION_LOCK_CLASS, int(tenant_id)


def tenant_provision(*, tenant_id: int, admin_password: str | None = None) -> Tenant:
    """Build the tenant's schema and first admin; idempotent, so a re-run after a crash finishes the job.

    Runs as a job (crm.jobs.runner) whose state is the Tenant row (`ProvisioningRecord`). Without a
    password the first admin is emailed a link to choose one. A second worker handed the same
    tenant at the same time leaves it to the first (a PostgreSQL advisory lock per tenant). A
    failure marks the tenant "failed" with the error's first line (the console's operators read it)
    and is raised again.
    """
    run_record(
        ProvisioningRecord(tenant_id),
        lambda run: _provision(run, admin_password=admin_password),
        failure_message=_error_line,
    )
    connection.set_schema_to_public()
    return Tenant.objects.get(pk=tenant_id)


def _error_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:300]


class ProvisioningRecord:
    """A tenant's provisioning as a job for crm.jobs.runner: its state is the Tenant row in the public
    schema (status, provisioning_progress, provisioning_message), not a BackgroundJob (the body reads
    the tenant as `run.record.tenant`)."""

    def __init__(self, tenant_id: int):
        self.tenant_id = tenant_id
        self.tenant: Tenant | None = None
        self.locked = False
        self.label = f"provisioning of tenant {tenant_id}"

    def start(self) -> bool:
        """False when the tenant is already built (a redelivered message) or another worker holds it."""
        connection.set_schema_to_public()
        self.tenant = Tenant.objects.get(pk=self.tenant_id)
        self.label = f"provisioning of tenant {self.tenant.slug}"
        if self.tenant.status in (Tenant.Status.ACTIVE, Tenant.Status.SUSPENDED):
            return False
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", _lock_key(self.tenant_id))
            self.locked = cursor.fetchone()[0]
        if not self.locked:
            logger.info("Tenant %s is being provisioned by another worker.", self.tenant.slug)
            return False
        self.tenant.refresh_from_db()
        return self.tenant.status not in (Tenant.Status.ACTIVE, Tenant.Status.SUSPENDED)

    def language(self) -> None:
        return None  # progress messages are stored untranslated (see MSG_*)

    def progress(self, percent: int, message: str) -> None:
        Tenant.objects.filter(pk=self.tenant_id).update(
            provisioning_progress=percent, provisioning_message=message, updated_at=timezone.now()
        )

    def succeed(self, *, result: dict, message: str, params: dict | None) -> None:
        Tenant.objects.filter(pk=self.tenant_id).update(
            status=Tenant.Status.ACTIVE,
            provisioning_progress=100,
            provisioning_message=message or MSG_READY,
            updated_at=timezone.now(),
        )

    def succeed_unless_finished(self) -> None:
        Tenant.objects.filter(pk=self.tenant_id, status=Tenant.Status.PROVISIONING).update(
            status=Tenant.Status.ACTIVE,
            provisioning_progress=100,
            provisioning_message=MSG_READY,
            updated_at=timezone.now(),
        )

    def fail(self, *, message: str, params: dict | None) -> None:
        connection.set_schema_to_public()
        Tenant.objects.filter(pk=self.tenant_id).update(
            status=Tenant.Status.FAILED, provisioning_message=message, updated_at=timezone.now()
        )
        audit_record(
            actor=None, action="tenant.provisioning_failed", target=self.tenant, changes={"error": message}
        )

    def close(self) -> None:
        if self.locked:
            _release_lock(self.tenant_id)


def _release_lock(tenant_id: int) -> None:
    try:
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", _lock_key(tenant_id))
    except Exception:  # a dead connection releases its session locks by itself
        logger.warning("Could not release the provisioning lock of tenant %s.", tenant_id, exc_info=True)


def _provision(run: JobRun, *, admin_password: str | None) -> None:
    from crm.accounts.models import Role, User

    tenant = run.record.tenant
    run.progress(10, MSG_TEMPLATE)
    ensure_template_schema()
    run.progress(30, MSG_SCHEMA)
    invite_needed = False
    # One transaction for the schema, its migration records and the first admin: a crash at any
    # line leaves no half-built schema behind, and a re-run starts from a clean slate.
    with transaction.atomic():
        if not schema_exists(tenant.schema_name) and not cloning.spare_take(
            source=settings.TENANT_BASE_SCHEMA, target=tenant.schema_name
        ):
            _clone_template(tenant.schema_name)
        record_missing_migrations(schema_name=tenant.schema_name)
        if tenant.admin_email:
            with schema_context(tenant.schema_name):
                if not User.objects.filter(email__iexact=tenant.admin_email).exists():
                    User.objects.create_user(
                        email=tenant.admin_email,
                        password=admin_password,
                        role=Role.ADMIN,
                        # No saved choice: they see the company's language until they pick one.
                    )
                    invite_needed = admin_password is None
    run.succeed(message=MSG_READY)
    tenant.refresh_from_db()
    audit_record(actor=None, action="tenant.provisioned", target=tenant)
    if invite_needed:
        _send_welcome(tenant=tenant)


def _send_welcome(*, tenant: Tenant) -> None:
    """The workspace is ready whether or not the mail server answers; a failure is logged and audited."""
    from crm.accounts.services import send_first_admin_welcome

    try:
        with schema_context(tenant.schema_name):
            send_first_admin_welcome(tenant=tenant)
    except Exception as exc:
        logger.exception("Could not email the first admin of tenant %s.", tenant.slug)
        audit_record(
            actor=None, action="tenant.welcome_email_failed", target=tenant, changes={"error": str(exc)[:300]}
        )


@transaction.atomic
def tenant_suspend(*, actor, tenant: Tenant) -> Tenant:
    if tenant.schema_name == "public":
        raise ValidationError(_("The platform itself cannot be suspended."))
    if tenant.status != Tenant.Status.ACTIVE and tenant.status != Tenant.Status.SUSPENDED:
        raise ValidationError(_("Only an active company can be suspended."))
    if tenant.status != Tenant.Status.SUSPENDED:
        from crm.accounts.services import end_all_sessions_in_schema

        tenant.status = Tenant.Status.SUSPENDED
        tenant.suspended_at = timezone.now()
        tenant.save(update_fields=["status", "suspended_at", "updated_at"])
        # Its users' sessions live in its schema: end them all now, so nobody is still signed in when
        # the company is reactivated.
        with schema_context(tenant.schema_name):
            ended = end_all_sessions_in_schema()
        audit_record(actor=actor, action="tenant.suspended", target=tenant, changes={"sessions_ended": ended})
    return tenant


@transaction.atomic
def tenant_reactivate(*, actor, tenant: Tenant) -> Tenant:
    """Suspended -> active; deleted (before its purge) -> active again, which cancels the deletion."""
    if tenant.status == Tenant.Status.DELETED and not schema_exists(tenant.schema_name):
        raise ValidationError(_("This company's data has been purged; restore its final backup instead."))
    if tenant.status in (Tenant.Status.SUSPENDED, Tenant.Status.DELETED):
        previous = tenant.status
        tenant.status = Tenant.Status.ACTIVE
        tenant.suspended_at = None
        tenant.delete_after = None
        tenant.save(update_fields=["status", "suspended_at", "delete_after", "updated_at"])
        audit_record(
            actor=actor,
            action="tenant.deletion_cancelled" if previous == Tenant.Status.DELETED else "tenant.reactivated",
            target=tenant,
        )
    return tenant
