from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from customers.selectors import customer_figures, monthly_revenue, period_figures
from dashboards.selectors import change_percent, dashboard_context
from tests.factories import CustomerFactory, OrderFactory


def _data(sales_user, sales_user2):
    now = timezone.now()
    mine = CustomerFactory(owner=sales_user, orders_count=2)
    theirs = CustomerFactory(owner=sales_user2, orders_count=1)
    CustomerFactory(owner=sales_user, orders_count=0)
    OrderFactory(customer=mine, total=Decimal("100.00"), placed_at=now - timedelta(days=3))
    OrderFactory(
        customer=mine,
        total=Decimal("50.00"),
        refunded_total=Decimal("20.00"),
        status="partially_refunded",
        placed_at=now - timedelta(days=5),
    )
    OrderFactory(customer=theirs, total=Decimal("400.00"), placed_at=now - timedelta(days=2))
    OrderFactory(
        customer=theirs, total=Decimal("999.00"), status="cancelled", placed_at=now - timedelta(days=2)
    )
    OrderFactory(customer=mine, total=Decimal("60.00"), placed_at=now - timedelta(days=40))
    return now


def test_revenue_is_net_of_refunds_and_skips_cancelled_orders(tenant, manager_user, sales_user, sales_user2):
    now = _data(sales_user, sales_user2)
    figures = period_figures(user=manager_user, start=now - timedelta(days=30), end=now)
    assert figures.revenue == Decimal("530.00")  # 100 + (50 - 20) + 400
    assert figures.orders == 3
    assert figures.customers == 2
    assert figures.average_order_value == Decimal("176.67")


def test_sales_figures_cover_only_their_own_customers(tenant, sales_user, sales_user2):
    now = _data(sales_user, sales_user2)
    figures = period_figures(user=sales_user, start=now - timedelta(days=30), end=now)
    assert figures.revenue == Decimal("130.00")
    row = customer_figures(user=sales_user)
    assert (row["total"], row["buyers"], row["repeat_buyers"], row["repeat_rate"]) == (2, 1, 1, 100.0)


def test_the_monthly_revenue_a_manager_caches_is_not_what_a_rep_gets(
    tenant, manager_user, sales_user, sales_user2
):
    _data(sales_user, sales_user2)
    everyone = monthly_revenue(user=manager_user)  # cached first
    own = monthly_revenue(user=sales_user)
    assert sum(month["revenue"] for month in everyone) == 590.0  # 100 + 30 + 400 + 60
    assert sum(month["revenue"] for month in own) == 190.0  # the rep's customer only
    assert monthly_revenue(user=sales_user) == own  # and the rep's own figures are cached apart


def test_period_comparison_and_empty_tenant(tenant, manager_user):
    assert change_percent(Decimal("150"), Decimal("100")) == 50.0
    assert change_percent(10, 0) is None
    context = dashboard_context(user=manager_user)
    assert context["current"].revenue == Decimal("0")
    assert context["current"].average_order_value is None
    assert context["customers"]["repeat_rate"] is None


def test_dashboard_page_shows_the_figures(client_for, manager_user, sales_user, sales_user2):
    _data(sales_user, sales_user2)
    page = client_for(manager_user).get("/").content.decode()
    assert 'data-figure="revenue">¥530.00<' in page
    assert 'data-figure="repeat-rate">50.0%<' in page  # 1 repeat buyer of 2 buyers
    assert "monthly-data" in page


def test_each_customer_figure_opens_the_list_of_exactly_those_customers(
    tenant, client_for, manager_user, sales_user, sales_user2
):
    import re
    from urllib.parse import urlsplit

    from django.http import QueryDict
    from django.urls import reverse

    from customers.forms import CustomerFilterForm
    from customers.selectors import customer_list
    from customers.services import customer_refresh_order_stats

    old = CustomerFactory(owner=sales_user)
    type(old).objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=70))
    buyers = [CustomerFactory(owner=owner) for owner in (sales_user, sales_user, sales_user2)]
    for index, customer in enumerate(buyers):
        for _ in range(index + 1):  # 1, 2 and 3 orders
            OrderFactory(customer=customer, total=Decimal("10.00"))
    customer_refresh_order_stats(customer_ids=[c.pk for c in buyers])

    for user in (manager_user, sales_user):
        figures = customer_figures(user=user)
        page = client_for(user).get(reverse("home")).content.decode()
        for key in ("total", "buyers", "repeat_buyers", "new_this_month"):
            link = figures["links"][key]
            assert f'href="{link}"' in page
            form = CustomerFilterForm(QueryDict(urlsplit(link).query), user=user)
            assert form.is_valid(), form.errors
            assert customer_list(user=user, filters=form.filters()).count() == figures[key], (user, key)
        listed = client_for(user).get(figures["links"]["repeat_buyers"]).content.decode()
        assert len(re.findall(r'data-customer="(\d+)"', listed)) == figures["repeat_buyers"]


