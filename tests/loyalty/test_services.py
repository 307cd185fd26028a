"""The ledger services on the real database: enrolment, earning once, refunds, redemption, manual
adjustments, expiry, tiers, the balance check and two tenants."""

from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.utils import IntegrityError
from django.utils import timezone

from crm.audit.models import AuditEvent
from crm.errors import ApplicationError
from customers.services import order_refund
from loyalty import services
from loyalty.models import Member, PointsEntry, Programme, Tier, TierChange
from tests.factories import CustomerFactory, OrderLineFactory

from .conftest import buy, member_with_balance


def ledger_sum(member) -> int:
    return sum(PointsEntry.objects.filter(member=member).values_list("points", flat=True))


def assert_consistent():
    assert services.member_balances_check() == []


# --- earning -----------------------------------------------------------------------------------------
def test_first_paid_order_enrols_and_earns_once(programme):
    Programme.objects.filter(pk=1).update(signup_bonus=50, first_purchase_bonus=20)
    customer = CustomerFactory()
    first = buy(customer, "100.00", days_ago=3)
    buy(customer, "59.99", days_ago=1)
    result = services.points_earn_for_orders()
    assert (result.enrolled, result.orders) == (1, 2)
    member = Member.objects.get(customer=customer)
    assert member.joined_at == first.placed_at and member.tier.rank == 0
    kinds = sorted(PointsEntry.objects.filter(member=member).values_list("kind", "points"))
    assert kinds == [("bonus", 20), ("bonus", 50), ("earn", 59), ("earn", 100)]
    assert member.balance == 229 == ledger_sum(member)
    history = list(TierChange.objects.filter(member=member).values_list("reason", "from_tier", "to_tier"))
    assert history == [("joined", None, member.tier_id)]
    # Again, and again for this customer only: nothing more.
    assert services.points_earn_for_orders().orders == 0
    assert services.points_earn_for_orders(customer_ids=[customer.pk]).orders == 0
    assert PointsEntry.objects.count() == 4
    assert_consistent()


def test_a_sweep_for_some_customers_enrols_earns_and_reverses_for_them_only(programme, manager_user):
    """What customers_changed names is all a sweep looks at; the catch-up of everyone takes the rest,
    and neither earns an order twice."""
    named, other = CustomerFactory(), CustomerFactory()
    buy(named, "100.00", days_ago=2)
    other_order = buy(other, "40.00", days_ago=2)
    result = services.points_earn_for_orders(customer_ids=[named.pk])
    assert (result.enrolled, result.orders, result.points) == (1, 1, 100)
    assert not Member.objects.filter(customer=other).exists()
    # A refund of the other customer's order is not looked at either until its customer is named.
    services.points_earn_for_orders()
    order_refund(actor=manager_user, order=other_order, amount=Decimal("20.00"), reason="damaged")
    assert services.points_earn_for_orders(customer_ids=[named.pk]).reversals == 0
    assert services.points_earn_for_orders(customer_ids=[other.pk]).reversals == 1
    assert Member.objects.get(customer=other).balance == 20
    assert services.points_earn_for_orders().orders == 0
    assert PointsEntry.objects.filter(kind="earn").count() == 2
    assert_consistent()


def test_a_sweep_in_batches_earns_what_one_batch_earns(programme):
    """The candidates are looked up once per sweep, then earned in batches (one transaction each)."""
    Programme.objects.filter(pk=1).update(first_purchase_bonus=20)
    first, second = CustomerFactory(), CustomerFactory()
    buy(first, "100.00", days_ago=3)
    buy(second, "40.00", days_ago=2)
    buy(first, "60.00", days_ago=1)
    result = services.points_earn_for_orders(batch_size=1)
    assert (result.enrolled, result.orders, result.points, result.bonuses) == (2, 3, 200, 2)
    assert Member.objects.get(customer=first).balance == 180
    assert services.points_earn_for_orders(batch_size=1).orders == 0
    assert_consistent()


