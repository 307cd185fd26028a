import io
import json
import random
from datetime import date
from decimal import Decimal

import numpy as np
import phonenumbers
import pytest
from django.db import connection
from django.db.models import Count, F, Max, Min, Q, Sum

from customers import demo
from customers import demo_generate as gen
from customers.models import BehaviourEvent, Customer, CustomFieldDefinition, Order, OrderLine, Refund, Tag
from customers.search import build_search_text

# --- the generator (no database) ------------------------------------------------------------------


def test_seasonality_has_the_retail_calendar():
    start = date(2025, 1, 1)

    def day(d: date) -> float:
        return float(gen.seasonality(np.array([(d - start).days], dtype=float), start)[0])

    ordinary = day(date(2025, 3, 12))
    assert ordinary == 1.0
    assert day(date(2025, 11, 11)) > 4 * ordinary  # Double 11
    assert day(date(2025, 6, 18)) > 3 * ordinary  # 618
    assert day(date(2025, 12, 10)) > ordinary
    assert day(date(2025, 1, 15)) > ordinary  # New Year gift rush (CNY 29 Jan 2025)
    assert day(date(2025, 1, 30)) < 0.5 * ordinary  # the holiday week itself


def test_purchase_process_has_one_time_buyers_and_a_loyal_core():
    rng = np.random.default_rng(7)
    n = 5000
    created = gen.WINDOW_DAYS * rng.random(n) - 100
    customer, day = gen.simulate_purchases(rng, created, start=date(2025, 1, 1))
    per = np.bincount(customer, minlength=n)
    assert 0.05 < (per == 0).mean() < 0.25  # prospects and late sign-ups without a purchase
    assert (per == 1).mean() > 0.12  # many one-time buyers
    assert (per >= 20).mean() > 0.03  # and a loyal core
    assert ((day >= 0) & (day < gen.WINDOW_DAYS)).all()
    # sorted by customer, then time; nobody buys before they signed up
    assert (np.diff(customer) >= 0).all()
    same = np.diff(customer) == 0
    assert (np.diff(day)[same] >= 0).all()
    assert (day >= np.maximum(created[customer], 0)).all()


def test_generated_customers_are_valid():
    rng = np.random.default_rng(11)
    now = gen.default_now()
    frame = gen.generate_customers(
        rng,
        3000,
        now=now,
        owner_ids=[5, 6],
        manager_ids=[2],
        phone_ok=lambda n: phonenumbers.is_valid_number(phonenumbers.parse(n)),
    )
    phones = [p for p in frame["phone"] if p]
    assert len(phones) > 2500
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(p)) for p in phones)
    assert frame["phone"][frame["phone"] != ""].is_unique
    assert frame["email"][frame["email"] != ""].is_unique
    assert (frame["country"] != "CN").sum() > 50 and (frame["english"]).sum() > 50
    assert set(frame["owner_index"]) <= {5, 6, 2, -1}
    for text in frame["custom_fields"]:
        json.loads(text)
    assert (frame["created_at"] < now).all()


# --- seeding a tenant -----------------------------------------------------------------------------


def run_seed(users, n=300, **kwargs):
    out = io.StringIO()
    summary = demo.seed(users=list(users.values()), customers=n, rng=random.Random(1), stdout=out, **kwargs)
    return summary, out.getvalue()


def test_seed_fills_the_tenant_consistently(tenant, users):
    summary, output = run_seed(users)
    assert summary["customers"] == Customer.objects.count() == 300
    assert "300 customers" in output
    assert Order.objects.count() == summary["orders"] > 600
    assert OrderLine.objects.count() == summary["lines"] and Refund.objects.count() == summary["refunds"]
    assert 3 * 300 <= BehaviourEvent.objects.count() <= 10 * 300
    assert Tag.objects.filter(name="VIP").exists() and CustomFieldDefinition.objects.count() == 4

    # order totals are the sum of their lines; refunds match refunded_total and status
    mismatched = (
        Order.objects.annotate(lines_sum=Sum(F("lines__quantity") * F("lines__unit_price")))
        .exclude(total=F("lines_sum"))
        .count()
    )
    assert mismatched == 0
    refunded = Order.objects.annotate(refund_sum=Sum("refunds__amount")).filter(refunded_total__gt=0)
    assert all(o.refund_sum == o.refunded_total for o in refunded)
    assert not Order.objects.filter(status="paid", refunded_total__gt=0).exists()
    assert not Order.objects.filter(status="refunded").exclude(refunded_total=F("total")).exists()

    # stored figures equal a fresh aggregate (customer_refresh_order_stats ran once at the end)
    purchases = Q(orders__status__in=Order.PURCHASE_STATUSES)
    expected = Customer.objects.annotate(
        spent=Sum(F("orders__total") - F("orders__refunded_total"), filter=purchases),
        count=Count("orders", filter=purchases),
        first=Min("orders__placed_at", filter=purchases),
        last=Max("orders__placed_at", filter=purchases),
    )
    for customer in expected:
        assert customer.total_spent == (customer.spent or Decimal("0"))
        assert customer.orders_count == customer.count
        assert (customer.first_order_at, customer.last_order_at) == (customer.first, customer.last)

    # search text as the services build it, phones in E.164, owners are the sales users
    for customer in Customer.objects.all():
        if customer.kind == "company" or not any("\u4e00" <= ch <= "\u9fff" for ch in customer.name):
            assert customer.search_text == build_search_text(
                name=customer.name,
                email=customer.email,
                phone=customer.phone,
                external_id=customer.external_id,
            )
        else:
            assert customer.name.lower() in customer.search_text
        if customer.phone:
            assert phonenumbers.is_valid_number(phonenumbers.parse(customer.phone))
    owners = set(Customer.objects.exclude(owner=None).values_list("owner__role", flat=True))
    assert owners <= {"sales", "manager", "admin"} and "sales" in owners


def test_seed_skips_a_tenant_that_has_customers_unless_forced(tenant, users, monkeypatch):
    run_seed(users, n=20)
    summary, output = run_seed(users, n=20)
    assert summary == {"skipped": True} and "skipped" in output
    assert Customer.objects.count() == 20
    run_seed(users, n=20, force=True)
    assert Customer.objects.count() == 40
    monkeypatch.setenv(demo.FORCE_ENV, "1")
    run_seed(users, n=5)
    assert Customer.objects.count() == 45
    assert Order.objects.values("number").distinct().count() == Order.objects.count()


def test_bulk_mode_restores_every_index_and_foreign_key(tenant, users, monkeypatch):
    def schema_objects():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename LIKE 'customers_%%'"
            )
            indexes = {row[0] for row in cursor.fetchall()}
            cursor.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"
            )
            return indexes, set(cursor.fetchall())

    before = schema_objects()
    assert "customer_search_trgm" in before[0]
    monkeypatch.setattr(demo, "BULK_MODE_MIN_CUSTOMERS", 1)
    summary, _ = run_seed(users, n=50)
    assert schema_objects() == before
    assert Customer.objects.filter(search_text__contains=Customer.objects.first().name.lower()).exists()
    assert (
        Customer.objects.aggregate(n=Sum("orders_count"))["n"]
        == Order.objects.filter(status__in=Order.PURCHASE_STATUSES).count()
    )
    assert summary["customers"] == 50


@pytest.mark.parametrize("n", [0])
def test_seed_of_nothing(tenant, users, n):
    assert run_seed(users, n=n)[0] == {"customers": 0}
