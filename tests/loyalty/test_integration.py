"""Loyalty on the customer operations: merge and undo join and split the ledgers; customer changes
queue the earning sweep; re-importing the same orders earns nothing more."""

from django.utils import timezone

from customers.dedupe.services import customer_merge, customer_merge_undo
from loyalty import services
from loyalty.models import Member, PointsEntry, TierChange
from tests.factories import CustomerFactory

from .conftest import buy, member_with_balance


def test_merging_two_members_joins_the_ledgers_and_undo_splits_them(programme, manager_user):
    survivor = member_with_balance(100, name="Same Person")
    merged = member_with_balance(0, name="Same Person")
    buy(merged.customer, "6000")
    services.points_earn_for_orders()
    merged.refresh_from_db()
    assert merged.tier.name == "金卡" and merged.balance == 6000
    result = customer_merge(actor=manager_user, survivor=survivor.customer, merged=merged.customer)
    survivor.refresh_from_db()
    merged.refresh_from_db()
    assert (survivor.balance, merged.balance, merged.status) == (6100, 0, "closed")
    assert survivor.tier.name == "金卡"  # the orders came along: re-evaluated at once
    assert TierChange.objects.filter(member=survivor, reason="merge").exists()
    assert PointsEntry.objects.filter(member=merged).count() == 0
    assert services.member_balances_check() == []
    # The joined ledger earns nothing twice after the orders moved.
    assert services.points_earn_for_orders().orders == 0
    customer_merge_undo(
        actor=manager_user, merged=result.merged if hasattr(result, "merged") else merged.customer
    )
    survivor.refresh_from_db()
    merged.refresh_from_db()
    assert (survivor.balance, merged.balance, merged.status) == (100, 6000, "active")
    assert survivor.tier.rank == 0
    assert services.member_balances_check() == []


def test_merging_into_a_non_member_moves_the_membership(programme, manager_user):
    survivor = CustomerFactory(name="Same")
    merged = member_with_balance(300, name="Same")
    result = customer_merge(actor=manager_user, survivor=survivor, merged=merged.customer)
    merged.refresh_from_db()
    assert merged.customer_id == survivor.pk and merged.balance == 300
    customer_merge_undo(
        actor=manager_user, merged=result.merged if hasattr(result, "merged") else merged.customer
    )
    merged.refresh_from_db()
    assert merged.customer_id != survivor.pk


def test_an_order_recorded_through_the_service_queues_the_sweep_on_commit(
    programme, manager_user, django_capture_on_commit_callbacks, monkeypatch
):
    """The receiver sends the task (to Redis); here we run what it would run, in this process."""
    from customers.services import order_create
    from loyalty import tasks

    sent = []
    monkeypatch.setattr(tasks.points_earn_task, "delay", lambda **kwargs: sent.append(kwargs))
    customer = CustomerFactory()
    with django_capture_on_commit_callbacks(execute=True):
        order_create(
            actor=manager_user,
            customer=customer,
            number="LOY-1",
            placed_at=timezone.now(),
            lines=[{"product_name": "Tea", "quantity": 2, "unit_price": "25.00"}],
        )
    assert sent == [{"customer_ids": [customer.pk]}]
    tasks.points_earn_task(**sent[0])
    assert Member.objects.get(customer=customer).balance == 50


def test_reimporting_the_same_orders_earns_nothing_more(programme, manager_user, settings, tmp_path):
    from tests.customers.test_import_services import ORDERS, run_import, written

    settings.MEDIA_ROOT = tmp_path
    assert written(run_import(manager_user, ORDERS))["orders_created"] == 3
    first = services.points_earn_for_orders()
    assert (first.enrolled, first.orders, first.points) == (2, 3, 120 + 50 + 300)
    assert written(run_import(manager_user, ORDERS))["orders_created"] == 0
    assert services.points_earn_for_orders().orders == 0
    # The import path and a retried task path end in the same place.
    assert (
        services.points_earn_for_orders(
            customer_ids=list(Member.objects.values_list("customer_id", flat=True))
        ).orders
        == 0
    )
    assert sum(Member.objects.values_list("balance", flat=True)) == 470
    assert PointsEntry.objects.filter(kind="earn").count() == 3
    assert services.member_balances_check() == []
