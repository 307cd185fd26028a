from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from crm.errors import ApplicationError
from crm.tenancy.backup import tenant_restore


class Command(BaseCommand):
    help = (
        "Bring a tenant_backup archive back: as the same company (after a delete, or over it with "
        "--replace, keeping its current data aside) or as a new one (--slug NEW)."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path)
        parser.add_argument(
            "--slug", default=None, help="The company to restore into (default: the archive's)"
        )
        parser.add_argument(
            "--replace", action="store_true", help="Overwrite the existing company of that slug"
        )

    def handle(self, *args, archive: Path, slug: str | None, replace: bool, **options):
        try:
            tenant = tenant_restore(archive=archive, slug=slug, replace=replace)
        except ApplicationError as exc:
            raise CommandError(str(exc))
        self.stdout.write(
            self.style.SUCCESS(f"Restored {archive.name} as {tenant.slug} at {tenant.url('/')}")
        )
