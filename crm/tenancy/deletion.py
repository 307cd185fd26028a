"""Deleting a company from the console: typed slug, a final backup, a grace period, then the purge.

1. `tenant_delete` (the console, the operator types the company's slug): the company stops being
   served at once (its users are signed out), `delete_after` is set GRACE days ahead, and a worker
   writes the final backup (`tenant_final_backup_task`).
2. Until `delete_after`, "Cancel deletion" (`crm.tenancy.services.tenant_reactivate`) brings it back
   unchanged.
3. Beat's `purge_deleted_all_tenants` sends `tenant_purge_task` for each company past its date: the
   schema and files are dropped, the rows removed; the final backup stays in BACKUP_ROOT (restore it
   with `manage.py tenant_restore`). No purge without a final backup on disk.
"""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_tenants.utils import schema_context, schema_exists

from crm.audit.services import audit_record

from .backup import tenant_backup
from .models import Domain, Tenant

logger = logging.getLogger(__name__)
DELETABLE = (Tenant.Status.ACTIVE, Tenant.Status.SUSPENDED, Tenant.Status.FAILED)


@transaction.atomic
def tenant_delete(*, actor, tenant: Tenant, confirm_slug: str) -> Tenant:
    if tenant.schema_name == "public":
        raise ValidationError(_("The platform itself cannot be deleted."))
    if (confirm_slug or "").strip().lower() != tenant.slug:
        raise ValidationError(
            {
                "confirm_slug": _("Type the company's address name exactly as shown: %(slug)s")
                % {"slug": tenant.slug}
            }
        )
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if tenant.status not in DELETABLE:
        raise ValidationError(_("This company cannot be deleted now."))
    if schema_exists(tenant.schema_name):
        from crm.accounts.services import end_all_sessions_in_schema

        with schema_context(tenant.schema_name):
            end_all_sessions_in_schema()
    previous = tenant.status
    tenant.status = Tenant.Status.DELETED
    tenant.delete_after = timezone.now() + timedelta(days=settings.TENANT_DELETE_GRACE_DAYS)
    tenant.final_backup = ""
    tenant.save(update_fields=["status", "delete_after", "final_backup", "updated_at"])
    audit_record(
        actor=actor,
        action="tenant.deleted",
        target=tenant,
        changes={
            "status": {"old": previous, "new": tenant.status},
            "purge_after": tenant.delete_after.isoformat(),
        },
    )
    from .tasks import tenant_final_backup_task

    transaction.on_commit(lambda: tenant_final_backup_task.delay(tenant.pk))
    return tenant


def tenant_final_backup(*, tenant_id: int) -> str:
    """Write the deleted company's final backup once; returns its path ("" when nothing to back up)."""
    tenant = Tenant.objects.filter(pk=tenant_id, status=Tenant.Status.DELETED).first()
    if tenant is None:
        return ""
    if tenant.final_backup and Path(tenant.final_backup).is_file():
        return tenant.final_backup
    if not schema_exists(tenant.schema_name):
        return ""
    archive = tenant_backup(tenant=tenant, output_dir=Path(settings.BACKUP_ROOT) / tenant.slug / "final")
    Tenant.objects.filter(pk=tenant.pk).update(final_backup=str(archive))
    audit_record(actor=None, action="tenant.final_backup", target=tenant, changes={"archive": archive.name})
    return str(archive)


def tenants_due_for_purge(*, now=None):
    return Tenant.objects.filter(status=Tenant.Status.DELETED, delete_after__lte=now or timezone.now())


def tenant_purge(*, tenant_id: int) -> bool:
    """Drop the schema, files and rows of a deleted company past its grace period; idempotent."""
    tenant = tenants_due_for_purge().filter(pk=tenant_id).first()
    if tenant is None:
        return False
    if schema_exists(tenant.schema_name) and not (
        tenant.final_backup and Path(tenant.final_backup).is_file()
    ):
        tenant_final_backup(tenant_id=tenant.pk)  # no purge without a final backup on disk
        tenant.refresh_from_db()
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().filter(pk=tenant.pk, status=Tenant.Status.DELETED).first()
        if tenant is None:
            return False
        audit_record(
            actor=None,
            action="tenant.purged",
            target=tenant,
            changes={"final_backup": tenant.final_backup, "schema": tenant.schema_name},
        )
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {connection.ops.quote_name(tenant.schema_name)} CASCADE")
        Domain.objects.filter(tenant=tenant).delete()
        Tenant.objects.filter(pk=tenant.pk).delete()
    media = Path(settings.MEDIA_ROOT) / tenant.schema_name
    if media.is_dir():
        shutil.rmtree(media, ignore_errors=True)
    logger.info("purged deleted company %s (final backup %s)", tenant.slug, tenant.final_backup)
    return True
