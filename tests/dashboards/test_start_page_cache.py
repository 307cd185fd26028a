"""The start page's figures are kept in the reports' cache (dashboards.reports, "home", a daily
report): the same page again reads no order; an order, a new owner or a share through the services
shows at once; on a big company's first visit of a day the day before's figures are served at once,
labelled "as of", while one background refresh brings them up to date; entries never cross tenants
or sales users."""

import re
from datetime import timedelta
from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.accounts.models import User
from customers.services import customer_share, customer_update, customers_bulk_assign_owner, order_create
from dashboards.tasks import report_refresh_task
from tests.dashboards.test_stale_figures import SLOW, _rewrite
from tests.factories import CustomerFactory, OrderFactory

AS_OF = 'data-testid="figures-as-of"'


def _home(client) -> str:
    response = client.get("/")
    assert response.status_code == 200
    return response.content.decode()


def _revenue(page: str) -> str:
    return re.search(r'data-figure="revenue">\s*([^<\s]+)', page).group(1)


def _customers(page: str) -> str:
    return re.search(r'data-drill="total">\s*([^<\s]+)', page).group(1)


def _order(actor, customer, number: str):
    """An order of today through the service: the data version is replaced when it commits."""
    return order_create(
        actor=actor,
        customer=customer,
        number=number,
        placed_at=timezone.now(),
        lines=[{"product_name": "茶叶", "quantity": Decimal("1"), "unit_price": Decimal("10")}],
    )


def test_the_start_page_is_kept_until_the_data_changes_then_right_at_once(
    tenant, manager_user, client_for, django_capture_on_commit_callbacks
):
    manager = client_for(manager_user)
    OrderFactory(customer=CustomerFactory(), total=Decimal("100.00"), placed_at=timezone.now())
    assert _revenue(_home(manager)) == "¥100.00"
    OrderFactory(customer=CustomerFactory(), total=Decimal("7.00"), placed_at=timezone.now())  # no signal
    with CaptureQueriesContext(connection) as captured:
        page = _home(manager)
    assert _revenue(page) == "¥100.00", "the kept figures, until the data changes through a service"
    assert not [q for q in captured if "customers_order" in q["sql"]], "no order read again"
    with django_capture_on_commit_callbacks(execute=True):
        _order(manager_user, CustomerFactory(), "SO-1")
    page = _home(manager)
    assert _revenue(page) == "¥117.00" and AS_OF not in page  # quick to compute: fresh at once


def test_a_big_companys_first_visit_of_a_day_gets_the_day_befores_figures_at_once_then_todays(
    tenant, manager_user, client_for, sent, django_capture_on_commit_callbacks
):
    manager = client_for(manager_user)
    OrderFactory(customer=CustomerFactory(), total=Decimal("100.00"), placed_at=timezone.now())
    assert _revenue(_home(manager)) == "¥100.00"
    # Computed yesterday (slowly), at today's data version: stale by its day alone.
    _rewrite("home", computed_at=timezone.now() - timedelta(days=1), seconds=SLOW)
    OrderFactory(customer=CustomerFactory(), total=Decimal("5.00"), placed_at=timezone.now())  # no signal
    with django_capture_on_commit_callbacks(execute=True):
        page = _home(manager)
    assert _revenue(page) == "¥100.00" and AS_OF in page and "(being updated)" in page
    assert [(m["name"], m["scope"]) for m in sent] == [("home", "all")], "one refresh of the entry"
    assert report_refresh_task(**sent[0]) == "refreshed"
    assert report_refresh_task(**sent[0]) == "fresh", "a second delivery does nothing"
    page = _home(manager)
    assert _revenue(page) == "¥105.00" and AS_OF not in page

    # A week-old entry is not served at all: computed while the page waits.
    _rewrite("home", computed_at=timezone.now() - timedelta(days=8), seconds=SLOW)
    OrderFactory(customer=CustomerFactory(), total=Decimal("1.00"), placed_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        page = _home(manager)
    assert _revenue(page) == "¥106.00" and AS_OF not in page and len(sent) == 1


def test_a_quick_companys_entry_of_the_day_before_is_computed_again_at_once(
    tenant, manager_user, client_for, sent
):
    manager = client_for(manager_user)
    assert _revenue(_home(manager)) == "¥0.00"
    _rewrite("home", computed_at=timezone.now() - timedelta(days=1), seconds=0.2)
    OrderFactory(customer=CustomerFactory(), total=Decimal("9.00"), placed_at=timezone.now())
    page = _home(manager)
    assert _revenue(page) == "¥9.00" and AS_OF not in page and sent == []


def test_a_new_owner_or_a_share_shows_on_the_reps_start_page_at_once(
    tenant, manager_user, sales_user, client_for, django_capture_on_commit_callbacks
):
    rep = client_for(sales_user)
    mine = CustomerFactory(owner=sales_user)
    others = [CustomerFactory(owner=manager_user) for _ in range(3)]
    assert _customers(_home(rep)) == "1"
    with django_capture_on_commit_callbacks(execute=True):
        customers_bulk_assign_owner(actor=manager_user, customer_ids=[others[0].pk], owner=sales_user)
    assert _customers(_home(rep)) == "2"
    with django_capture_on_commit_callbacks(execute=True):
        customer_share(actor=manager_user, customer=others[1], users=[sales_user])
    assert _customers(_home(rep)) == "3"
    with django_capture_on_commit_callbacks(execute=True):
        customer_update(actor=manager_user, customer=mine, data={"owner": manager_user})
    assert _customers(_home(rep)) == "2"


def test_start_page_entries_never_cross_tenants_or_sales_users(
    tenant, tenant_b, manager_user, sales_user, client_for
):
    OrderFactory(customer=CustomerFactory(owner=None), total=Decimal("50.00"), placed_at=timezone.now())
    assert _revenue(_home(client_for(manager_user))) == "¥50.00"
    assert _revenue(_home(client_for(sales_user))) == "¥0.00"  # not theirs: another entry
    connection.set_tenant(tenant_b)
    beta_manager = User.objects.get(email=f"manager@{tenant_b.slug}.test")
    assert _revenue(_home(client_for(beta_manager, tenant_b))) == "¥0.00"
    connection.set_tenant(tenant)
