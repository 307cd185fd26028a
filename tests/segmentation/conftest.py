"""Helpers for the segmentation tests: customers with purchases on given days before now."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from tests.factories import CustomerFactory, OrderFactory


def buy(customer, days_ago: float, amount: str | Decimal = "100.00", **extra):
    """One paid order `days_ago` days before now."""
    return OrderFactory(
        customer=customer,
        placed_at=timezone.now() - timedelta(days=days_ago),
        total=Decimal(str(amount)),
        **extra,
    )


def customer_with_orders(days_ago: list[float], amount: str = "100.00", **customer_fields):
    customer = CustomerFactory(**customer_fields)
    for days in days_ago:
        buy(customer, days, amount)
    return customer


def english(user):
    """Pages follow the user's language (the test tenants default to Chinese); assert on English text."""
    type(user).objects.filter(pk=user.pk).update(language="en")
    user.language = "en"
    return user
