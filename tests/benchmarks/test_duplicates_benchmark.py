"""Benchmark: finding duplicates among 100,000 customers, and merging (and undoing) a customer with
2,000 orders and 20,000 behaviour events.

Run with `make bench`. The customers are generated (70 % Chinese names from 40 surnames and 60
given-name characters, 30 % Latin names, 30 cities) with 2 % planted duplicates: the same person
again with the email in upper case, the phone in national format, the name in traditional
characters or in pinyin. Timed: a cold scan (name/city key caches empty, pypinyin loaded) and a warm
one; the merge and the undo. Targets: scan < 10 s, merge + undo < 2 s.
"""

import random
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from customers.dedupe.keys import city_key, name_keys
from customers.dedupe.scan import duplicate_scan
from customers.dedupe.services import customer_merge, customer_merge_undo
from customers.models import BehaviourEvent, Customer, Order

from .conftest import record_benchmark

N_CUSTOMERS = 100_000
pytestmark = pytest.mark.slow

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红娥玲芬燕彬鹏晨宇浩然子轩欣怡梓涵"
LATIN_FIRST = ("James", "Mary", "John", "Linda", "Robert", "Susan", "Michael", "Karen", "David", "Nancy")
LATIN_LAST = ("Smith", "Brown", "Taylor", "Wilson", "Lee", "Johnson", "Walker", "White", "Harris", "Clark")
CITIES = [f"城市{i}" for i in range(22)] + ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京"]
TRADITIONAL = str.maketrans(
    "张陈刘杨黄赵吴郑谢韩冯邓伟丽华红兰玲鹏军涛娟", "張陳劉楊黃趙吳鄭謝韓馮鄧偉麗華紅蘭玲鵬軍濤娟"
)


def _customers(rng: random.Random) -> list[Customer]:
    rows = []
    for i in range(N_CUSTOMERS):
        if rng.random() < 0.7:
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
        else:
            name = f"{rng.choice(LATIN_FIRST)} {rng.choice(LATIN_LAST)}"
        rows.append(
            Customer(
                name=name,
                email=f"c{i}@example.com",
                phone=f"+86139{i:08d}",
                city=rng.choice(CITIES),
            )
        )
    for original in rng.sample(rows, N_CUSTOMERS // 50):
        variant = rng.randrange(3)
        rows.append(
            Customer(
                name=original.name.translate(TRADITIONAL),
                email=original.email.upper() if variant == 0 else "",
                phone=f"139 {original.phone[6:10]} {original.phone[10:]}" if variant == 1 else "",
                city=original.city,
            )
        )
    return rows


def test_duplicates_and_merge_benchmark(tenant, manager_user):
    rng = random.Random(2026)
    Customer.objects.bulk_create(_customers(rng), batch_size=10_000)

    name_keys.cache_clear()
    city_key.cache_clear()
    started = time.perf_counter()
    scan = duplicate_scan(Customer.objects.filter(deleted_at__isnull=True))
    cold = time.perf_counter() - started
    started = time.perf_counter()
    duplicate_scan(Customer.objects.filter(deleted_at__isnull=True))
    warm = time.perf_counter() - started

    survivor = Customer.objects.create(name="Survivor", city="北京")
    merged = Customer.objects.create(name="Merged", city="北京")
    now = timezone.now()
    Order.objects.bulk_create(
        Order(
            number=f"B{i:07d}", customer=merged, placed_at=now - timedelta(days=i % 700), total=Decimal("10")
        )
        for i in range(2_000)
    )
    BehaviourEvent.objects.bulk_create(
        BehaviourEvent(customer=merged, event_type="page_view", occurred_at=now - timedelta(minutes=i))
        for i in range(20_000)
    )
    started = time.perf_counter()
    customer_merge(actor=manager_user, survivor=survivor, merged=merged, field_choices={"name": "merged"})
    merge_seconds = time.perf_counter() - started
    started = time.perf_counter()
    customer_merge_undo(actor=manager_user, merged=Customer.objects.get(pk=merged.pk))
    undo_seconds = time.perf_counter() - started
    assert Order.objects.filter(customer=merged).count() == 2_000

    figures = {
        "customers": scan.customers_scanned,
        "pairs_found": scan.total,
        "scan_cold_s": round(cold, 2),
        "scan_warm_s": round(warm, 2),
        "merge_2000_orders_20000_events_s": round(merge_seconds, 2),
        "undo_s": round(undo_seconds, 2),
    }
    print("\nduplicates/merge benchmark:", figures)
    record_benchmark("customers.duplicates_and_merge", **figures)
    planted = N_CUSTOMERS // 50
    assert scan.total >= planted


@pytest.mark.at_scale
def test_duplicates_scan_at_scale(scale_tenant, django_db_blocker):
    """The scan over the session's shared tenant (`scale_tenant`: seed_demo's customers, 100,000 or
    1,000,000 with `make bench SCALE=1m`, 0.4 % planted as second records of others by
    customers.demo_generate.plant_duplicates). Target (issue 18): < 20 s at 1,000,000. Asserted: the
    planted pairs are found (less those in the recycle bin)."""
    import os
    import resource

    from django_tenants.utils import schema_context

    tenant = scale_tenant.tenant
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        live = Customer.objects.filter(deleted_at__isnull=True)
        name_keys.cache_clear()
        city_key.cache_clear()
        started = time.perf_counter()
        scan = duplicate_scan(live)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        duplicate_scan(live)
        warm = time.perf_counter() - started
        customers = live.count()
    figures = {
        "customers": customers,
        "pairs_found": scan.total,
        "scan_cold_s": round(cold, 2),
        "scan_warm_s": round(warm, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load": f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
    }
    print("\nduplicates scan at scale:", figures)
    record_benchmark("customers.duplicates_scan_at_scale", **figures)
    planted = int(scale_tenant.customers * 0.004)
    assert scan.total >= planted * 0.95
