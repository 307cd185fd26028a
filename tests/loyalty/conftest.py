"""Helpers for the loyalty tests: a programme with four tiers, members with paid orders."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from loyalty.models import Programme, Tier
from loyalty.services import member_enrol, programme_get
from tests.factories import CustomerFactory, OrderFactory

TIERS = [
    ("普通", 0, "0", "1"),
    ("银卡", 1, "1000", "1.2"),
    ("金卡", 2, "5000", "1.5"),
    ("钻石", 3, "20000", "2"),
]


@pytest.fixture
def programme(tenant) -> Programme:
    programme = programme_get()
    Programme.objects.filter(pk=programme.pk).update(
        auto_enrol=True, expiry_mode="months", expiry_months=12, adjust_limit=500, tier_grace_days=30
    )
    for name, rank, threshold, multiplier in TIERS:
        Tier.objects.create(
            name=name, rank=rank, threshold=Decimal(threshold), multiplier=Decimal(multiplier)
        )
    programme.refresh_from_db()
    return programme


def buy(customer, amount="100.00", days_ago: float = 0, **extra):
    placed_at = extra.pop("placed_at", None) or timezone.now() - timedelta(days=days_ago)
    return OrderFactory(
        customer=customer,
        placed_at=placed_at,
        total=Decimal(str(amount)),
        **extra,
    )


def member_with_balance(points: int, *, owner=None, **customer_fields):
    """An enrolled member whose balance is `points` (one adjustment lot)."""
    from loyalty.models import PointsEntry
    from loyalty.services import credit, lock_member

    customer = CustomerFactory(owner=owner, **customer_fields)
    member = member_enrol(actor=None, customer=customer)
    if points:
        with transaction.atomic():
            credit(
                lock_member(member),
                kind=PointsEntry.Kind.ADJUST,
                points=points,
                source="user",
                reason="test",
            )
    member.refresh_from_db()
    return member
