"""Recycle bin: delete, restore and the purge after 30 days (in-process and through a real worker)."""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.audit.models import AuditEvent
from customers.models import BehaviourEvent, Customer, Order, OrderLine, Refund
from customers.services import (
    customer_delete,
    customer_restore,
    customers_purge_expired,
    purge_date,
)
from customers.tasks import purge_bin_all_tenants, purge_bin_task
from tests.factories import BehaviourEventFactory, CustomerFactory, OrderLineFactory, RefundFactory


def test_delete_keeps_everything_attached_and_restore_brings_it_back(tenant, sales_user):
    customer = CustomerFactory(owner=sales_user)
    line = OrderLineFactory(order__customer=customer)
    BehaviourEventFactory(customer=customer)
    customer_delete(actor=sales_user, customer=customer)
    assert customer.deleted_at is not None and customer.deleted_by == sales_user
    assert purge_date(customer) == customer.deleted_at + timedelta(days=30)
    assert Order.objects.filter(customer=customer).count() == 1 and customer.events.count() == 1
    customer_delete(actor=sales_user, customer=customer)  # twice: no second audit row
    customer_restore(actor=sales_user, customer=customer)
    assert customer.deleted_at is None and customer.deleted_by is None
    assert line.order.customer_id == customer.pk
    actions = list(
        AuditEvent.objects.filter(target_id=str(customer.pk)).order_by("id").values_list("action", flat=True)
    )
    assert actions == ["customer.deleted", "customer.restored"]


def test_the_bin_page_costs_the_same_queries_for_many_rows(
    tenant, client_for, manager_user, sales_user, django_assert_num_queries
):
    from django.urls import reverse

    from customers.dedupe.services import customer_merge

    client = client_for(manager_user)
    CustomerFactory(owner=sales_user, deleted_at=timezone.now(), deleted_by=manager_user)
    client.get(reverse("customers:bin"))  # warm up (session)
    with django_assert_num_queries(BIN_PAGE_QUERIES):
        client.get(reverse("customers:bin"))
    for number in range(12):
        customer_delete(actor=manager_user, customer=CustomerFactory(owner=sales_user))
        survivor, merged = CustomerFactory.create_batch(2, owner=sales_user, name=f"Twin {number}")
        customer_merge(actor=manager_user, survivor=survivor, merged=merged)  # binned, with "undo merge"
    with django_assert_num_queries(BIN_PAGE_QUERIES):
        page = client.get(reverse("customers:bin")).content.decode()
    assert page.count("/undo/") >= 12 and "Twin 11" in page


# the same whatever the number of rows: session, user, the paginator's count and page (owner and
# binned-by joined in), what the layout reads, and (for a manager) the binned tags with their counts
BIN_PAGE_QUERIES = 8


def test_sales_cannot_delete_what_they_do_not_own(tenant, sales_user, sales_user2, manager_user):
    customer = CustomerFactory(owner=sales_user2, shared_with=[sales_user])
    with pytest.raises(PermissionDenied):
        customer_delete(actor=sales_user, customer=customer)
    customer_delete(actor=manager_user, customer=customer)
    with pytest.raises(PermissionDenied):
        customer_restore(actor=sales_user, customer=customer)


def make_binned(days_ago: int, **kwargs) -> Customer:
    customer = CustomerFactory(**kwargs)
    line = OrderLineFactory(order__customer=customer, order__total=Decimal("10"))
    RefundFactory(order=line.order, amount=Decimal("1"))
    BehaviourEventFactory(customer=customer)
    Customer.objects.filter(pk=customer.pk).update(deleted_at=timezone.now() - timedelta(days=days_ago))
    return customer


def test_purge_deletes_only_customers_older_than_30_days_with_their_rows(tenant):
    old = make_binned(31, name="Old")
    recent = make_binned(29, name="Recent")
    live = CustomerFactory(name="Live")
    assert customers_purge_expired(batch_size=1) == 1
    assert not Customer.objects.filter(pk=old.pk).exists()
    assert not Order.objects.filter(customer_id=old.pk).exists()
    assert not BehaviourEvent.objects.filter(customer_id=old.pk).exists()
    assert OrderLine.objects.count() == 1 and Refund.objects.count() == 1  # the recent one's
    assert set(Customer.objects.values_list("name", flat=True)) == {"Recent", "Live"}
    purged = AuditEvent.objects.get(action="customer.purged")
    assert (purged.target_id, purged.target_label) == (str(old.pk), "Old")
    assert customers_purge_expired() == 0  # idempotent
    assert recent and live


def test_purge_task_runs_in_the_current_tenant(tenant):
    make_binned(40)
    assert purge_bin_task() == 1
    assert not Customer.objects.exists()


@pytest.mark.celery_worker
def test_beat_dispatcher_purges_every_active_tenant_through_a_worker(
    celery_worker, committed_tenant, django_db_blocker
):
    tenant_a, tenant_b = committed_tenant(), committed_tenant()
    with django_db_blocker.unblock():
        ids = {}
        for tenant in (tenant_a, tenant_b):
            with schema_context(tenant.schema_name):
                ids[tenant.schema_name] = (make_binned(31).pk, make_binned(3).pk)
        connection.set_schema_to_public()
        sent = purge_bin_all_tenants.delay().get(timeout=30)
        assert sent >= 2

        def remaining(tenant) -> set[int]:
            with schema_context(tenant.schema_name):
                return set(Customer.objects.values_list("pk", flat=True))

        deadline = time.monotonic() + 30
        expected = {t.schema_name: {ids[t.schema_name][1]} for t in (tenant_a, tenant_b)}
        while time.monotonic() < deadline:
            if all(remaining(t) == expected[t.schema_name] for t in (tenant_a, tenant_b)):
                break
            time.sleep(0.3)
        for tenant in (tenant_a, tenant_b):
            assert remaining(tenant) == expected[tenant.schema_name]
            with schema_context(tenant.schema_name):
                assert not Order.objects.filter(customer_id=ids[tenant.schema_name][0]).exists()
                assert AuditEvent.objects.filter(action="customer.purged").count() == 1
        connection.set_schema_to_public()


def test_binned_tags_are_listed_in_the_bin_for_managers_only(client_for, manager_user, sales_user):
    from django.urls import reverse

    from customers.models import Tag

    Tag.objects.create(name="Old campaign", deleted_at=timezone.now())
    url = reverse("customers:bin")
    assert "Old campaign" in client_for(manager_user).get(url).content.decode()
    assert "Old campaign" not in client_for(sales_user).get(url).content.decode()
