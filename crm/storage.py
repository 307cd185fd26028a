"""File storage that keeps every tenant's files under its own folder."""

from django.core.files.storage import FileSystemStorage
from django.db import connection


class TenantFileSystemStorage(FileSystemStorage):
    """Prefixes every stored path with the schema of the tenant being served.

    Uploads, import files and exports of tenant A land in MEDIA_ROOT/a/..., so a path guessed from
    another tenant never resolves to A's file. Downloads go through views that check the user, never
    through a public media URL.
    """

    def _schema_prefix(self) -> str:
        return connection.schema_name or "public"

    def path(self, name: str) -> str:
        prefix = self._schema_prefix()
        if not name.startswith(f"{prefix}/"):
            name = f"{prefix}/{name}"
        return super().path(name)

    def generate_filename(self, filename: str) -> str:
        name = super().generate_filename(filename)
        prefix = self._schema_prefix()
        return name if name.startswith(f"{prefix}/") else f"{prefix}/{name}"
