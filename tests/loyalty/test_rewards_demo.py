import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Max, Min

from loyalty import services as loyalty_services
from loyalty.models import Member, PointsEntry, Programme, Tier
from loyalty.referrals.models import Referral
from loyalty.rewards.models import Reward, Voucher

pytestmark = pytest.mark.django_db


def test_seed_demo_adds_a_programme_tiers_rewards_vouchers_and_referrals_with_consistent_ledgers(tenant):
    out = io.StringIO()
    call_command("seed_demo", tenant="alpha", customers=60, seed=5, stdout=out)
    connection.set_tenant(tenant)
    # The programme with its four tiers and a year of ledger history (every kind of entry).
    assert Programme.objects.get().auto_enrol
    # Named in the company's language (English for this tenant; 普通/银卡/金卡/钻石 for a Chinese one).
    assert list(Tier.objects.order_by("rank").values_list("name", flat=True)) == [
        "Classic",
        "Silver",
        "Gold",
        "Diamond",
    ]
    assert Member.objects.count() > 20 and Member.objects.values("tier").distinct().count() >= 2
    span = PointsEntry.objects.aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
    assert (span["last"] - span["first"]).days >= 300
    assert {"earn", "bonus", "redeem", "adjust", "expire"} <= set(
        PointsEntry.objects.values_list("kind", flat=True).distinct()
    )
    assert Reward.objects.count() == 5
    assert Voucher.objects.exists() and Voucher.objects.filter(status="used").exists()
    assert Referral.objects.exists() and Referral.objects.filter(rewarded_at__isnull=False).exists()
    assert loyalty_services.member_balances_check() == []
    assert "rewards:" in out.getvalue()
