"""Figures for the start page. Reads only, and only through the other apps' selectors (never their
models): every figure respects what the user may see because those selectors do.

Later apps add their figures here the same way: a selector in their own app (e.g.
`loyalty.selectors.points_figures(user=...)`), called from `dashboard_context`.
"""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from crm.accounts.models import User
from customers.selectors import customer_figures, monthly_revenue, period_figures


def change_percent(current: Decimal | int, previous: Decimal | int) -> float | None:
    if not previous:
        return None
    return round((float(current) - float(previous)) / float(previous) * 100, 1)


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
