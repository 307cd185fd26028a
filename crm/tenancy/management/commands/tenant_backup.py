from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from crm.errors import ApplicationError
from crm.tenancy.backup import tenant_backup
from crm.tenancy.models import Tenant


class Command(BaseCommand):
    help = "Write one archive of a company: its schema (pg_dump) and its files, with a manifest."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--output-dir", type=Path, default=None, help="Default: BACKUP_ROOT/<slug>/")

    def handle(self, *args, slug: str, output_dir: Path | None, **options):
        tenant = Tenant.objects.exclude(schema_name="public").filter(slug=slug.strip().lower()).first()
        if tenant is None:
            raise CommandError(f"No company with slug {slug!r}.")
        try:
            archive = tenant_backup(tenant=tenant, output_dir=output_dir)
        except ApplicationError as exc:
            raise CommandError(str(exc))
        except OSError as exc:
            raise CommandError(f"Cannot write the archive: {exc.strerror} ({exc.filename}).")
        self.stdout.write(self.style.SUCCESS(f"Backup of {tenant.slug} written to {archive}"))
