"""Loyalty through a real Celery worker process: an order recorded through the service earns points
in its own tenant (customers_changed -> points_earn_task), and the nightly dispatcher expires points
in every tenant, each in its own schema."""

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from customers.services import order_create
from loyalty.models import Member, PointsEntry, Programme, Tier
from loyalty.services import member_enrol, points_earn_for_orders, programme_get
from loyalty.tasks import points_earn_all_tenants, points_nightly_all_tenants
from tests.factories import CustomerFactory, OrderFactory

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]


def _wait(check, log, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"not done in {timeout} s:\n{log.read_text()[-3000:]}")


def test_an_order_earns_through_the_worker_in_its_own_tenant(
    celery_worker, committed_tenant, django_db_blocker
):
    shop, other = committed_tenant(), committed_tenant()
    with django_db_blocker.unblock():
        with schema_context(other.schema_name):
            programme_get()
            CustomerFactory(name="Other tenant's customer")
        with schema_context(shop.schema_name):
            programme_get()
            Tier.objects.create(name="Base", rank=0, threshold=0)
            customer = CustomerFactory()
            # autocommit: customers_changed is sent at once and the task goes to the worker
            order_create(
                actor=None,
                customer=customer,
                number="W-1",
                placed_at=timezone.now(),
                lines=[{"product_name": "Tea", "quantity": 3, "unit_price": "40.00"}],
            )

        def earned():
            with schema_context(shop.schema_name):
                return Member.objects.filter(customer=customer, balance=120).exists()

        _wait(earned, celery_worker["log"])
        with schema_context(shop.schema_name):
            assert PointsEntry.objects.filter(kind="earn").count() == 1
        with schema_context(other.schema_name):
            assert not Member.objects.exists() and not PointsEntry.objects.exists()
        connection.set_schema_to_public()


def test_the_nightly_dispatcher_expires_points_in_each_tenant(
    celery_worker, committed_tenant, django_db_blocker
):
    first, second = committed_tenant(), committed_tenant()
    with django_db_blocker.unblock():
        members = {}
        for tenant, days_ago in ((first, 500), (second, 30)):
            with schema_context(tenant.schema_name):
                Programme.objects.filter(pk=programme_get().pk).update(expiry_mode="months", expiry_months=12)
                customer = CustomerFactory()
                member_enrol(actor=None, customer=customer, joined_at=timezone.now() - timedelta(days=800))
                OrderFactory(
                    customer=customer, total="100.00", placed_at=timezone.now() - timedelta(days=days_ago)
                )
                points_earn_for_orders()
                members[tenant.schema_name] = Member.objects.get(customer=customer).pk
        connection.set_schema_to_public()
        points_nightly_all_tenants.delay()

        def expired():
            with schema_context(first.schema_name):
                return PointsEntry.objects.filter(kind="expire").exists()

        _wait(expired, celery_worker["log"])
        with schema_context(first.schema_name):
            assert Member.objects.get(pk=members[first.schema_name]).balance == 0
        with schema_context(second.schema_name):
            assert Member.objects.get(pk=members[second.schema_name]).balance == 100
            assert not PointsEntry.objects.filter(kind="expire").exists()
        connection.set_schema_to_public()


def test_the_catch_up_dispatcher_earns_orders_whose_sweep_was_lost_in_each_tenant(
    celery_worker, committed_tenant, django_db_blocker
):
    """Orders written without customers_changed (a sweep that never ran) earn at the daily catch-up,
    in their own tenant only, once however often it runs."""
    first, second = committed_tenant(), committed_tenant()
    with django_db_blocker.unblock():
        customers = {}
        for tenant, total in ((first, "70.00"), (second, "30.00")):
            with schema_context(tenant.schema_name):
                programme_get()
                customer = CustomerFactory()
                OrderFactory(customer=customer, total=total, placed_at=timezone.now())  # no signal
                customers[tenant.schema_name] = customer.pk
                assert not Member.objects.exists()
        connection.set_schema_to_public()
        points_earn_all_tenants.delay()
        points_earn_all_tenants.delay()

        def earned_in_both():
            found = []
            for tenant in (first, second):
                with schema_context(tenant.schema_name):
                    found.append(PointsEntry.objects.filter(kind="earn").exists())
            return all(found)

        _wait(earned_in_both, celery_worker["log"])
        time.sleep(2)  # let the second round finish: it must add nothing
        for tenant, points in ((first, 70), (second, 30)):
            with schema_context(tenant.schema_name):
                member = Member.objects.get()
                assert member.customer_id == customers[tenant.schema_name]
                assert member.balance == points
                assert PointsEntry.objects.filter(kind="earn").count() == 1
        connection.set_schema_to_public()
