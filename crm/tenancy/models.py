"""Tenants (companies) and their domains. These tables live in the public schema only."""

import zoneinfo

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_tenants.models import DomainMixin, TenantMixin

TIME_ZONE_CHOICES = [(tz, tz) for tz in sorted(zoneinfo.available_timezones()) if "/" in tz or tz == "UTC"]
CURRENCY_CHOICES = [
    ("CNY", _("Chinese yuan (CNY)")),
    ("USD", _("US dollar (USD)")),
    ("EUR", _("Euro (EUR)")),
    ("GBP", _("Pound sterling (GBP)")),
    ("HKD", _("Hong Kong dollar (HKD)")),
    ("JPY", _("Japanese yen (JPY)")),
    ("SGD", _("Singapore dollar (SGD)")),
    ("TWD", _("New Taiwan dollar (TWD)")),
]
CURRENCY_SYMBOLS = {
    "CNY": "¥",
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "HKD": "HK$",
    "JPY": "¥",
    "SGD": "S$",
    "TWD": "NT$",
}


def logo_name_version(name: str) -> str:
    """The hash part of a stored logo's name ("<schema>/company/logo-<hash>.png" -> "<hash>"), for its URL."""
    stem = name.rsplit("/", 1)[-1]
    return stem.removeprefix("logo-").removesuffix(".png")


class Tenant(TenantMixin):
    class Status(models.TextChoices):
        PROVISIONING = "provisioning", _("Provisioning")
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")
        FAILED = "failed", _("Provisioning failed")
        DELETED = "deleted", _("Deleted (purge pending)")

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.PROVISIONING)
    time_zone = models.CharField(
        _("time zone"), max_length=64, choices=TIME_ZONE_CHOICES, default="Asia/Shanghai"
    )
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES, default="CNY")
    default_language = models.CharField(
        _("default language"), max_length=10, choices=settings.LANGUAGES, default="zh-hans"
    )
    # The company's logo in its own storage folder (crm.tenancy.profile): a PNG we re-encoded, or "".
    logo = models.CharField(_("logo"), max_length=200, blank=True)
    admin_email = models.EmailField(_("first admin's email"), blank=True)
    provisioning_progress = models.PositiveSmallIntegerField(default=0)
    provisioning_message = models.CharField(max_length=300, blank=True)
    last_activity_at = models.DateTimeField(_("last activity"), null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    # Deleted in the console: no longer served, purged (schema and files) after this time.
    delete_after = models.DateTimeField(_("purge after"), null=True, blank=True)
    # The archive written when it was deleted (crm.tenancy.backup); kept after the purge.
    final_backup = models.CharField(_("final backup"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # The schema is created by the provisioning task (cloned from the template), never on save().
    auto_create_schema = False
    auto_drop_schema = False

    class Meta:
        ordering = ["name"]
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["provisioning", "active", "suspended", "failed", "deleted"]),
                name="tenant_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def currency_symbol(self) -> str:
        return CURRENCY_SYMBOLS.get(self.currency, self.currency + " ")

    @property
    def logo_url(self) -> str:
        """Where the company's own site serves its logo ("" without one); the name carries its hash."""
        if not self.logo:
            return ""
        from django.urls import reverse

        return reverse("accounts:company_logo", args=[logo_name_version(self.logo)])

    @property
    def primary_domain(self) -> str:
        return f"{self.slug}.{settings.BASE_DOMAIN}"

    def url(self, path: str = "/") -> str:
        port = f":{settings.SITE_PORT}" if settings.SITE_PORT else ""
        return f"{settings.SITE_SCHEME}://{self.primary_domain}{port}{path}"


class Domain(DomainMixin):
    class Meta:
        verbose_name = _("domain")
        verbose_name_plural = _("domains")

    def __str__(self) -> str:
        return self.domain


class TenantUsage(models.Model):
    """One tenant's size and activity on one day (UTC), recorded by the daily usage task
    (crm.tenancy.usage). Written with an upsert on (tenant, day): a re-run that day refreshes its row."""

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="usage", verbose_name=_("tenant")
    )
    day = models.DateField(_("day"))
    users = models.PositiveIntegerField(_("users"), default=0)
    active_users = models.PositiveIntegerField(_("active users"), default=0)
    customers = models.PositiveBigIntegerField(_("customers"), default=0)
    orders = models.PositiveBigIntegerField(_("orders"), default=0)
    # The tenant's tables (pg_total_relation_size: rows, indexes and TOAST) and its files on disk.
    database_bytes = models.PositiveBigIntegerField(_("database size"), default=0)
    files_bytes = models.PositiveBigIntegerField(_("files size"), default=0)
    last_activity_at = models.DateTimeField(_("last activity"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "-day"]
        verbose_name = _("tenant usage")
        verbose_name_plural = _("tenant usage")
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day"], name="tenant_usage_one_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.day}"

    @property
    def storage_bytes(self) -> int:
        return self.database_bytes + self.files_bytes
