"""Figures for the start page. Reads only, and only through the other apps' selectors (never their
models): every figure respects what the user may see because those selectors do.

Later apps add their figures here the same way: a selector in their own app (e.g.
`loyalty.selectors.points_figures(user=...)`), called from `dashboard_context`.
"""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from crm.accounts.models import User
from customers.selectors import customer_figures, monthly_revenue, periods_figures

from .periods import Period


def change_percent(current: Decimal | int, previous: Decimal | int) -> float | None:
    if not previous:
        return None
    return round((float(current) - float(previous)) / float(previous) * 100, 1)


def dashboard_context(*, user: User) -> dict:
    """The start page's figures: the last 30 days (today included, in the current time zone, as the
    reports' "Last 30 days") against the 30 before, the customers, revenue by month. Served through
    the reports' cache (dashboards.reports, "home"), which calls this."""
    zone = timezone.get_current_timezone()
    today = timezone.localdate()
    current, previous = periods_figures(
        user=user,
        windows=[
            Period(today - timedelta(days=29), today).bounds(zone),
            Period(today - timedelta(days=59), today - timedelta(days=30)).bounds(zone),
        ],
    )
    return {
        "current": current,
        "previous": previous,
        "revenue_change": change_percent(current.revenue, previous.revenue),
        "orders_change": change_percent(current.orders, previous.orders),
        "customers": customer_figures(user=user),
        "monthly": monthly_revenue(user=user),
    }
