from django.core.management import call_command
from django.core.management.base import BaseCommand
from django_tenants.utils import schema_exists

from crm.accounts.models import User
from crm.tenancy.models import Tenant
from crm.tenancy.services import ensure_public_tenant, ensure_template_schema, tenant_spares_prepare


class Command(BaseCommand):
    help = (
        "Migrate the public schema, the tenant template and every tenant; create the public site's "
        "row and, optionally, a platform admin. Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--admin-email")
        parser.add_argument("--admin-password")

    def handle(self, *args, admin_email=None, admin_password=None, verbosity=1, **options):
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
            User.objects.create_superuser(
                email=admin_email, password=admin_password, full_name="Platform Admin"
            )
            self.stdout.write(f"Platform admin {admin_email} created.")
        self.stdout.write(self.style.SUCCESS("Platform ready."))