def test_the_start_page_queries_do_not_grow_with_customers_and_orders(client_for, sales_user, sales_user2):
    """Figures are sums and counts in the database, whatever the number of customers and orders (the
    count itself is not pinned: other apps add their figures to this page)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _data(sales_user, sales_user2)
    for user in (sales_user, sales_user2):
        client = client_for(user)
        client.get("/")  # warm up (session, the cached monthly series is per user scope)
        with CaptureQueriesContext(connection) as few:
            client.get("/")
        for _ in range(15):
            OrderFactory(customer=CustomerFactory(owner=user), placed_at=timezone.now() - timedelta(days=1))
        with CaptureQueriesContext(connection) as many:
            client.get("/")
        assert len(many) == len(few), "\n".join(q["sql"][:150] for q in many.captured_queries)


def test_the_repeat_rate_caption_describes_the_rate_itself(client_for, manager_user, sales_user, sales_user2):
    """Issue 15: "74.4%" sat above "1,751 of 1,994 customers have bought" (87.8%). The caption under a
    figure names exactly its numerator and denominator: here 1 repeat buyer of 2 buying customers
    (50.0%), not 2 buyers of 3 customers, and it opens the list of the repeat buyers."""
    import re

    _data(sales_user, sales_user2)
    User = type(manager_user)
    User.objects.filter(pk=manager_user.pk).update(language="en")
    page = client_for(manager_user).get("/").content.decode()
    assert 'data-figure="repeat-rate">50.0%<' in page
    caption = re.search(r'data-testid="repeat-rate-caption">(.*?)</div>', page, re.S).group(1)
    assert "1 of 2 buying customers bought again" in caption
    assert 'data-drill="repeat_rate"' in caption and "have bought" not in caption


def test_revenue_by_month_covers_the_last_twelve_months_in_the_current_time_zone(tenant, manager_user):
    """Twelve calendar months up to this one, cut in the current time zone (the boundary orders at
    23:30 and 00:30 local), net of refunds; older orders, orders of binned customers and cancelled
    ones left out; months without purchases are not listed."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Shanghai")
    with timezone.override(zone):
        this_month = timezone.localdate().replace(day=1)
        first_month = this_month
        for _ in range(11):
            first_month = (first_month - timedelta(days=1)).replace(day=1)
        before = (first_month - timedelta(days=1)).replace(day=1)
        customer = CustomerFactory()
        binned = CustomerFactory(deleted_at=timezone.now())

        def at(day, hour, minute=0):
            return timezone.make_aware(
                timezone.datetime.combine(day, timezone.datetime.min.time()), zone
            ).replace(hour=hour, minute=minute)

        last_of_before = first_month - timedelta(days=1)
        OrderFactory(customer=customer, total=Decimal("1000.00"), placed_at=at(last_of_before, 23, 30))
        OrderFactory(customer=customer, total=Decimal("10.00"), placed_at=at(first_month, 0, 30))
        OrderFactory(
            customer=customer,
            total=Decimal("50.00"),
            refunded_total=Decimal("20.00"),
            status="partially_refunded",
            placed_at=at(this_month, 9),
        )
        OrderFactory(
            customer=customer, total=Decimal("5.00"), status="cancelled", placed_at=at(this_month, 9)
        )
        OrderFactory(customer=binned, total=Decimal("777.00"), placed_at=at(this_month, 10))
        series = monthly_revenue(user=manager_user)
        figures = period_figures(
            user=manager_user, start=at(this_month, 0), end=timezone.now() + timedelta(days=1)
        )
    assert before < first_month
    assert series == [
        {"month": first_month.strftime("%Y-%m"), "revenue": 10.0, "orders": 1},
        {"month": this_month.strftime("%Y-%m"), "revenue": 30.0, "orders": 1},
    ]
    assert (figures.revenue, figures.orders, figures.customers) == (Decimal("30.00"), 1, 1)  # not the binned
