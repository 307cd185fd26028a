from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from crm.accounts.models import User
from crm.tenancy.models import Tenant
from crm.tenancy.services import tenant_create, tenant_provision


class Command(BaseCommand):
    help = "Create a tenant (company) with its schema, domain <slug>.<BASE_DOMAIN> and first admin."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-password", default=None, help="Without it, the admin is emailed a link")
        parser.add_argument("--timezone", default="Asia/Shanghai")
        parser.add_argument("--currency", default="CNY")
        parser.add_argument("--language", default="zh-hans", choices=["en", "zh-hans"])
        parser.add_argument("--if-missing", action="store_true", help="Do nothing if the slug exists")

    def handle(
        self,
        *args,
        slug,
        name,
        admin_email,
        admin_password,
        timezone,
        currency,
        language,
        if_missing,
        **options,
    ):
        if admin_password:
            try:
                validate_password(admin_password, User(email=admin_email.strip().lower()))
            except ValidationError as exc:
                raise CommandError("The admin's password is refused: " + " ".join(exc.messages))
        existing = Tenant.objects.filter(slug=slug).first()
        if existing is not None and if_missing:
            if existing.status == Tenant.Status.ACTIVE:
                self.stdout.write(f"Tenant {slug} exists already.")
                return
            tenant = existing
        else:
            try:
                tenant = tenant_create(
                    name=name,
                    slug=slug,
                    admin_email=admin_email,
                    time_zone=timezone,
                    currency=currency,
                    default_language=language,
                )
            except ValidationError as exc:
                raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()))
        tenant = tenant_provision(tenant_id=tenant.pk, admin_password=admin_password)
        self.stdout.write(self.style.SUCCESS(f"Tenant {tenant.slug} is {tenant.status} at {tenant.url('/')}"))
