import os

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django_tenants.utils import schema_exists

from crm.accounts.models import User
from crm.tenancy.models import Tenant
from crm.tenancy.services import ensure_public_tenant, ensure_template_schema, tenant_spares_prepare


class Command(BaseCommand):
    help = (
        "Migrate the public schema, the tenant template and every tenant; create the public site's "
        "row and, optionally, a platform admin (--admin-email/--admin-password, or the environment's "
        "PLATFORM_ADMIN_EMAIL/PLATFORM_ADMIN_PASSWORD). Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--admin-email", default=os.environ.get("PLATFORM_ADMIN_EMAIL") or None)
        parser.add_argument("--admin-password", default=os.environ.get("PLATFORM_ADMIN_PASSWORD") or None)

    def handle(self, *args, admin_email=None, admin_password=None, verbosity=1, **options):
        if admin_email:
            admin_email = check_admin(admin_email, admin_password)
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=verbosity)
        ensure_public_tenant()
        ensure_template_schema(verbosity=verbosity)
        # Tenant by tenant, and only those whose schema exists: a company still waiting for its
        # provisioning (or whose provisioning failed) has none, and migrate_schemas stops there.
        for schema_name in Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True):
            if schema_exists(schema_name):
                call_command(
                    "migrate_schemas",
                    schema_name=schema_name,
                    tenant=True,
                    interactive=False,
                    verbosity=verbosity,
                )
        # A ready copy of the template, so the first company created in the console is quick too.
        tenant_spares_prepare()
        if admin_email and not User.objects.filter(email__iexact=admin_email).exists():
            if not admin_password:
                raise CommandError(
                    f"Give the password for the new platform admin {admin_email}: --admin-password or "
                    "PLATFORM_ADMIN_PASSWORD."
                )
            User.objects.create_superuser(
                email=admin_email, password=admin_password, full_name="Platform Admin"
            )
            self.stdout.write(f"Platform admin {admin_email} created.")
        self.stdout.write(self.style.SUCCESS("Platform ready."))


def check_admin(email: str, password: str | None) -> str:
    """The normalised address, or a one-line CommandError before anything is written."""
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise CommandError(f"The platform admin's e-mail address {email!r} is not valid.")
    if not password:
        return email  # enough when the admin exists already (checked after migrating)
    try:
        validate_password(password, User(email=email, full_name="Platform Admin"))
    except ValidationError as exc:
        raise CommandError("The platform admin's password is refused: " + " ".join(exc.messages))
    return email
