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


def test_the_loyalty_demo_in_bulk_mode_puts_the_foreign_keys_back_and_ends_consistent(tenant, monkeypatch):
    """From the bulk size on the demo earns with the ledger's foreign keys dropped (checked once when
    put back); here at 60 customers: the same ledger rules, the same constraints afterwards."""
    from loyalty import demo

    def foreign_keys():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE contype = 'f' AND connamespace = current_schema()::regnamespace "
                "AND conrelid::regclass::text LIKE 'loyalty_%%'"
            )
            return set(cursor.fetchall())

    before = foreign_keys()
    monkeypatch.setattr(demo, "BULK_MODE_MIN_CUSTOMERS", 1)
    out = io.StringIO()
    call_command("seed_demo", tenant="alpha", customers=60, seed=5, stdout=out)
    connection.set_tenant(tenant)
    assert foreign_keys() == before and len(before) >= 3
    assert Member.objects.count() > 20
    assert (
        PointsEntry.objects.filter(kind="bonus", reason="first_purchase").count()
        == Member.objects.filter(entries__kind="earn").distinct().count()
    )
    assert loyalty_services.member_balances_check() == []
