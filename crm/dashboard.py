"""Figures for the start page. Reads only; every figure respects what the user may see.

The figures aggregate orders over a period with the `placed_at` / `(customer, placed_at)` indexes and
read per-customer totals from the stored order figures on Customer, so the page stays quick at a
million orders. The monthly series is cached for five minutes per tenant and user scope (cache keys
are tenant-scoped by the cache's key function).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.cache import cache
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMonth
from django.urls import reverse
from django.utils import timezone

from crm.accounts.models import User
from crm.accounts.permissions import visible_to
from customers.models import Customer, Order

PURCHASE_STATUSES = [str(s) for s in Order.PURCHASE_STATUSES]


@dataclass(frozen=True)
class PeriodFigures:
    revenue: Decimal
    orders: int
    customers: int

    @property
    def average_order_value(self) -> Decimal | None:
        return (self.revenue / self.orders).quantize(Decimal("0.01")) if self.orders else None


def _orders_for(user: User):
    return visible_to(Order.objects.filter(customer__deleted_at__isnull=True), user)


def period_figures(*, user: User, start: datetime, end: datetime) -> PeriodFigures:
    row = (
        _orders_for(user)
        .filter(placed_at__gte=start, placed_at__lt=end, status__in=PURCHASE_STATUSES)
        .aggregate(
            total=Sum("total"),
            refunded=Sum("refunded_total"),
            orders=Count("id"),
            customers=Count("customer_id", distinct=True),
        )
    )
    revenue = (row["total"] or Decimal("0")) - (row["refunded"] or Decimal("0"))
    return PeriodFigures(revenue=revenue, orders=row["orders"], customers=row["customers"])


def change_percent(current: Decimal | int, previous: Decimal | int) -> float | None:
    if not previous:
        return None
    return round((float(current) - float(previous)) / float(previous) * 100, 1)


def customer_figures(*, user: User) -> dict:
    customers = visible_to(Customer.objects.filter(deleted_at__isnull=True), user)
    month_start = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    row = customers.aggregate(
        total=Count("id"),
        buyers=Count("id", filter=Q(orders_count__gte=1)),
        repeat_buyers=Count("id", filter=Q(orders_count__gte=2)),
        new_this_month=Count("id", filter=Q(created_at__gte=month_start)),
    )
    row["repeat_rate"] = round(row["repeat_buyers"] / row["buyers"] * 100, 1) if row["buyers"] else None
    # The customer list behind each figure (the same conditions through the list's filters).
    base = reverse("customers:list")
    row["links"] = {
        "total": base,
        "buyers": f"{base}?orders_min=1",
        "repeat_buyers": f"{base}?orders_min=2",
        "new_this_month": f"{base}?created_from={month_start.date().isoformat()}",
    }
    return row


def monthly_revenue(*, user: User, months: int = 12) -> list[dict]:
    scope = "all" if user.sees_all_customers else f"user-{user.pk}"
    key = f"dashboard:monthly-revenue:{scope}:{months}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    now = timezone.localtime()
    start = (
        now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) - timedelta(days=31 * (months - 1))
    ).replace(day=1)
    rows = (
        _orders_for(user)
        .filter(placed_at__gte=start, status__in=PURCHASE_STATUSES)
        .annotate(month=TruncMonth("placed_at"))
        .values("month")
        .annotate(total=Sum("total"), refunded=Sum("refunded_total"), orders=Count("id"))
        .order_by("month")
    )
    series = [
        {
            "month": row["month"].strftime("%Y-%m"),
            "revenue": float((row["total"] or 0) - (row["refunded"] or 0)),
            "orders": row["orders"],
        }
        for row in rows
    ]
    cache.set(key, series, 300)
    return series


def dashboard_context(*, user: User) -> dict:
    now = timezone.now()
    current = period_figures(user=user, start=now - timedelta(days=30), end=now)
    previous = period_figures(user=user, start=now - timedelta(days=60), end=now - timedelta(days=30))
    return {
        "current": current,
        "previous": previous,
        "revenue_change": change_percent(current.revenue, previous.revenue),
        "orders_change": change_percent(current.orders, previous.orders),
        "customers": customer_figures(user=user),
        "monthly": monthly_revenue(user=user),
    }
