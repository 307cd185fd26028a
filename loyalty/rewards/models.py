"""The rewards catalogue and the vouchers issued at the counter.

Invariants the database keeps:
- a reward costs between 1 and MAX_POINTS points; its stock (None: unlimited) is never negative;
- a voucher code is unique (per tenant schema), and a request key (the confirm form's one-time token)
  issues at most one voucher, so a double click or a retried POST spends once;
- a voucher holds the points it cost (> 0); its status moves issued -> used | cancelled | expired once.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from loyalty.models import Member, Tier

MAX_REWARD_POINTS = 10_000_000
VOUCHER_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read out at a counter
VOUCHER_CODE_LENGTH = 10


class Reward(models.Model):
    name = models.CharField(_("name"), max_length=120)
    description = models.TextField(_("description"), max_length=1000, blank=True)
    image = models.FileField(_("image"), upload_to="rewards/%Y/%m/", max_length=300, blank=True)
    points_cost = models.PositiveIntegerField(_("points cost"))
    stock = models.PositiveIntegerField(
        _("stock"), null=True, blank=True, help_text=_("Leave empty for unlimited stock.")
    )
    valid_from = models.DateField(_("valid from"), null=True, blank=True)
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    tiers = models.ManyToManyField(
        Tier,
        verbose_name=_("tiers allowed"),
        blank=True,
        related_name="+",
        help_text=_("None ticked: every tier."),
    )
    voucher_days = models.PositiveSmallIntegerField(_("voucher valid for (days)"), default=30)
    is_active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["points_cost", "id"]
        verbose_name = _("reward")
        verbose_name_plural = _("rewards")
        indexes = [models.Index(fields=["is_active", "points_cost"], name="reward_active_cost_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(points_cost__gt=0, points_cost__lte=MAX_REWARD_POINTS),
                name="reward_points_cost_range",
            ),
            models.CheckConstraint(
                condition=models.Q(stock__isnull=True) | models.Q(stock__gte=0), name="reward_stock_gte_0"
            ),
            models.CheckConstraint(
                condition=models.Q(valid_from__isnull=True)
                | models.Q(valid_until__isnull=True)
                | models.Q(valid_until__gte=models.F("valid_from")),
                name="reward_validity_ordered",
            ),
            models.CheckConstraint(
                condition=models.Q(voucher_days__gte=1, voucher_days__lte=366),
                name="reward_voucher_days_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Voucher(models.Model):
    class Status(models.TextChoices):
        ISSUED = "issued", _("Issued")
        USED = "used", _("Used")
        CANCELLED = "cancelled", _("Cancelled")
        EXPIRED = "expired", _("Expired")

    VISIBILITY_OWNER_FIELD = "member__customer__owner"
    VISIBILITY_SHARED_WITH_FIELD = "member__customer__shared_with"

    code = models.CharField(_("voucher code"), max_length=VOUCHER_CODE_LENGTH, unique=True)
    reward = models.ForeignKey(
        Reward, verbose_name=_("reward"), on_delete=models.PROTECT, related_name="vouchers"
    )
    # A member goes with their customer when the bin is purged: their vouchers go too (like the ledger).
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="vouchers", db_index=False
    )
    points = models.PositiveIntegerField(_("points"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ISSUED)
    expires_on = models.DateField(_("expires on"))
    request_key = models.CharField(max_length=64, unique=True, null=True, blank=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("issued by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    issued_at = models.DateTimeField(_("issued"))
    used_at = models.DateTimeField(_("used"), null=True, blank=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    cancelled_at = models.DateTimeField(_("cancelled"), null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-issued_at", "-id"]
        verbose_name = _("voucher")
        verbose_name_plural = _("vouchers")
        indexes = [
            models.Index(fields=["member", "-issued_at"], name="voucher_member_idx"),
            models.Index(
                fields=["expires_on"], name="voucher_open_expiry_idx", condition=models.Q(status="issued")
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(points__gt=0), name="voucher_points_gt_0"),
            models.CheckConstraint(
                condition=models.Q(status__in=["issued", "used", "cancelled", "expired"]),
                name="voucher_status_known",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="used") | models.Q(used_at__isnull=False),
                name="voucher_used_has_time",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="cancelled") | models.Q(cancelled_at__isnull=False),
                name="voucher_cancelled_has_time",
            ),
        ]

    def __str__(self) -> str:
        return self.display_code

    @property
    def display_code(self) -> str:
        """ABCD-EFGH-JK: easier to read out and type."""
        return "-".join(self.code[i : i + 4] for i in range(0, len(self.code), 4))

    def is_past_expiry(self, today) -> bool:
        return self.status == self.Status.ISSUED and self.expires_on < today

    def shown_status(self, today) -> str:
        return self.Status.EXPIRED.label if self.is_past_expiry(today) else self.get_status_display()
