"""Referrals (brand ambassadors): each member's referral code, who referred whom, and the bonus
amounts.

Invariants the database keeps:
- a code belongs to one member and a member has one code;
- a member is referred once (`referee` is unique) and never by themselves;
- the bonuses are ledger rows keyed "referral:<id>:referrer" / "referral:<id>:referee" (unique in
  the loyalty ledger), so however often the earning sweep runs, each is credited once.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from customers.models import Order
from loyalty.models import Member

REFERRAL_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
REFERRAL_CODE_LENGTH = 8
MAX_BONUS = 1_000_000


class ReferralSettings(models.Model):
    """One row per tenant (pk 1): the bonuses a referral earns once the referee first buys."""

    is_active = models.BooleanField(_("referrals earn bonuses"), default=True)
    referrer_bonus = models.PositiveIntegerField(_("bonus for the referrer (points)"), default=200)
    referee_bonus = models.PositiveIntegerField(_("bonus for the new member (points)"), default=100)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("referral settings")
        verbose_name_plural = _("referral settings")
        constraints = [
            models.CheckConstraint(condition=models.Q(pk=1), name="referral_settings_singleton"),
            models.CheckConstraint(
                condition=models.Q(referrer_bonus__lte=MAX_BONUS, referee_bonus__lte=MAX_BONUS),
                name="referral_bonus_bounded",
            ),
        ]

    def __str__(self) -> str:
        return str(_("Referral settings"))


class ReferralCode(models.Model):
    member = models.OneToOneField(Member, on_delete=models.CASCADE, related_name="referral_code")
    code = models.CharField(_("referral code"), max_length=REFERRAL_CODE_LENGTH, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("referral code")
        verbose_name_plural = _("referral codes")

    def __str__(self) -> str:
        return self.code


class Referral(models.Model):
    class Channel(models.TextChoices):
        STAFF = "staff", _("Recorded by staff")
        LINK = "link", _("Referral link")

    VISIBILITY_OWNER_FIELD = "referee__customer__owner"
    VISIBILITY_SHARED_WITH_FIELD = "referee__customer__shared_with"

    # Purging a customer from the bin deletes their membership and with it their referrals (the
    # bonuses already credited stay in the other member's ledger).
    referrer = models.ForeignKey(
        Member, verbose_name=_("referred by"), on_delete=models.CASCADE, related_name="referrals_made"
    )
    referee = models.OneToOneField(
        Member, verbose_name=_("new member"), on_delete=models.CASCADE, related_name="referred_by"
    )
    channel = models.CharField(_("how"), max_length=8, choices=Channel.choices, default=Channel.STAFF)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("referred"), auto_now_add=True)
    # Set when both bonuses were credited (the referee's first paid order).
    rewarded_at = models.DateTimeField(_("bonuses credited"), null=True, blank=True)
    qualifying_order = models.ForeignKey(
        Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    referrer_points = models.PositiveIntegerField(default=0)
    referee_points = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("referral")
        verbose_name_plural = _("referrals")
        indexes = [
            models.Index(fields=["referrer", "-id"], name="referral_referrer_idx"),
            models.Index(
                fields=["referee"], name="referral_pending_idx", condition=models.Q(rewarded_at__isnull=True)
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(referrer=models.F("referee")), name="referral_not_self"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.referrer_id} -> {self.referee_id}"
