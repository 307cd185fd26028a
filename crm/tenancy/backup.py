"""One archive per tenant: its schema (pg_dump, custom format) and its files, with a manifest.

`manage.py tenant_backup SLUG` writes `BACKUP_ROOT/<slug>/<slug>-<UTC time>.tar` (0600: it holds
personal data); `manage.py tenant_restore ARCHIVE [--slug NEW] [--replace]` brings it back as the same
company (after a delete, or over it with --replace: the current schema and files are kept aside, not
dropped) or as a new one. Archive members:

    manifest.json   format, the company's settings, its schema name, row counts per table
    schema.dump     pg_dump --format=custom --schema=<schema> (no owner, no privileges)
    files/...       MEDIA_ROOT/<schema>/... (imports, exports, uploads)

A restore under another name while the original schema still exists renames the original aside for
the few seconds pg_restore runs (pg_restore cannot rename a schema), then puts it back; a PostgreSQL
advisory lock keeps two restores from overlapping.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_exists

from crm.audit.services import audit_record
from crm.errors import ApplicationError

from .models import Domain, Tenant
from .services import schema_name_for_slug, validate_slug

FORMAT = 1
RESTORE_LOCK = zlib.crc32(b"crm.tenancy.restore") & 0x7FFFFFFF


def pg_tool(name: str) -> str:
    """The path of pg_dump / pg_restore, or an error saying how to install them."""
    path = shutil.which(name)
    if path is None:
        raise ApplicationError(
            f"{name} is not installed: install the PostgreSQL client of the server's major version "
            "(Debian/Ubuntu: apt-get install postgresql-client; the Docker image has it)."
        )
    return path


def _pg_environment() -> dict[str, str]:
    db = connection.settings_dict
    env = {**os.environ, "PGDATABASE": db["NAME"]}
    for key, variable in (
        ("HOST", "PGHOST"),
        ("PORT", "PGPORT"),
        ("USER", "PGUSER"),
        ("PASSWORD", "PGPASSWORD"),
    ):
        if db.get(key):
            env[variable] = str(db[key])
    return env


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, env=_pg_environment(), capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).strip().splitlines() if line.strip()]
        raise ApplicationError(f"{what} failed: {lines[-1] if lines else f'exit status {result.returncode}'}")


def _row_counts(schema_name: str) -> dict[str, int]:
    quoted = connection.ops.quote_name(schema_name)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name",
            [schema_name],
        )
        tables = [row[0] for row in cursor.fetchall()]
        counts = {}
        for table in tables:
            cursor.execute(f"SELECT count(*) FROM {quoted}.{connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


def _media_folder(schema_name: str) -> Path:
    return Path(settings.MEDIA_ROOT) / schema_name


def tenant_backup(*, tenant: Tenant, output_dir: Path | None = None) -> Path:
    """Write the tenant's archive and return its path."""
    pg_dump = pg_tool("pg_dump")
    if tenant.schema_name == "public" or not schema_exists(tenant.schema_name):
        raise ApplicationError(f"The company {tenant.slug} has no schema to back up.")
    folder = Path(output_dir or Path(settings.BACKUP_ROOT) / tenant.slug)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    archive = folder / f"{tenant.slug}-{stamp}.tar"
    manifest = {
        "format": FORMAT,
        "slug": tenant.slug,
        "schema_name": tenant.schema_name,
        "name": tenant.name,
        "time_zone": tenant.time_zone,
        "currency": tenant.currency,
        "default_language": tenant.default_language,
        "admin_email": tenant.admin_email,
        "created_at": tenant.created_at.isoformat() if tenant.created_at else None,
        "backed_up_at": timezone.now().isoformat(),
        "row_counts": _row_counts(tenant.schema_name),
    }
    with tempfile.TemporaryDirectory(prefix="tenant-backup-") as scratch:
        dump = Path(scratch) / "schema.dump"
        _run(
            [pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--schema={tenant.schema_name}",
             f"--file={dump}"],
            "pg_dump",
        )  # fmt: skip
        partial = archive.with_suffix(".tar.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
            data = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            info.mtime = int(timezone.now().timestamp())
            tar.addfile(info, io.BytesIO(data))
            tar.add(dump, arcname="schema.dump")
            media = _media_folder(tenant.schema_name)
            if media.is_dir():
                tar.add(media, arcname="files", recursive=True)
        partial.rename(archive)
    return archive


def read_manifest(archive: Path) -> dict:
    try:
        with tarfile.open(archive) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))
    except (OSError, tarfile.TarError, KeyError, ValueError, TypeError):
        raise ApplicationError(f"{archive} is not a tenant backup archive (no readable manifest.json).")
    if manifest.get("format") != FORMAT:
        raise ApplicationError(
            f"{archive} has backup format {manifest.get('format')!r}; this version reads {FORMAT}."
        )
    return manifest


