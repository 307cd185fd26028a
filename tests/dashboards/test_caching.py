"""Report figures are cached, and right at once after the data under them changes: an order import,
an order written through the service; a change that bypasses the services (no signal) is not seen
until then, which shows the cache is used. Cached figures never cross tenants or sales users."""

import re
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from customers.services import order_create
from tests.customers.test_import_services import run_import
from tests.factories import CustomerFactory, OrderFactory

YEAR_2024 = {"range": "custom", "from": "2024-01-01", "to": "2024-12-31"}
ORDERS = (
    "订单号,下单时间,手机,姓名,商品名称,SKU,数量,单价,金额,渠道\n"
    "SO-1,2024-03-01 10:00,13800138000,王小明,茶叶,T-1,2,50,120,线上\n"
    "SO-3,2024-04-02,13900139000,李雷,茶壶,P-1,1,300,,\n"
)


def _orders(client, params=YEAR_2024) -> str:
    html = client.get("/dashboards/", params).content.decode()
    return re.search(r'data-figure="orders">\s*([^<\s]+)', html).group(1)


def test_figures_are_right_right_after_an_import_and_an_order(
    tenant, manager_user, client_for, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path
    client = client_for(manager_user)
    assert _orders(client) == "0"
    with django_capture_on_commit_callbacks(execute=True):
        job = run_import(manager_user, ORDERS)
    assert job.result["written"]["orders_created"] == 2
    assert _orders(client) == "2"  # the import finished: no stale figure

    OrderFactory(customer=CustomerFactory(), placed_at=timezone.now().replace(year=2024))  # no signal
    assert _orders(client) == "2", "the cached figure is used until the data changes through a service"
    customer = CustomerFactory()
    with django_capture_on_commit_callbacks(execute=True):
        order_create(
            actor=manager_user,
            customer=customer,
            number="SO-NEW",
            placed_at=timezone.now().replace(year=2024, month=6, day=1),
            lines=[{"product_name": "茶叶", "quantity": Decimal("1"), "unit_price": Decimal("10")}],
        )
    assert _orders(client) == "4"  # the order written through the service, and the one before it


def test_cached_figures_never_cross_tenants_or_sales_users(
    tenant, tenant_b, manager_user, sales_user, client_for
):
    OrderFactory(customer=CustomerFactory(owner=None), placed_at=timezone.now().replace(year=2024, month=5))
    manager = client_for(manager_user)
    assert _orders(manager) == "1"
    assert _orders(client_for(sales_user)) == "0"  # not theirs: a different cache entry
    from crm.accounts.models import User

    connection.set_tenant(tenant_b)
    beta_manager = User.objects.get(email=f"manager@{tenant_b.slug}.test")
    beta = client_for(beta_manager, tenant_b)
    assert _orders(beta) == "0"
    connection.set_tenant(tenant)


def _team_interactions(client, rep) -> str:
    html = client.get("/dashboards/team/", {"range": "30d"}).content.decode()
    pattern = rf'data-rep="{rep.pk}">.*?data-cell="interactions">\s*([^<\s]+)'
    return re.search(pattern, html, re.DOTALL).group(1)


def _on_time(client) -> str:
    html = client.get("/dashboards/", {"range": "30d"}).content.decode()
    return re.search(r'data-figure="followups_on_time">\s*([^<]+?)\s*<', html).group(1)


def test_activity_figures_are_right_right_after_a_call_or_a_follow_up_and_the_team_page_is_cached(
    tenant, manager_user, sales_user, client_for, django_capture_on_commit_callbacks
):
    from interactions.followups.models import FollowUp
    from interactions.followups.services import followup_complete, followup_create
    from interactions.models import Interaction
    from interactions.services import interaction_log

    customer = CustomerFactory(owner=sales_user)
    client = client_for(manager_user)
    assert _team_interactions(client, sales_user) == "0"
    with django_capture_on_commit_callbacks(execute=True):
        interaction_log(
            actor=sales_user,
            customer=customer,
            channel="phone",
            direction="out",
            occurred_at=timezone.now() - timezone.timedelta(hours=1),
        )
    assert _team_interactions(client, sales_user) == "1"  # logged a call: the cached team page is replaced
    # A change no service made (no row signal): the cached page is what is shown.
    Interaction.objects.filter(customer=customer).update(channel="email")
    Interaction.objects.bulk_create(
        [
            Interaction(
                customer=customer,
                author=sales_user,
                channel="phone",
                direction="in",
                occurred_at=timezone.now(),
            )
        ]
    )
    assert _team_interactions(client, sales_user) == "1", "the team page is cached until the data changes"

    assert _on_time(client) == "–"  # none done yet
    with django_capture_on_commit_callbacks(execute=True):
        followup = followup_create(
            actor=manager_user,
            customer=customer,
            assignee=sales_user,
            due_at=timezone.now() + timezone.timedelta(days=1),
            title="call back",
        )
        followup_complete(actor=sales_user, followup=FollowUp.objects.get(pk=followup.pk))
    assert _on_time(client) == "100.0%"  # done on time, shown at once
