import io

import pytest
from django.core.management import call_command
from django.db import connection

from loyalty import services as loyalty_services
from loyalty.referrals.models import Referral
from loyalty.rewards.models import Reward, Voucher

pytestmark = pytest.mark.django_db


def test_seed_demo_adds_rewards_vouchers_and_referrals_with_consistent_ledgers(tenant):
    out = io.StringIO()
    call_command("seed_demo", tenant="alpha", customers=60, seed=5, stdout=out)
    connection.set_tenant(tenant)
    assert Reward.objects.count() == 5
    assert Voucher.objects.exists() and Voucher.objects.filter(status="used").exists()
    assert Referral.objects.exists() and Referral.objects.filter(rewarded_at__isnull=False).exists()
    assert loyalty_services.member_balances_check() == []
    assert "rewards:" in out.getvalue()
