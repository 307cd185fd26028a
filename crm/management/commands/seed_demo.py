import random
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import translation
from django.utils.module_loading import import_string
from django_tenants.utils import schema_context

from crm.accounts.models import User
from crm.audit.models import AuditEvent
from crm.audit.services import audit_record
from crm.demo import DEMO_PASSWORD, DEMO_USERS, SEEDERS
from crm.tenancy.models import Tenant

SEEDED_ACTION = "demo.seeded"


class Command(BaseCommand):
    help = "Fill a tenant with realistic demo users and data (customers, orders, events, ...)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="The tenant's slug, e.g. demo")
        parser.add_argument("--customers", type=int, default=2000, help="How many customers to create")
        parser.add_argument("--seed", type=int, default=2026, help="Random seed, for repeatable data")
        parser.add_argument(
            "--once",
            action="store_true",
            help="Do nothing when this tenant was seeded before (make run: no recompute at every start)",
        )

    def handle(self, *args, tenant: str, customers: int, seed: int, once: bool = False, **options):
        try:
            tenant_obj = Tenant.objects.get(slug=tenant)
        except Tenant.DoesNotExist:
            raise CommandError(f"No tenant with slug {tenant!r}. Create it with provision_tenant first.")
        rng = random.Random(seed)
        # Seeded names (saved segments, tags, custom fields...) are written in the company's language:
        # each seeder translates its gettext_noop names while this is active.
        with (
            schema_context(tenant_obj.schema_name),
            translation.override(tenant_obj.default_language or "en"),
        ):
            if once and AuditEvent.objects.filter(action=SEEDED_ACTION).exists():
                self.stdout.write(f"Demo data in tenant {tenant} is there already (seeded before); skipped.")
                return
            users = {}
            for email, name, role in DEMO_USERS:
                user = User.objects.filter(email=email).first()
                if user is None:
                    user = User.objects.create_user(
                        email=email, password=DEMO_PASSWORD, full_name=name, role=role
                    )
                elif not user.full_name:
                    # The first admin made by provision_tenant has no name yet.
                    User.objects.filter(pk=user.pk).update(full_name=name)
                    user.full_name = name
                users[email] = user
            for path in SEEDERS:
                started = time.perf_counter()
                import_string(path)(
                    users=list(users.values()), customers=customers, rng=rng, stdout=self.stdout
                )
                self.stdout.write(f"{path}: {time.perf_counter() - started:.1f} s")
            audit_record(
                actor=None, action=SEEDED_ACTION, target=tenant_obj, changes={"customers": customers}
            )
        self.stdout.write(self.style.SUCCESS(f"Demo data ready in tenant {tenant}."))
