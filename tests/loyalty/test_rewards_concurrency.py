"""Twenty redemptions of a reward with stock 5 at once on the real database (threads, one connection
each): exactly five vouchers, stock 0, every ledger consistent."""

import threading

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from crm.errors import SERVICE_ERRORS
from loyalty import services as loyalty_services
from loyalty.models import Member, PointsEntry
from loyalty.rewards import services
from loyalty.rewards.models import Reward, Voucher

from .conftest import member_with_balance

pytestmark = pytest.mark.slow


def test_twenty_concurrent_redemptions_of_a_reward_with_stock_five(committed_tenant, django_db_blocker):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        with schema_context(tenant.schema_name):
            # ten members with room for two redemptions each: the stock, not the balances, limits
            members = [member_with_balance(200) for _i in range(10)]
            prize = Reward.objects.create(name="Limited", points_cost=100, stock=5, voucher_days=30)
        start = threading.Barrier(20)
        outcomes: list[str] = []
        lock = threading.Lock()

        def redeem(index: int) -> None:
            try:
                connection.set_tenant(tenant)
                start.wait()
                try:
                    services.voucher_issue(
                        actor=None,
                        member=Member(pk=members[index % 10].pk),
                        reward=Reward(pk=prize.pk),
                        request_key=f"thread-{index}",
                    )
                    outcome = "ok"
                except SERVICE_ERRORS as error:
                    outcome = "out of stock" if "out of stock" in str(error) else f"other: {error}"
                with lock:
                    outcomes.append(outcome)
            finally:
                connection.close()

        threads = [threading.Thread(target=redeem, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        with schema_context(tenant.schema_name):
            prize.refresh_from_db()
            vouchers = Voucher.objects.filter(reward=prize).count()
            redeemed = PointsEntry.objects.filter(kind="redeem", source="redemption").count()
            balances = sum(
                Member.objects.filter(pk__in=[m.pk for m in members]).values_list("balance", flat=True)
            )
            differences = loyalty_services.member_balances_check()
        connection.set_schema_to_public()
    assert sorted(outcomes) == ["ok"] * 5 + ["out of stock"] * 15
    assert (vouchers, prize.stock, redeemed) == (5, 0, 5)
    assert balances == 10 * 200 - 5 * 100
    assert differences == []