def test_an_import_queues_a_sweep_for_the_customers_it_wrote(
    programme, manager_user, monkeypatch, django_capture_on_commit_callbacks
):
    """The import's customers_changed names the customers it wrote; loyalty queues the earning task
    for them (recorded here instead of reaching a broker, then run in this process), which earns
    their orders only; a re-import of the same file earns nothing more."""
    from celery.app.task import Task

    from loyalty.tasks import points_earn_task
    from tests.customers.test_import_services import run_import

    queued = []

    def record(task, args=None, kwargs=None, **options):
        if task.name == points_earn_task.name:
            queued.append(kwargs)
        return SimpleNamespace(id="")

    monkeypatch.setattr(Task, "apply_async", record)
    earlier = buy(CustomerFactory(), "10.00")  # an order whose own sweep never ran
    csv = (
        "订单号,下单时间,手机,姓名,商品名称,SKU,数量,单价,金额,渠道\n"
        "IM-1,2026-03-01 10:00,13900000001,顾客一,茶叶,T-1,1,120,120,门店\n"
        "IM-2,2026-03-02 10:00,13900000001,顾客一,茶叶,T-1,1,30,30,门店\n"
        "IM-3,2026-03-02 11:00,13900000002,顾客二,茶叶,T-1,1,55,55,门店\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        run_import(manager_user, csv, name="orders.csv")
    assert len(queued) == 1 and len(queued[0]["customer_ids"]) == 2
    assert earlier.customer_id not in queued[0]["customer_ids"]
    assert points_earn_task.run(**queued[0])["orders"] == 3
    assert sorted(PointsEntry.objects.filter(kind="earn").values_list("points", flat=True)) == [30, 55, 120]
    assert not Member.objects.filter(customer_id=earlier.customer_id).exists()
    with django_capture_on_commit_callbacks(execute=True):
        run_import(manager_user, csv, name="orders.csv")  # the same file again
    for kwargs in queued[1:]:
        assert points_earn_task.run(**kwargs)["orders"] == 0
    assert PointsEntry.objects.filter(kind="earn").count() == 3
    assert_consistent()


def test_the_database_refuses_a_second_earn_for_an_order(programme):
    customer = CustomerFactory()
    order = buy(customer)
    services.points_earn_for_orders()
    member = Member.objects.get(customer=customer)
    with pytest.raises(IntegrityError):
        PointsEntry.objects.create(
            member=member, kind="earn", points=1, balance_after=1, source="order", order=order,
            occurred_at=timezone.now(),
        )  # fmt: skip


def test_no_auto_enrol_means_non_members_earn_nothing(programme):
    Programme.objects.filter(pk=1).update(auto_enrol=False)
    stranger = CustomerFactory()
    buy(stranger, "500")
    assert services.points_earn_for_orders().orders == 0
    assert not Member.objects.exists() and not PointsEntry.objects.exists()


def test_orders_before_a_manual_enrolment_do_not_earn(programme):
    Programme.objects.filter(pk=1).update(auto_enrol=False)
    customer = CustomerFactory()
    buy(customer, "500", days_ago=10)
    member = services.member_enrol(actor=None, customer=customer)
    later = buy(customer, "80")
    services.points_earn_for_orders()
    assert list(PointsEntry.objects.filter(member=member).values_list("order_id", flat=True)) == [later.pk]


def test_channels_categories_cancelled_and_multipliers(programme):
    Programme.objects.filter(pk=1).update(
        earning_channels=["store"],
        excluded_categories=["Gift cards"],
        campaign_multiplier=Decimal("2"),
        campaign_starts=timezone.localdate() - timedelta(days=1),
        campaign_ends=timezone.localdate() + timedelta(days=1),
    )
    customer = CustomerFactory()
    in_store = buy(customer, "100.00", days_ago=30)
    OrderLineFactory(
        order=in_store, product_name="Card", category="Gift cards", quantity=1, unit_price=Decimal("40")
    )
    buy(customer, "100.00", days_ago=20, channel="online")
    buy(customer, "100.00", days_ago=10, status="cancelled")
    campaign = buy(customer, "10.00")
    services.points_earn_for_orders()
    earned = dict(PointsEntry.objects.filter(kind="earn").values_list("order_id", "points"))
    assert earned == {in_store.pk: 60, campaign.pk: 20}


def test_a_qualifying_order_upgrades_at_once_and_the_next_earns_with_the_multiplier(programme):
    customer = CustomerFactory()
    buy(customer, "1200.00", days_ago=2)
    services.points_earn_for_orders()
    member = Member.objects.get(customer=customer)
    assert member.tier.name == "银卡"
    assert TierChange.objects.filter(member=member, reason="upgrade", to_tier=member.tier).exists()
    second = buy(customer, "100.00")
    services.points_earn_for_orders(customer_ids=[customer.pk])
    assert PointsEntry.objects.get(order=second, kind="earn").points == 120


# --- refunds -----------------------------------------------------------------------------------------
def test_refunds_reverse_in_proportion_once(programme, manager_user):
    customer = CustomerFactory()
    order = buy(customer, "100.00")
    services.points_earn_for_orders()
    member = Member.objects.get(customer=customer)
    order_refund(actor=manager_user, order=order, amount=Decimal("30.00"))
    services.points_earn_for_orders(customer_ids=[customer.pk])
    services.points_earn_for_orders(customer_ids=[customer.pk])  # again: nothing more
    member.refresh_from_db()
    assert member.balance == 70
    order_refund(actor=manager_user, order=order, amount=Decimal("70.00"))
    services.points_earn_for_orders()
    member.refresh_from_db()
    assert member.balance == 0
    reversals = list(
        PointsEntry.objects.filter(kind="reverse").order_by("id").values_list("points", "shortfall")
    )
    assert reversals == [(-30, 0), (-70, 0)]
    assert_consistent()


def test_a_refund_of_spent_points_records_the_shortfall_never_a_negative_balance(programme, manager_user):
    customer = CustomerFactory()
    order = buy(customer, "100.00")
    services.points_earn_for_orders()
    member = Member.objects.get(customer=customer)
    services.points_redeem(actor=manager_user, member=member, points=80, source_key="v1")
    order_refund(actor=manager_user, order=order, amount=Decimal("100.00"))
    services.points_earn_for_orders()
    member.refresh_from_db()
    reverse = PointsEntry.objects.get(kind="reverse")
    assert (reverse.points, reverse.shortfall, member.balance) == (-20, 80, 0)
    assert_consistent()


def test_an_order_refunded_before_it_earned_ends_where_the_other_path_ends(programme, manager_user):
    early, late = CustomerFactory(), CustomerFactory()
    order_early, order_late = buy(early, "100.00"), buy(late, "100.00")
    order_refund(actor=manager_user, order=order_early, amount=Decimal("40.00"))
    services.points_earn_for_orders(customer_ids=[early.pk])  # earns and reverses in one sweep
    services.points_earn_for_orders(customer_ids=[late.pk])
    order_refund(actor=manager_user, order=order_late, amount=Decimal("40.00"))
    services.points_earn_for_orders(customer_ids=[late.pk])
    balances = dict(Member.objects.values_list("customer_id", "balance"))
    assert balances[early.pk] == balances[late.pk] == 60


# --- redemption and adjustments ----------------------------------------------------------------------
def test_redeem_spends_oldest_expiring_points_first(programme, sales_user):
    member = member_with_balance(0, owner=sales_user)
    customer = member.customer
    old = buy(customer, "100.00", days_ago=200)
    Member.objects.filter(pk=member.pk).update(joined_at=timezone.now() - timedelta(days=400))
    recent = buy(customer, "50.00", days_ago=1)
    services.points_earn_for_orders()
    services.points_redeem(actor=sales_user, member=member, points=120, reason="coffee")
    lots = dict(PointsEntry.objects.filter(kind="earn").values_list("order_id", "remaining"))
    assert lots == {old.pk: 0, recent.pk: 30}
    member.refresh_from_db()
    assert member.balance == 30
    assert AuditEvent.objects.filter(action="loyalty.points_redeemed", target_id=str(member.pk)).exists()


@pytest.mark.parametrize("points", [0, -5, 10**9, "12", 1.5, True])
def test_bad_redemptions_write_nothing(programme, sales_user, points):
    member = member_with_balance(100, owner=sales_user)
    before = PointsEntry.objects.count()
    with pytest.raises(ValidationError) as error:
        services.points_redeem(actor=sales_user, member=member, points=points)
    assert "points" in error.value.message_dict
    assert PointsEntry.objects.count() == before
    member.refresh_from_db()
    assert member.balance == 100


def test_redeeming_more_than_the_balance_or_while_suspended_writes_nothing(
    programme, sales_user, manager_user
):
    member = member_with_balance(100, owner=sales_user)
    with pytest.raises(ValidationError, match="Only 100 points"):
        services.points_redeem(actor=sales_user, member=member, points=101)
    services.member_set_status(actor=manager_user, member=member, status="suspended")
    with pytest.raises(ApplicationError):
        services.points_redeem(actor=sales_user, member=member, points=10)
    assert PointsEntry.objects.filter(kind="redeem").count() == 0
    member.refresh_from_db()
    assert member.balance == 100


def test_a_retried_redemption_with_the_same_key_spends_once(programme, sales_user):
    member = member_with_balance(100, owner=sales_user)
    first = services.points_redeem(actor=sales_user, member=member, points=40, source_key="voucher:1")
    again = services.points_redeem(actor=sales_user, member=member, points=40, source_key="voucher:1")
    assert first.pk == again.pk
    member.refresh_from_db()
    assert member.balance == 60


def test_sales_cannot_touch_a_member_they_cannot_see(programme, sales_user, sales_user2):
    from django.core.exceptions import PermissionDenied

    member = member_with_balance(100, owner=sales_user2)
    with pytest.raises(PermissionDenied):
        services.points_redeem(actor=sales_user, member=member, points=10)
    with pytest.raises(PermissionDenied):
        services.points_adjust(actor=sales_user, member=member, points=10, reason="x")
    assert not PointsEntry.objects.filter(kind__in=["redeem", "adjust"], actor=sales_user).exists()


def test_adjustments_above_the_limit_need_a_manager(programme, sales_user, manager_user):
    member = member_with_balance(0, owner=sales_user)
    with pytest.raises(ValidationError, match="need a manager"):
        services.points_adjust(actor=sales_user, member=member, points=501, reason="goodwill")
    with pytest.raises(ValidationError, match="reason"):
        services.points_adjust(actor=sales_user, member=member, points=10, reason="  ")
    assert not PointsEntry.objects.filter(member=member).exists()
    assert not AuditEvent.objects.filter(action="loyalty.points_adjusted").exists()
    services.points_adjust(actor=sales_user, member=member, points=500, reason="goodwill")
    services.points_adjust(actor=manager_user, member=member, points=2000, reason="complaint")
    with pytest.raises(ValidationError, match="Only 2500"):
        services.points_adjust(actor=manager_user, member=member, points=-2501, reason="typo")
    services.points_adjust(actor=manager_user, member=member, points=-2400, reason="typo")
    member.refresh_from_db()
    assert member.balance == 100 == ledger_sum(member)
    event = AuditEvent.objects.filter(action="loyalty.points_adjusted").order_by("-id").first()
    assert event.changes["reason"] == "typo" and event.actor == manager_user
    assert_consistent()


# --- expiry ------------------------------------------------------------------------------------------
def test_expiry_run_expires_each_lot_once(programme):
    customer = CustomerFactory()
    member = services.member_enrol(
        actor=None, customer=customer, joined_at=timezone.now() - timedelta(days=800)
    )
    buy(customer, "100", days_ago=500)
    buy(customer, "50", days_ago=380)
    buy(customer, "30", days_ago=10)
    services.points_earn_for_orders()
    member.refresh_from_db()
    assert member.balance == 180
    first = services.points_expire()
    assert first == {"members": 1, "entries": 2, "points": 150}
    assert services.points_expire() == {"members": 0, "entries": 0, "points": 0}
    member.refresh_from_db()
    assert member.balance == 30 == ledger_sum(member)
    assert sorted(PointsEntry.objects.filter(kind="expire").values_list("points", flat=True)) == [-100, -50]
    assert_consistent()


def test_a_redemption_cannot_spend_points_that_expired_but_were_not_swept_yet(programme):
    customer = CustomerFactory()
    member = services.member_enrol(
        actor=None, customer=customer, joined_at=timezone.now() - timedelta(days=800)
    )
    buy(customer, "100", days_ago=500)
    buy(customer, "30", days_ago=10)
    services.points_earn_for_orders()
    with pytest.raises(ValidationError, match="Only 30"):
        services.points_redeem(actor=None, member=member, points=120)
    member.refresh_from_db()
    assert member.balance == 130  # the refused redemption wrote nothing, not even the expiry
    services.points_redeem(actor=None, member=member, points=30)
    member.refresh_from_db()
    assert member.balance == 0 and PointsEntry.objects.filter(kind="expire").count() == 1
    assert_consistent()


def test_a_failure_part_way_through_the_expiry_run_then_a_rerun_expires_nothing_twice(programme, monkeypatch):
    """Injected failure (the worker-kill variant is in test_tasks.py): the second batch raises."""
    members = []
    for _ in range(3):
        customer = CustomerFactory()
        members.append(
            services.member_enrol(
                actor=None, customer=customer, joined_at=timezone.now() - timedelta(days=800)
            )
        )
        buy(customer, "100", days_ago=500)
    services.points_earn_for_orders()
    real = services._expire_due_for
    calls = {"n": 0}

    def failing(member_ids, today, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker died")
        return real(member_ids, today, **kwargs)

    monkeypatch.setattr(services, "_expire_due_for", failing)
    with pytest.raises(RuntimeError):
        services.points_expire(batch_size=1)
    assert PointsEntry.objects.filter(kind="expire").count() == 1
    monkeypatch.setattr(services, "_expire_due_for", real)
    assert services.points_expire(batch_size=1)["entries"] == 2
    assert services.points_expire(batch_size=1)["entries"] == 0
    assert PointsEntry.objects.filter(kind="expire").count() == 3
    assert all(m.balance == 0 for m in Member.objects.all())
    assert_consistent()


# --- tiers -------------------------------------------------------------------------------------------
def test_downgrade_waits_for_the_grace_period(programme):
    customer = CustomerFactory()
    buy(customer, "6000", days_ago=300)
    services.points_earn_for_orders()
    member = Member.objects.get(customer=customer)
    assert member.tier.name == "金卡"
    today = timezone.localdate()
    # 70 days later the order is out of the 12-month window: the clock starts, the tier stays.
    assert services.tiers_evaluate(today=today + timedelta(days=70))["waiting"] == 1
    member.refresh_from_db()
    assert member.tier.name == "金卡" and member.below_tier_since == today + timedelta(days=70)
    assert services.tiers_evaluate(today=today + timedelta(days=99))["downgrades"] == 0
    assert services.tiers_evaluate(today=today + timedelta(days=100))["downgrades"] == 1
    member.refresh_from_db()
    assert member.tier.name == "普通" and member.below_tier_since is None
    change = TierChange.objects.filter(member=member).order_by("-id").first()
    assert change.reason == "downgrade" and change.from_tier.name == "金卡"
    assert services.tiers_evaluate(today=today + timedelta(days=100)) == {
        "upgrades": 0,
        "downgrades": 0,
        "waiting": 0,
    }


def test_requalifying_clears_the_downgrade_clock(programme):
    customer = CustomerFactory()
    buy(customer, "1500", days_ago=360)
    services.points_earn_for_orders()
    member = Member.objects.get(customer=customer)
    services.tiers_evaluate(today=timezone.localdate() + timedelta(days=10))
    member.refresh_from_db()
    assert member.below_tier_since is not None
    buy(customer, "1500")
    services.tiers_evaluate(today=timezone.localdate() + timedelta(days=10))
    member.refresh_from_db()
    assert member.below_tier_since is None and member.tier.name == "银卡"


# --- check, tenants ----------------------------------------------------------------------------------
def test_balance_check_reports_a_tampered_balance(programme):
    member = member_with_balance(100)
    assert services.member_balances_check() == []
    Member.objects.filter(pk=member.pk).update(balance=90)
    [difference] = services.member_balances_check()
    assert (difference.member_id, difference.balance, difference.ledger, difference.lots) == (
        member.pk,
        90,
        100,
        100,
    )


def test_the_database_refuses_a_negative_balance(programme):
    member = member_with_balance(10)
    with pytest.raises(IntegrityError):
        Member.objects.filter(pk=member.pk).update(balance=-1)


def test_two_tenants_never_cross(programme, tenant, tenant_b):
    alpha_customer = CustomerFactory()
    buy(alpha_customer, "100")
    connection.set_tenant(tenant_b)
    try:
        Tier.objects.create(name="Base", rank=0, threshold=0)
        beta_customer = CustomerFactory()
        buy(beta_customer, "300")
        result = services.points_earn_for_orders()
        assert (result.enrolled, result.orders, result.points) == (1, 1, 300)
        assert list(Member.objects.values_list("customer_id", flat=True)) == [beta_customer.pk]
        assert services.points_expire(today=date(2100, 1, 1))["entries"] == 1
    finally:
        connection.set_tenant(tenant)
    assert not Member.objects.exists()
    assert services.points_earn_for_orders().points == 100
    assert list(Member.objects.values_list("customer_id", flat=True)) == [alpha_customer.pk]


# --- the SQL of the sweep agrees with the maths module ---------------------------------------------
@pytest.mark.parametrize("enrolled_by_the_sweep", [False, True])
@pytest.mark.parametrize("rounding", ["down", "nearest", "up"])
def test_the_sweep_earns_exactly_what_the_rules_say(programme, rounding, enrolled_by_the_sweep):
    """For a member enrolled before and for one the sweep enrols (created with its balance in the
    same pass, at the entry tier's multiplier)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from loyalty import rules

    rate, birthday_multiplier = Decimal("1.333"), Decimal("1.5")
    Programme.objects.filter(pk=1).update(
        rounding=rounding, points_per_unit=rate, birthday_multiplier=birthday_multiplier, expiry_months=1
    )
    Tier.objects.filter(rank=0).update(multiplier=Decimal("1.25"))
    shanghai = ZoneInfo("Asia/Shanghai")
    cases = [
        ("0.29", datetime(2026, 1, 31, 23, 30, tzinfo=shanghai)),  # floats get 0.29 * 100 wrong
        ("99.99", datetime(2024, 2, 29, 0, 10, tzinfo=shanghai)),  # a leap day, just after midnight
        ("0.01", datetime(2026, 3, 31, 12, 0, tzinfo=shanghai)),
        ("1234.56", datetime(2026, 5, 15, 12, 0, tzinfo=shanghai)),  # the birthday month
        ("7.00", datetime(2026, 7, 1, 0, 0, tzinfo=shanghai)),
    ]
    customer = CustomerFactory(birthday=date(1990, 5, 20))
    if not enrolled_by_the_sweep:
        services.member_enrol(actor=None, customer=customer, joined_at=datetime(2020, 1, 1, tzinfo=shanghai))
    orders = [buy(customer, amount, placed_at=placed) for amount, placed in cases]
    with timezone.override(shanghai):
        services.points_earn_for_orders()
        entries = {e.order_id: e for e in PointsEntry.objects.filter(kind="earn")}
        for order, (amount, placed) in zip(orders, cases, strict=True):
            local = timezone.localdate(placed)
            multiplier = rules.earn_multiplier(
                tier_multiplier=Decimal("1.25"),
                placed_on=local,
                birthday_month=5,
                birthday_multiplier=birthday_multiplier,
            )
            expected = rules.points_for_amount(
                Decimal(amount), rate=rate, multiplier=multiplier, rounding=rounding
            )
            if expected == 0:
                assert order.pk not in entries
                continue
            assert entries[order.pk].points == expected, (amount, rounding)
            assert entries[order.pk].expires_on == rules.lot_expiry(local, mode="months", months=1)
    assert_consistent()


def test_the_tier_evaluation_in_sql_decides_what_the_rules_say(programme):
    """`tiers_evaluate` computes qualification and the grace-period decision in SQL; on random
    members (tiers, downgrade clocks, orders in and out of the 12-month window, refunds, a suspended
    member) over several evaluation days, every member ends where `rules.qualify` +
    `rules.evaluate` say, with one history row per change."""
    import random

    from loyalty import rules
    from loyalty.selectors import qualifying_values

    rng = random.Random(20261204)
    tiers = list(Tier.objects.order_by("rank"))
    by_rank = {tier.rank: tier for tier in tiers}
    rank_of = {tier.pk: tier.rank for tier in tiers}
    thresholds = [(tier.rank, tier.threshold) for tier in tiers]
    today = timezone.localdate()
    for index in range(60):
        customer = CustomerFactory()
        tier = rng.choice([None, *tiers])
        Member.objects.create(
            customer=customer,
            number=services.member_number_for(customer.pk),
            status="suspended" if index % 17 == 0 else "active",
            joined_at=timezone.now() - timedelta(days=900),
            tier=tier,
            below_tier_since=rng.choice([None, today - timedelta(days=rng.randrange(0, 60))]),
        )
        for _ in range(rng.randrange(0, 4)):
            total = Decimal(rng.choice(["0", "300", "999.99", "1000", "4999.99", "5000", "12000", "21000"]))
            refunded = rng.choice([Decimal("0"), total / 2, total]) if total else Decimal("0")
            buy(customer, total, days_ago=rng.uniform(0, 500), refunded_total=refunded)
    Tier.objects.filter(rank=0).update(threshold=Decimal("100"))  # some qualify for no tier at all
    for tier in tiers:
        tier.refresh_from_db()
    thresholds = [(tier.rank, tier.threshold) for tier in tiers]
    for days_on, grace in ((0, 30), (20, 30), (45, 10), (400, 0)):
        day = today + timedelta(days=days_on)
        Programme.objects.filter(pk=1).update(tier_grace_days=grace)
        values = qualifying_values(today=day)
        before = {m.pk: m for m in Member.objects.all()}
        expected = {}
        for pk, member in before.items():
            if member.status != "active":
                expected[pk] = (member.tier_id, member.below_tier_since, None)
                continue
            decision = rules.evaluate(
                current=rank_of.get(member.tier_id),
                qualified=rules.qualify(values[pk], thresholds),
                below_since=member.below_tier_since,
                today=day,
                grace_days=grace,
            )
            tier_id = by_rank[decision.rank].pk if decision.rank is not None else None
            expected[pk] = (tier_id, decision.below_since, decision.change)
        changes_before = TierChange.objects.count()
        counts = services.tiers_evaluate(today=day)
        after = {m.pk: (m.tier_id, m.below_tier_since) for m in Member.objects.all()}
        assert after == {pk: (tier_id, since) for pk, (tier_id, since, _c) in expected.items()}, day
        changes = [c for _t, _s, c in expected.values() if c]
        assert counts["upgrades"] == changes.count("upgrade")
        assert counts["downgrades"] == changes.count("downgrade")
        assert counts["waiting"] == sum(
            1 for pk, (_t, since, c) in expected.items() if since and before[pk].status == "active"
        )
        history = TierChange.objects.order_by("id")[changes_before:]
        assert sorted((h.member_id, h.reason, h.to_tier_id) for h in history) == sorted(
            (pk, c, tier_id) for pk, (tier_id, _s, c) in expected.items() if c
        )
        assert all(h.qualifying_value == values[h.member_id] for h in history)
    assert len({c for _t, _s, c in expected.values()}) > 1  # the data did move members


def test_owners_are_notified_30_days_before_points_expire_once(programme, sales_user):
    from crm.notifications.models import Notification

    customer = CustomerFactory(owner=sales_user, name="Expiring Member")
    member = services.member_enrol(
        actor=None, customer=customer, joined_at=timezone.now() - timedelta(days=800)
    )
    buy(customer, "100", days_ago=400)  # expires 12 months after: about 35 days ago
    services.points_earn_for_orders()
    lot = PointsEntry.objects.get(member=member, kind="earn")
    orphan = member_with_balance(0)
    buy(orphan.customer, "10", days_ago=0)
    Member.objects.filter(pk=orphan.pk).update(joined_at=timezone.now() - timedelta(days=1))
    services.points_earn_for_orders()
    today = lot.expires_on - timedelta(days=30)
    PointsEntry.objects.filter(kind="earn").update(expires_on=lot.expires_on)
    assert services.points_expiry_reminders(today=today) == 1  # the member without an owner: nobody
    assert services.points_expiry_reminders(today=today) == 0  # the nightly rerun notifies nobody twice
    [notification] = Notification.objects.filter(kind="loyalty.points_expiring")
    assert notification.recipient_id == sales_user.pk and "Expiring Member" in notification.title
    assert notification.url.endswith(f"/loyalty/members/{member.pk}/")
    assert services.points_expiry_reminders(today=today + timedelta(days=1)) == 0


# --- the public ledger primitives (used by rewards and referrals) -----------------------------------
@pytest.mark.parametrize("points", [0, -5, True, 2.5])
def test_credit_adds_a_positive_whole_number_only(programme, points):
    from django.db import transaction

    member = member_with_balance(10)
    with transaction.atomic(), pytest.raises(ValueError):
        services.credit(services.lock_member(member), kind="bonus", points=points, source="rule")
    with transaction.atomic(), pytest.raises(ValueError):
        services.credit(services.lock_member(member), kind="redeem", points=5, source="rule")
    member.refresh_from_db()
    assert member.balance == 10 and PointsEntry.objects.filter(member=member).count() == 1


def test_debit_is_where_a_balance_is_kept_from_going_negative(programme):
    """Every spending path (redemption, deduction, voucher) ends in `debit`, which refuses more than
    the balance and writes nothing; only a refund may record a shortfall instead."""
    from django.db import transaction

    member = member_with_balance(30)
    with transaction.atomic(), pytest.raises(ValidationError, match="Only 30 points"):
        services.debit(services.lock_member(member), kind="redeem", points=31, source="redemption")
    assert PointsEntry.objects.filter(member=member).count() == 1
    with transaction.atomic():
        entry = services.debit(
            services.lock_member(member), kind="reverse", points=45, source="refund", allow_shortfall=True
        )
    assert (entry.points, entry.shortfall, entry.balance_after) == (-30, 15, 0)
    member.refresh_from_db()
    assert member.balance == 0 == ledger_sum(member)
    assert_consistent()