def _extract(archive: Path, into: Path) -> None:
    """schema.dump and files/ only, refusing links and paths that climb out."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            path = PurePosixPath(member.name)
            if path.is_absolute() or ".." in path.parts:
                raise ApplicationError(f"{archive} holds an unsafe path: {member.name}")
            wanted = member.name == "schema.dump" or path.parts[0] == "files"
            if wanted and (member.isdir() or member.isfile()):
                tar.extract(member, into, filter="data")


def _rename(old: str, new: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER SCHEMA {connection.ops.quote_name(old)} RENAME TO {connection.ops.quote_name(new)}"
        )


def tenant_restore(*, archive: Path, slug: str | None = None, replace: bool = False, actor=None) -> Tenant:
    """Bring an archive back as the company `slug` (default: the archive's); see the module docstring."""
    pg_restore = pg_tool("pg_restore")
    archive = Path(archive)
    if not archive.is_file():
        raise ApplicationError(f"No backup archive at {archive}.")
    manifest = read_manifest(archive)
    slug = (slug or manifest["slug"]).strip().lower()
    target = schema_name_for_slug(slug)
    source = manifest["schema_name"]
    connection.set_schema_to_public()
    existing = Tenant.objects.filter(slug=slug).first()
    if existing is not None and not replace:
        raise ApplicationError(
            f"A company {slug} exists: restore under another slug (--slug NEW) or over it (--replace; its "
            "current data is kept aside)."
        )
    if existing is None:
        try:
            validate_slug(slug)
        except Exception as exc:  # ValidationError: one line
            messages = getattr(exc, "message_dict", {}).get("slug") or getattr(exc, "messages", [str(exc)])
            raise ApplicationError(f"Cannot restore as {slug}: {' '.join(messages)}")
    stamp = timezone.now().strftime("%Y%m%d%H%M%S")
    with tempfile.TemporaryDirectory(prefix="tenant-restore-") as scratch:
        scratch_path = Path(scratch)
        _extract(archive, scratch_path)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [RESTORE_LOCK])
        aside = held = None
        try:
            if existing is not None and schema_exists(target):
                aside = f"{target}_before_restore_{stamp}"
                _rename(target, aside)
            if source != target and schema_exists(source):
                held = f"{source}_held_{stamp}"
                _rename(source, held)
            try:
                _run(
                    [pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
                     f"--dbname={connection.settings_dict['NAME']}", str(scratch_path / "schema.dump")],
                    "pg_restore",
                )  # fmt: skip
                if source != target:
                    _rename(source, target)
            finally:
                if held:
                    _rename(held, source)
        except Exception:
            if aside and not schema_exists(target):
                _rename(aside, target)
            raise
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [RESTORE_LOCK])
        media = _media_folder(target)
        if media.exists():
            media.rename(media.with_name(f"{target}_before_restore_{stamp}"))
        if (scratch_path / "files").is_dir():
            media.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(scratch_path / "files", media)
    with transaction.atomic():
        tenant = existing or Tenant(slug=slug, schema_name=target)
        tenant.name = tenant.name if existing else manifest["name"]
        for field in ("time_zone", "currency", "default_language", "admin_email"):
            setattr(tenant, field, manifest.get(field) or getattr(tenant, field))
        tenant.status = Tenant.Status.ACTIVE
        tenant.provisioning_progress = 100
        tenant.save()
        Domain.objects.get_or_create(
            domain=f"{slug}.{settings.BASE_DOMAIN}", defaults={"tenant": tenant, "is_primary": True}
        )
        audit_record(
            actor=actor,
            action="tenant.restored",
            target=tenant,
            changes={
                "archive": archive.name,
                "from": manifest["slug"],
                "kept_aside": aside or "",
            },
        )
    # An archive from an older version catches up with the code's migrations (a no-op when current).
    call_command("migrate_schemas", schema_name=target, tenant=True, interactive=False, verbosity=0)
    connection.set_schema_to_public()
    return tenant
