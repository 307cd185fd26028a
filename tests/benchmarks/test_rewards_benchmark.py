"""Benchmarks of rewards and referrals (run with `make bench`; sizes from the environment).

* the ambassador report (one aggregate over every referral and its referees' orders) and one
  ambassador's drill-down, at REWARDS_BENCH_MEMBERS members (default 100,000; ten orders each) of
  whom a fifth were referred by 2% of the members; median of 5; target under 1 s;
* the referral bonuses after a full earning sweep (every pending referral whose referee bought);
* a redemption at the counter (voucher_issue: locks, checks, ledger, stock, voucher): median of 50;
  target under 100 ms.

Smaller, e.g. REWARDS_BENCH_MEMBERS=20000 make bench ARGS="-k rewards".
"""

import os
import statistics
import time

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from loyalty.models import Member
from loyalty.referrals.models import Referral
from loyalty.referrals.selectors import ambassadors, referees_of
from loyalty.referrals.services import referral_bonuses_award
from loyalty.rewards.models import Reward
from loyalty.rewards.services import voucher_issue
from loyalty.services import member_balances_check

from .conftest import record_benchmark
from .test_loyalty_benchmark import _programme
from .test_recompute_benchmark import generate

MEMBERS = int(os.environ.get("REWARDS_BENCH_MEMBERS", 100_000))
REPORT_TARGET = 1.0
REDEEM_TARGET_MS = 100.0

pytestmark = pytest.mark.slow


def _members_and_referrals(members: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO loyalty_member (customer_id, number, status, joined_at, balance, tier_id,
                   tier_since, below_tier_since, created_at, updated_at)
               SELECT id, 'M' || lpad(id::text, 8, '0'), 'active', now() - interval '800 days', 100000,
                      NULL, NULL, NULL, now(), now()
               FROM customers_customer ORDER BY id LIMIT %s""",
            [members],
        )
        cursor.execute(
            """INSERT INTO loyalty_pointsentry (member_id, kind, points, balance_after, remaining, shortfall,
                   source, source_key, reason, occurred_at, created_at)
               SELECT id, 'adjust', 100000, 100000, 100000, 0, 'user', '', 'bench', now(), now()
               FROM loyalty_member"""
        )
        # 2% of the members are ambassadors; every fifth other member was referred by one of them
        # (recorded two years ago, so their orders count as revenue brought).
        cursor.execute(
            """WITH m AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM loyalty_member),
                    a AS (SELECT id, row_number() OVER (ORDER BY id) AS k FROM m WHERE n % 50 = 0)
               INSERT INTO loyalty_referrals_referral (referrer_id, referee_id, channel, created_at,
                   referrer_points, referee_points)
               SELECT a.id, m.id, 'staff', now() - interval '900 days', 0, 0
               FROM m JOIN a ON a.k = 1 + (m.n % (SELECT COUNT(*) FROM a))
               WHERE m.n % 5 = 1 AND m.n % 50 <> 0"""
        )
        cursor.execute("ANALYZE")
        cursor.execute("SELECT COUNT(*) FROM loyalty_referrals_referral")
        return cursor.fetchone()[0]


def test_ambassador_report_bonuses_and_redemptions(committed_tenant, django_db_blocker):
    tenant = committed_tenant("bench-rewards", "Benchmark Rewards")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        generate(n_customers=MEMBERS, n_orders=MEMBERS * 10)
        _programme()
        referrals = _members_and_referrals(MEMBERS)

        report_times = []
        for _run in range(5):
            started = time.perf_counter()
            rows = ambassadors()
            report_times.append(time.perf_counter() - started)
        assert rows and rows[0].referrals >= rows[-1].referrals
        drill_times = []
        for row in rows[:5]:
            started = time.perf_counter()
            referees_of(member=row.member)
            drill_times.append(time.perf_counter() - started)

        started = time.perf_counter()
        awarded = referral_bonuses_award()
        while True:  # in batches of AWARD_BATCH
            more = referral_bonuses_award()
            awarded += more
            if not more:
                break
        award_seconds = time.perf_counter() - started
        assert referral_bonuses_award() == 0
        assert awarded == Referral.objects.filter(rewarded_at__isnull=False).count()

        prize = Reward.objects.create(name="Bench mug", points_cost=100, stock=10_000, voucher_days=30)
        redeem_ms = []
        for member in Member.objects.order_by("?")[:50]:
            started = time.perf_counter()
            voucher_issue(actor=None, member=member, reward=prize)
            redeem_ms.append((time.perf_counter() - started) * 1000)
        assert member_balances_check() == []
    connection.set_schema_to_public()
    report, drill = statistics.median(report_times), statistics.median(drill_times)
    redeem = statistics.median(redeem_ms)
    print(
        f"\nrewards at {MEMBERS:,} members / {referrals:,} referrals: ambassador report {report:.3f} s, "
        f"drill-down {drill * 1000:.1f} ms, bonuses for {awarded:,} referrals {award_seconds:.1f} s, "
        f"redemption median {redeem:.1f} ms"
    )
    record_benchmark(
        "rewards_referrals",
        members=MEMBERS,
        referrals=referrals,
        ambassador_report_seconds=round(report, 3),
        drill_down_ms=round(drill * 1000, 1),
        bonuses_awarded=awarded,
        bonuses_seconds=round(award_seconds, 2),
        redemption_median_ms=round(redeem, 1),
    )
    assert report < REPORT_TARGET
    assert redeem < REDEEM_TARGET_MS
