"""The earning sweep's set-based steps give what the programme's rules say: the first-purchase bonus
(once per member, whichever way the member joined) and the refund reversals written per batch of
members, which must leave exactly the ledger that one `points_reverse` per order leaves."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from customers.services import order_refund
from loyalty import services
from loyalty.models import Member, PointsEntry, Programme
from tests.factories import CustomerFactory

from .conftest import buy

SIGNUP, FIRST = 50, 20


def entries(member) -> list[tuple]:
    return list(
        PointsEntry.objects.filter(member=member)
        .order_by("id")
        .values_list("kind", "points", "balance_after", "source_key")
    )


@pytest.fixture
def bonuses(programme) -> Programme:
    Programme.objects.filter(pk=programme.pk).update(signup_bonus=SIGNUP, first_purchase_bonus=FIRST)
    programme.refresh_from_db()
    return programme


def test_the_first_purchase_bonus_goes_once_to_each_member_whichever_way_they_joined(bonuses):
    # Enrolled by the sweep at their first paid order: sign-up, earnings and the bonus in one go.
    newcomer = CustomerFactory()
    buy(newcomer, "100.00", days_ago=2)
    buy(newcomer, "30.00", days_ago=1)
    # Enrolled by staff before buying (sign-up bonus then), first order later: the bonus raises
    # the stored balance.
    enrolled = services.member_enrol(actor=None, customer=CustomerFactory())
    buy(enrolled.customer, "40.00")
    # Enrolled by staff and already given the bonus under its key (e.g. by hand, or a sweep that
    # crashed after writing it): never a second one.
    keyed = services.member_enrol(actor=None, customer=CustomerFactory())
    with transaction.atomic():
        services.credit(
            services.lock_member(keyed),
            kind="bonus",
            points=FIRST,
            source="rule",
            source_key=f"first_purchase:{keyed.pk}",
            reason="first_purchase",
        )
    buy(keyed.customer, "10.00")
    # Many new members in one batch: one bonus each.
    crowd = [CustomerFactory() for _ in range(25)]
    for customer in crowd:
        buy(customer, "5.00", days_ago=1)

    result = services.points_earn_for_orders()
    assert result.bonuses == 2 + 25  # newcomer, enrolled, the crowd; not `keyed`

    member = Member.objects.get(customer=newcomer)
    assert member.balance == SIGNUP + 100 + 30 + FIRST
    final = member.balance
    assert entries(member) == [
        ("bonus", SIGNUP, SIGNUP, f"signup:{member.pk}"),
        ("earn", 100, SIGNUP + 100, ""),
        ("earn", 30, SIGNUP + 130, ""),
        ("bonus", FIRST, final, f"first_purchase:{member.pk}"),
    ]
    enrolled.refresh_from_db()
    assert enrolled.balance == SIGNUP + 40 + FIRST
    assert entries(enrolled)[-2:] == [
        ("earn", 40, SIGNUP + 40, ""),
        ("bonus", FIRST, SIGNUP + 40 + FIRST, f"first_purchase:{enrolled.pk}"),
    ]
    keyed.refresh_from_db()
    assert keyed.balance == SIGNUP + FIRST + 10
    assert PointsEntry.objects.filter(member=keyed, kind="bonus", reason="first_purchase").count() == 1
    for customer in crowd:
        one = Member.objects.get(customer=customer)
        assert one.balance == SIGNUP + 5 + FIRST
        assert PointsEntry.objects.filter(member=one, source_key=f"first_purchase:{one.pk}").count() == 1

    # A member who earned before the programme had the bonus: their next order is not a first one.
    Programme.objects.filter(pk=bonuses.pk).update(first_purchase_bonus=0)
    veteran = CustomerFactory()
    buy(veteran, "15.00", days_ago=3)
    services.points_earn_for_orders()
    Programme.objects.filter(pk=bonuses.pk).update(first_purchase_bonus=FIRST)
    buy(veteran, "15.00")
    assert services.points_earn_for_orders(customer_ids=[veteran.pk]).bonuses == 0
    assert Member.objects.get(customer=veteran).balance == SIGNUP + 30

    # A later order of a member who earned before: no bonus, in any batch size, in any sweep.
    buy(enrolled.customer, "60.00")
    buy(newcomer, "7.00")
    assert services.points_earn_for_orders(batch_size=1).bonuses == 0
    assert services.points_earn_for_orders().orders == 0
    enrolled.refresh_from_db()
    assert enrolled.balance == SIGNUP + 40 + FIRST + 60
    assert services.member_balances_check() == []


def _ledger() -> tuple:
    rows = PointsEntry.objects.order_by("member_id", "order_id", "kind", "source_key").values_list(
        "member_id", "kind", "points", "balance_after", "remaining", "shortfall", "source", "source_key",
        "order_id", "amount", "reason",
    )  # fmt: skip
    return list(rows), dict(Member.objects.values_list("pk", "balance"))


def _one_by_one() -> int:
    """The reversals as `points_reverse_for_orders` wrote them before it worked in batches: each due
    order through `points_reverse` (the member locked, the order's own lot first, then FIFO)."""
    count = 0
    earned = PointsEntry.objects.filter(kind="earn", order__refunded_total__gt=0).select_related("order")
    for entry in earned.order_by("member_id", "order_id"):
        order = entry.order
        already = sum(
            -points + shortfall
            for points, shortfall in PointsEntry.objects.filter(order=order, kind="reverse").values_list(
                "points", "shortfall"
            )
        )
        due = services.rules.reversal_due(
            earned=entry.points, total=order.total, refunded=order.refunded_total, already_reversed=already
        )
        if due > 0:
            services.points_reverse(
                actor=None,
                member=Member(pk=entry.member_id),
                points=due,
                source=PointsEntry.Source.REFUND,
                source_key=f"order:{order.pk}:refunded:{order.refunded_total}",
                reason="refund",
                order_id=order.pk,
                amount=order.refunded_total,
            )
            count += 1
    return count


class _Undo(Exception):
    pass


def test_refund_reversals_in_batches_leave_the_ledger_one_by_one_leaves(programme, manager_user, monkeypatch):
    def customer_with(*amounts):
        customer = CustomerFactory()
        return customer, [buy(customer, amount, days_ago=10 - n) for n, amount in enumerate(amounts)]

    spender, (first, second) = customer_with("100.00", "50.00")
    twice, (twice_order,) = customer_with("80.00")
    # The refunded order's own lot goes first, although an older lot would expire before it.
    own_lot, (_older, newer) = customer_with("60.00", "40.00")
    adjusted, (big,) = customer_with("200.00")
    services.points_earn_for_orders()
    # Points spent before the refunds: the reversals take from other lots, then record a shortfall.
    services.points_redeem(
        actor=manager_user, member=Member.objects.get(customer=spender), points=120, source_key="r1"
    )
    services.points_adjust(
        actor=manager_user, member=Member.objects.get(customer=adjusted), points=30, reason="goodwill"
    )
    order_refund(actor=manager_user, order=first, amount=Decimal("100.00"))
    order_refund(actor=manager_user, order=second, amount=Decimal("25.00"))
    order_refund(actor=manager_user, order=twice_order, amount=Decimal("30.00"))
    order_refund(actor=manager_user, order=big, amount=Decimal("199.99"))
    order_refund(actor=manager_user, order=newer, amount=Decimal("40.00"))
    # One reversal already written (an earlier sweep), then the order refunded further.
    services.points_earn_for_orders(customer_ids=[twice.pk])
    order_refund(actor=manager_user, order=twice_order, amount=Decimal("20.00"))

    try:
        with transaction.atomic():
            reference_count = _one_by_one()
            reference = _ledger()
            raise _Undo
    except _Undo:
        pass
    monkeypatch.setattr(services, "REVERSE_BATCH", 2)  # several batches for four members
    assert services.points_reverse_for_orders() == reference_count == 5
    assert _ledger() == reference
    assert services.points_reverse_for_orders() == 0  # keyed: never twice
    assert services.member_balances_check() == []
    spent = PointsEntry.objects.get(order=first, kind="reverse")
    assert (spent.points, spent.shortfall) == (-30, 70)  # 30 left in the second order's lot
    assert timezone.now() >= spent.occurred_at
    lots = dict(
        PointsEntry.objects.filter(member__customer=own_lot, kind="earn").values_list("order", "remaining")
    )
    assert lots == {_older.pk: 60, newer.pk: 0}
