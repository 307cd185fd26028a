"""Loyalty: the programme settings, tiers, members and the append-only points ledger.

Invariants the database keeps (not only the code):
- a member's balance is never negative (`loyalty_member_balance_gte_0`), nor any ledger row's
  balance_after or a lot's remaining points;
- an order earns once (`loyalty_one_earn_per_order`: an earn entry's key is its order, its
  source_key stays empty), and every other keyed entry (a refund's reversal,
  an expired lot, a bonus) exists once (`loyalty_entry_key_unique`): re-running a sweep writes nothing.

The balance kept on the member is the sum of its ledger rows and also the sum of its open lots'
`remaining` (positive entries are lots; every debit consumes lots oldest-expiry first);
`loyalty_check_balances` recomputes both and reports differences.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from customers.models import Customer, Order


class Programme(models.Model):
    """One row per tenant (pk 1): how members join, earn, redeem and lose points."""

    class Rounding(models.TextChoices):
        DOWN = "down", _("Round down")
        NEAREST = "nearest", _("Round to nearest")
        UP = "up", _("Round up")

    class ExpiryMode(models.TextChoices):
        NEVER = "never", _("Points never expire")
        MONTHS = "months", _("N months after they were earned")
        END_OF_NEXT_YEAR = "end_of_next_year", _("At the end of the following year")

    class TierBasis(models.TextChoices):
        SPEND = "spend", _("Spend in the last 12 months")
        POINTS = "points", _("Points earned in the last 12 months")

    name = models.CharField(_("programme name"), max_length=100, default="", blank=True)
    is_active = models.BooleanField(_("programme running"), default=True)
    auto_enrol = models.BooleanField(
        _("enrol customers automatically on their first paid order"), default=True
    )
    points_per_unit = models.DecimalField(
        _("points per unit of currency"),
        max_digits=8,
        decimal_places=3,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("10000"))],
    )
    rounding = models.CharField(_("rounding"), max_length=10, choices=Rounding.choices, default=Rounding.DOWN)
    earning_channels = models.JSONField(_("channels that earn"), default=list, blank=True)
    excluded_categories = models.JSONField(_("product categories that do not earn"), default=list, blank=True)
    signup_bonus = models.PositiveIntegerField(_("sign-up bonus (points)"), default=0)
    first_purchase_bonus = models.PositiveIntegerField(_("first purchase bonus (points)"), default=0)
    birthday_multiplier = models.DecimalField(
        _("birthday month multiplier"), max_digits=5, decimal_places=2, default=Decimal("1")
    )
    campaign_multiplier = models.DecimalField(
        _("campaign multiplier"), max_digits=5, decimal_places=2, default=Decimal("1")
    )
    campaign_starts = models.DateField(_("campaign starts"), null=True, blank=True)
    campaign_ends = models.DateField(_("campaign ends"), null=True, blank=True)
    redemption_points = models.PositiveIntegerField(_("points per redemption unit"), default=100)
    redemption_value = models.DecimalField(
        _("value of a redemption unit"), max_digits=10, decimal_places=2, default=Decimal("1")
    )
    minimum_redeem_balance = models.PositiveIntegerField(_("minimum balance to redeem"), default=0)
    expiry_mode = models.CharField(
        _("expiry"), max_length=20, choices=ExpiryMode.choices, default=ExpiryMode.MONTHS
    )
    expiry_months = models.PositiveSmallIntegerField(
        _("months until points expire"), default=24, validators=[MinValueValidator(1), MaxValueValidator(120)]
    )
    tier_basis = models.CharField(
        _("tiers qualify on"), max_length=10, choices=TierBasis.choices, default="spend"
    )
    tier_grace_days = models.PositiveSmallIntegerField(
        _("grace period before a downgrade (days)"), default=30, validators=[MaxValueValidator(3650)]
    )
    adjust_limit = models.PositiveIntegerField(
        _("largest adjustment sales staff may make (points)"), default=500
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("loyalty programme")
        verbose_name_plural = _("loyalty programmes")
        constraints = [
            models.CheckConstraint(condition=models.Q(pk=1), name="loyalty_programme_singleton"),
            models.CheckConstraint(condition=models.Q(points_per_unit__gte=0), name="loyalty_rate_gte_0"),
            models.CheckConstraint(
                condition=models.Q(redemption_points__gt=0), name="loyalty_redeem_pts_gt_0"
            ),
        ]

    def __str__(self) -> str:
        return self.name or str(_("Loyalty programme"))

    @property
    def point_value(self) -> Decimal:
        """Money one point is worth when redeemed (for the liability)."""
        return self.redemption_value / self.redemption_points


class Tier(models.Model):
    """A VIP tier; rank 0 is the entry tier. A member qualifies for the highest tier whose threshold
    their rolling 12-month spend (or points) reaches."""

    name = models.CharField(_("name"), max_length=60)
    rank = models.PositiveSmallIntegerField(_("rank"), unique=True)
    threshold = models.DecimalField(
        _("qualifying threshold"), max_digits=14, decimal_places=2, default=Decimal("0")
    )
    multiplier = models.DecimalField(
        _("earn multiplier"), max_digits=5, decimal_places=2, default=Decimal("1")
    )
    benefits = models.TextField(_("benefits"), max_length=2000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rank"]
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        constraints = [
            models.CheckConstraint(condition=models.Q(threshold__gte=0), name="loyalty_tier_threshold_gte_0"),
            models.CheckConstraint(condition=models.Q(multiplier__gt=0), name="loyalty_tier_multiplier_gt_0"),
        ]

    def __str__(self) -> str:
        return self.name


class Member(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")
        CLOSED = "closed", _("Closed")

    VISIBILITY_OWNER_FIELD = "customer__owner"
    VISIBILITY_SHARED_WITH_FIELD = "customer__shared_with"

    customer = models.OneToOneField(
        Customer, verbose_name=_("customer"), on_delete=models.CASCADE, related_name="loyalty_member"
    )
    # Unique through a constraint (loyalty_member_number_unique), not unique=True, which adds a second
    # (LIKE pattern) index: member numbers are only looked up exactly, and every index here is
    # written again for each member a sweep enrols.
    number = models.CharField(_("member number"), max_length=20)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    joined_at = models.DateTimeField(_("member since"))
    balance = models.IntegerField(_("points balance"), default=0)
    # No index of its own: loyalty_member_tier_idx (tier, -id) serves look-ups by tier, and every
    # index here is written again when a sweep enrols members.
    tier = models.ForeignKey(
        Tier,
        verbose_name=_("tier"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="members",
        db_index=False,
    )
    tier_since = models.DateField(_("in this tier since"), null=True, blank=True)
    # First evaluation day on which the member no longer qualified for their tier (None: qualifies);
    # the downgrade waits for the programme's grace period from this day.
    below_tier_since = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-joined_at", "-id"]
        verbose_name = _("member")
        verbose_name_plural = _("members")
        indexes = [
            models.Index(fields=["tier", "-id"], name="loyalty_member_tier_idx"),
            models.Index(fields=["joined_at"], name="loyalty_member_joined_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(balance__gte=0), name="loyalty_member_balance_gte_0"),
            models.UniqueConstraint(fields=["number"], name="loyalty_member_number_unique"),
        ]

    def __str__(self) -> str:
        return self.number


class PointsEntry(models.Model):
    """One row of a member's ledger. Never updated except `remaining` (how much of a positive entry is
    still unspent, consumed oldest-expiry first) and the member it belongs to (merge and undo)."""

    class Kind(models.TextChoices):
        EARN = "earn", _("Earned")
        BONUS = "bonus", _("Bonus")
        REDEEM = "redeem", _("Redeemed")
        EXPIRE = "expire", _("Expired")
        ADJUST = "adjust", _("Adjusted")
        REVERSE = "reverse", _("Reversed")
        # A balance brought from another system (the opening-balances import): a lot like an earning,
        # but not counted as earned in the reports nor towards a tier.
        OPENING = "opening", _("Opening balance")

    class Source(models.TextChoices):
        ORDER = "order", _("Order")
        REFUND = "refund", _("Refund")
        REDEMPTION = "redemption", _("Redemption")
        RULE = "rule", _("Programme rule")
        USER = "user", _("Staff member")
        IMPORT = "import", _("Import")

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="entries", db_index=False)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    points = models.IntegerField(_("points"))
    balance_after = models.IntegerField(_("balance after"))
    # Positive entries are lots: what is left of them, and when that expires.
    remaining = models.IntegerField(default=0)
    expires_on = models.DateField(_("expires on"), null=True, blank=True)
    # Points a reversal could not take back because they were already spent (never a negative balance).
    shortfall = models.IntegerField(_("shortfall"), default=0)
    source = models.CharField(_("source"), max_length=12, choices=Source.choices)
    source_key = models.CharField(_("source reference"), max_length=100, blank=True)
    order = models.ForeignKey(
        Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2, null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    occurred_at = models.DateTimeField(_("date"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("points entry")
        verbose_name_plural = _("points entries")
        indexes = [
            # Statement (keyset on id), balance check and merge.
            models.Index(fields=["member", "-id"], name="loyalty_entry_member_idx"),
            # Open lots of a member (FIFO) and the nightly expiry.
            models.Index(
                fields=["expires_on", "member"],
                name="loyalty_entry_open_lots_idx",
                condition=models.Q(remaining__gt=0),
            ),
            # An order's reversals (its earn entry is found through loyalty_one_earn_per_order): earn
            # rows stay out of this index, so the earning sweep maintains one order index, not two.
            models.Index(
                fields=["order"],
                name="loyalty_entry_order_idx",
                condition=models.Q(order__isnull=False) & ~models.Q(kind="earn"),
            ),
            # The reports' drill-downs: the members with a kind of entry in a month. Earn rows (most
            # of the ledger, written in bulk by the earning sweep) stay out: the monthly sums scan
            # anyway, and "who earned in May" goes through the member index.
            models.Index(
                fields=["kind", "occurred_at"],
                name="loyalty_entry_kind_time_idx",
                condition=~models.Q(kind="earn"),
            ),
        ]
        constraints = [
            # A zero-point row only records a reversal that could take nothing back (all of it shortfall).
            models.CheckConstraint(
                condition=~models.Q(points=0) | models.Q(shortfall__gt=0), name="loyalty_entry_points_not_0"
            ),
            models.CheckConstraint(
                condition=models.Q(balance_after__gte=0), name="loyalty_entry_balance_gte_0"
            ),
            models.CheckConstraint(
                condition=models.Q(remaining__gte=0)
                & (models.Q(points__gt=0, remaining__lte=models.F("points")) | models.Q(remaining=0)),
                name="loyalty_entry_remaining_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(shortfall__gte=0), name="loyalty_entry_shortfall_gte_0"
            ),
            models.UniqueConstraint(
                fields=["order"], condition=models.Q(kind="earn"), name="loyalty_one_earn_per_order"
            ),
            models.UniqueConstraint(
                fields=["kind", "source_key"],
                condition=~models.Q(source_key=""),
                name="loyalty_entry_key_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.points:+d}"


class TierChange(models.Model):
    class Reason(models.TextChoices):
        JOINED = "joined", _("Joined")
        UPGRADE = "upgrade", _("Qualified for a higher tier")
        DOWNGRADE = "downgrade", _("No longer qualified after the grace period")
        MERGE = "merge", _("Customers merged")
        SETTINGS = "settings", _("Tiers changed")
        IMPORT = "import", _("Imported from another system")

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="tier_changes", db_index=False)
    # Not indexed: only a tier's deletion (rare, by an admin) looks rows up by tier, and a sweep writes
    # a row per member it enrols.
    from_tier = models.ForeignKey(
        Tier, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    to_tier = models.ForeignKey(
        Tier, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    reason = models.CharField(_("reason"), max_length=12, choices=Reason.choices)
    qualifying_value = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    at = models.DateTimeField(_("date"))

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("tier change")
        verbose_name_plural = _("tier changes")
        indexes = [
            models.Index(fields=["member", "-at"], name="loyalty_tierchange_member_idx"),
            # The reports: tier movements per month.
            models.Index(fields=["at", "reason"], name="loyalty_tierchange_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.from_tier_id} -> {self.to_tier_id}"
