"""Names of the events the loyalty programme, rewards and referrals record."""

from django.utils.translation import gettext_lazy as _

EVENT_NAMES = {
    "loyalty.programme_updated": _("Loyalty programme changed"),
    "loyalty.tier_created": _("Tier created"),
    "loyalty.tier_updated": _("Tier changed"),
    "loyalty.member_enrolled": _("Member enrolled"),
    "loyalty.member_status": _("Member status changed"),
    "loyalty.points_adjusted": _("Points adjusted"),
    "loyalty.points_redeemed": _("Points redeemed"),
    "loyalty.opening_import_uploaded": _("Opening balances uploaded"),
    "loyalty.opening_import_confirmed": _("Opening balances confirmed"),
    "loyalty.opening_imported": _("Opening balances imported"),
    "loyalty.reward_created": _("Reward created"),
    "loyalty.reward_updated": _("Reward changed"),
    "loyalty.reward_deactivated": _("Reward withdrawn"),
    "loyalty.voucher_issued": _("Voucher issued"),
    "loyalty.voucher_used": _("Voucher used"),
    "loyalty.voucher_cancelled": _("Voucher cancelled"),
    "loyalty.referral_recorded": _("Referral recorded"),
    "loyalty.referral_rewarded": _("Referral rewarded"),
    "loyalty.referral_settings_updated": _("Referral settings changed"),
}
