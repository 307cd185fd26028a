"""Per-tenant backups and restores, and deleting a company from the console (issue 16, item 4).

Backups run pg_dump in its own process, so these tests use committed tenants (`committed_tenant`).
The full round trip: a seeded company is deleted in the console, a real worker writes its final
backup, the purge drops it, and the final backup brings it back with the same rows."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists, tenant_context

from crm.audit.models import AuditEvent
from crm.tenancy.backup import read_manifest, tenant_backup, tenant_restore
from crm.tenancy.deletion import tenant_delete, tenant_purge
from crm.tenancy.models import Domain, Tenant
from crm.tenancy.tasks import purge_deleted_all_tenants
from customers.models import Customer, Order
from tests.conftest import REPO_ROOT, _test_database_url

pytestmark = pytest.mark.slow
SAMPLE = ("name", "email", "phone", "city")


def _counts(schema_name: str) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE'",
            [schema_name],
        )
        tables = sorted(row[0] for row in cursor.fetchall())
        counts = {}
        for table in tables:
            cursor.execute(f'SELECT count(*) FROM "{schema_name}"."{table}"')
            counts[table] = cursor.fetchone()[0]
    return counts


def _sample(tenant: Tenant) -> tuple[list, list]:
    with tenant_context(tenant):
        customers = list(Customer.objects.order_by("pk").values_list("pk", *SAMPLE)[:25])
        orders = list(
            Order.objects.order_by("pk").values_list("pk", "customer_id", "number", "total", "placed_at")[:25]
        )
    connection.set_schema_to_public()
    return customers, orders


def _seeded(committed_tenant, django_db_blocker) -> Tenant:
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        call_command("seed_demo", tenant=tenant.slug, customers=60, seed=11, stdout=StringIO())
        # A file of the company's own, as an import or export leaves one.
        media = Path(settings.MEDIA_ROOT) / tenant.schema_name / "exports"
        media.mkdir(parents=True, exist_ok=True)
        (media / "customers.csv").write_text("name\nWang\n", encoding="utf-8")
        connection.set_schema_to_public()
    return tenant


def _drop_copy(slug: str) -> None:
    """Drop a restored copy: its schema, any schema kept aside by a restore over it, and its rows."""
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", [f"{slug.replace('-', '_')}%"]
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    _drop(slug)


def _drop(slug: str) -> None:
    connection.set_schema_to_public()
    for tenant in Tenant.objects.filter(slug=slug):
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema_name}" CASCADE')
        Domain.objects.filter(tenant=tenant).delete()
        tenant.delete()


@pytest.mark.celery_worker
def test_delete_in_console_final_backup_purge_and_restore_bring_back_every_row(
    committed_tenant, django_db_blocker, celery_worker
):
    tenant = _seeded(committed_tenant, django_db_blocker)
    with django_db_blocker.unblock():
        before_counts = _counts(tenant.schema_name)
        before_sample = _sample(tenant)
        assert before_counts["customers_customer"] == 60 and before_counts["customers_order"] > 0
        # The console's delete, committed (no `db` fixture: no test transaction), so the final backup
        # task goes to the real worker at once. (The view itself: test_tenant_delete.py.)
        tenant_delete(actor=None, tenant=tenant, confirm_slug=f"  {tenant.slug.upper()} ")
        deadline = time.monotonic() + 120
        while not Tenant.objects.get(pk=tenant.pk).final_backup:
            assert time.monotonic() < deadline, celery_worker["log"].read_text()[-3000:]
            time.sleep(0.3)
        archive = Path(Tenant.objects.get(pk=tenant.pk).final_backup)
        assert archive.is_file() and oct(archive.stat().st_mode & 0o777) == "0o600"
        # Not yet due: the beat dispatcher purges nothing.
        assert purge_deleted_all_tenants() == 0
        Tenant.objects.filter(pk=tenant.pk).update(delete_after=timezone.now() - timedelta(minutes=1))
        assert tenant_purge(tenant_id=tenant.pk) is True
        assert not schema_exists(tenant.schema_name)
        assert not Tenant.objects.filter(slug=tenant.slug).exists()
        assert not (Path(settings.MEDIA_ROOT) / tenant.schema_name).exists()
        assert archive.is_file()  # the final backup outlives the purge
        try:
            out = StringIO()
            call_command("tenant_restore", str(archive), stdout=out)
            restored = Tenant.objects.get(slug=tenant.slug)
            assert restored.status == Tenant.Status.ACTIVE and restored.schema_name == tenant.schema_name
            assert Domain.objects.filter(
                tenant=restored, domain=f"{tenant.slug}.{settings.BASE_DOMAIN}"
            ).exists()
            after_counts = _counts(tenant.schema_name)
            assert after_counts == before_counts
            assert _sample(restored) == before_sample
            restored_file = Path(settings.MEDIA_ROOT) / tenant.schema_name / "exports" / "customers.csv"
            assert restored_file.read_text(encoding="utf-8") == "name\nWang\n"
            assert AuditEvent.objects.filter(action="tenant.restored", target_id=str(restored.pk)).exists()
        finally:
            _drop(tenant.slug)


def test_restore_as_a_new_company_leaves_the_original_untouched(
    committed_tenant, django_db_blocker, tmp_path
):
    tenant = _seeded(committed_tenant, django_db_blocker)
    copy_slug = f"{tenant.slug}-copy"
    with django_db_blocker.unblock():
        archive = tenant_backup(tenant=tenant, output_dir=tmp_path)
        manifest = read_manifest(archive)
        assert manifest["slug"] == tenant.slug and manifest["row_counts"]["customers_customer"] == 60
        with tarfile.open(archive) as tar:
            assert {"manifest.json", "schema.dump", "files/exports/customers.csv"} <= set(tar.getnames())
        before = _counts(tenant.schema_name)
        try:
            copy = tenant_restore(archive=archive, slug=copy_slug)
            assert copy.schema_name == copy_slug.replace("-", "_")
            assert _counts(copy.schema_name) == before
            assert _counts(tenant.schema_name) == before  # the original was only renamed aside and back
            # Two companies now: a change in the copy stays in the copy.
            with schema_context(copy.schema_name):
                first = Customer.objects.order_by("pk").first()
                Customer.objects.filter(pk=first.pk).update(city="Copy City")
            with schema_context(tenant.schema_name):
                assert Customer.objects.get(pk=first.pk).city != "Copy City"
            connection.set_schema_to_public()
            # Over an existing company only when asked; its data is kept aside.
            with pytest.raises(CommandError, match="exists: restore under another slug"):
                call_command("tenant_restore", str(archive), "--slug", copy_slug)
            tenant_restore(archive=archive, slug=copy_slug, replace=True)
            with schema_context(copy.schema_name):
                assert Customer.objects.get(pk=first.pk).city != "Copy City"
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                    [f"{copy.schema_name}_before_restore_%"],
                )
                aside = [row[0] for row in cursor.fetchall()]
            assert len(aside) == 1
            with schema_context(aside[0]):
                assert Customer.objects.get(pk=first.pk).city == "Copy City"
        finally:
            _drop_copy(copy_slug)


def _refuse_in_public(table: str, event: str) -> None:
    """A committed trigger on a public table that refuses every `event` (INSERT/DELETE) on it."""
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION public.refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'refused by the test trigger'; END $$"
        )
        cursor.execute(
            f'CREATE TRIGGER refuse_row BEFORE {event} ON public."{table}" '
            "FOR EACH ROW EXECUTE FUNCTION public.refuse_row()"
        )


def _allow_again(table: str) -> None:
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TRIGGER IF EXISTS refuse_row ON public."{table}"')
        cursor.execute("DROP FUNCTION IF EXISTS public.refuse_row()")


def test_a_purge_that_fails_part_way_drops_nothing(committed_tenant, django_db_blocker, tmp_path):
    """The schema is dropped, then the company's rows: when removing its domain fails, the schema and
    the company are still there (the purge runs again on beat's next round)."""
    tenant = committed_tenant()
    final = tmp_path / "final.tar"
    final.write_bytes(b"a final backup")
    with django_db_blocker.unblock():
        Tenant.objects.filter(pk=tenant.pk).update(
            status=Tenant.Status.DELETED,
            delete_after=timezone.now() - timedelta(minutes=1),
            final_backup=str(final),
        )
        _refuse_in_public(Domain._meta.db_table, "DELETE")
        try:
            with pytest.raises(DatabaseError):
                tenant_purge(tenant_id=tenant.pk)
        finally:
            _allow_again(Domain._meta.db_table)
        assert schema_exists(tenant.schema_name)
        assert Tenant.objects.filter(pk=tenant.pk, status=Tenant.Status.DELETED).exists()
        assert not AuditEvent.objects.filter(action="tenant.purged", target_id=str(tenant.pk)).exists()


def test_a_restore_whose_audit_row_is_refused_adds_no_company(committed_tenant, django_db_blocker, tmp_path):
    tenant = committed_tenant()
    copy_slug = f"{tenant.slug}-copy"
    with django_db_blocker.unblock():
        archive = tenant_backup(tenant=tenant, output_dir=tmp_path)
        _refuse_in_public(AuditEvent._meta.db_table, "INSERT")
        try:
            with pytest.raises(DatabaseError):
                tenant_restore(archive=archive, slug=copy_slug)
            _allow_again(AuditEvent._meta.db_table)
            assert not Tenant.objects.filter(slug=copy_slug).exists()
            assert not Domain.objects.filter(domain__startswith=f"{copy_slug}.").exists()
        finally:
            _allow_again(AuditEvent._meta.db_table)
            _drop_copy(copy_slug)


def test_bad_input_to_the_backup_commands_gets_one_line(db, tmp_path):
    with pytest.raises(CommandError, match="^No company with slug 'nowhere'.$"):
        call_command("tenant_backup", "nowhere")
    not_an_archive = tmp_path / "x.tar"
    not_an_archive.write_bytes(b"hello")
    with pytest.raises(CommandError, match="is not a tenant backup archive"):
        call_command("tenant_restore", str(not_an_archive))
    with pytest.raises(CommandError, match="No backup archive at"):
        call_command("tenant_restore", str(tmp_path / "missing.tar"))


def test_the_backup_command_says_when_pg_dump_is_missing(tenant, django_db_blocker):
    with django_db_blocker.unblock():
        database_url = _test_database_url()
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DJANGO_SETTINGS_MODULE": "crm.settings.test",
        "DATABASE_URL": database_url,
        "PATH": str(Path(sys.executable).parent),  # python, but no PostgreSQL client
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "tenant_backup", tenant.slug],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "pg_dump is not installed: install the PostgreSQL client" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
