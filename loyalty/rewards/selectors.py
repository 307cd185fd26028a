"""Reads of the rewards catalogue and the vouchers, within the user's scope (`visible_to` on the
voucher's member's customer)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from crm.accounts.models import User
from crm.accounts.permissions import visible_to
from loyalty.models import Member

from .models import Reward, Voucher

CATALOGUE_LIMIT = 200
MEMBER_VOUCHERS = 10


def reward_list(*, include_inactive: bool = False) -> QuerySet[Reward]:
    qs = Reward.objects.prefetch_related("tiers").order_by("-is_active", "points_cost", "id")
    if not include_inactive:
        qs = qs.filter(is_active=True)
    return qs[:CATALOGUE_LIMIT]


def reward_get(*, reward_id: Any) -> Reward:
    try:
        return Reward.objects.prefetch_related("tiers").get(pk=int(reward_id))
    except (Reward.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def rewards_for_member(*, member: Member, limit: int = CATALOGUE_LIMIT) -> list[Reward]:
    """Active rewards the member may redeem today by tier and validity (stock and balance are shown,
    not filtered: the counter sees why a reward cannot be taken). Two queries."""
    today = timezone.localdate()
    qs = (
        Reward.objects.filter(is_active=True)
        .filter(Q(valid_from__isnull=True) | Q(valid_from__lte=today))
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gte=today))
        .filter(Q(tiers__isnull=True) | Q(tiers=member.tier_id))
        .distinct()
        .order_by("points_cost", "id")
    )
    rewards = list(qs[:limit])
    for reward in rewards:
        reward.affordable = reward.points_cost <= member.balance
        reward.in_stock = reward.stock is None or reward.stock > 0
    return rewards


def voucher_queryset(user: User) -> QuerySet[Voucher]:
    return visible_to(
        Voucher.objects.select_related("reward", "member__customer", "issued_by", "used_by", "cancelled_by"),
        user,
    )


def voucher_get_for_user(*, user: User, voucher_id: Any) -> Voucher:
    """One voucher the user may see; Http404 alike for missing and forbidden."""
    try:
        return voucher_queryset(user).get(pk=int(voucher_id))
    except (Voucher.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def voucher_by_code(*, code: str) -> Voucher | None:
    """The voucher a customer presents at the counter (any staff member: the code is the proof); in
    this tenant's schema only."""
    if not code:
        return None
    return Voucher.objects.select_related("reward", "member__customer").filter(code=code).first()


def member_vouchers(*, member: Member, limit: int = MEMBER_VOUCHERS) -> list[Voucher]:
    return list(
        Voucher.objects.filter(member=member)
        .select_related("reward", "issued_by")
        .order_by("-issued_at", "-id")[:limit]
    )
