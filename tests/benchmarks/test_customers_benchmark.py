"""Benchmark: the customers demo seeder (2,000 and 100,000 customers) and the customer list at 100,000.

Run with `make bench` (or `make bench ARGS="-k customers"`). The seeder generates the data with numpy
and loads it with COPY into a committed throw-away tenant (customers.demo.seed), then the list is
requested in-process with Django's test client as a manager and as a sales rep: unfiltered, sorted,
21 pages deep by keyset, searched (pinyin, Chinese, phone, e-mail domain) and filtered.

Recorded in bench-results.json: seconds per seeding, and per list scenario the median of 5 requests
(ms) and the number of SQL queries. Targets: 100,000 customers seeded in < 120 s on this machine;
each list request < 300 ms, with the same number of queries on every page.
"""

import io
import random
import re
import statistics
import time

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from crm.accounts.models import User
from customers.demo import seed
from customers.models import Customer, Order

from .conftest import record_benchmark

pytestmark = pytest.mark.slow
LIST = "/customers/"


def _seed(tenant, n: int) -> dict:
    with schema_context(tenant.schema_name):
        users = list(User.objects.all())
        started = time.perf_counter()
        summary = seed(users=users, customers=n, rng=random.Random(2026), stdout=io.StringIO())
        summary["wall_seconds"] = round(time.perf_counter() - started, 2)
        assert Customer.objects.count() == n
        assert Order.objects.count() == summary["orders"]
    return summary


def test_seed_2000_customers(committed_tenant, django_db_blocker):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        summary = _seed(tenant, 2000)
        connection.set_schema_to_public()
    record_benchmark("customers.seed_2000", **summary)
    print(summary)


def test_seed_100000_customers_and_list_pages(committed_tenant, django_db_blocker):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        summary = _seed(tenant, 100_000)
        record_benchmark("customers.seed_100000", **summary)
        print(summary)
        host = f"{tenant.slug}.{settings.BASE_DOMAIN}"
        clients = {}
        for role in ("manager", "sales"):
            with schema_context(tenant.schema_name):
                user = User.objects.get(email=f"{role}@{tenant.slug}.test")
                # Own some of the demo customers so the sales list is realistic.
                if role == "sales":
                    ids = list(Customer.objects.order_by("?").values_list("pk", flat=True)[:30_000])
                    Customer.objects.filter(pk__in=ids).update(owner=user)
            client = Client(HTTP_HOST=host)
            with schema_context(tenant.schema_name):
                client.force_login(user)
            clients[role] = client

        def measure(role: str, query: str, label: str) -> str:
            client = clients[role]
            client.get(f"{LIST}?{query}")  # warm
            times, counts, html = [], [], ""
            for _ in range(5):
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    response = client.get(f"{LIST}?{query}")
                    times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
                counts.append(len(queries))
                html = response.content.decode()
            figures = {"median_ms": round(statistics.median(times), 1), "queries": max(counts), "role": role}
            record_benchmark(f"customers.list.{label}", **figures)
            print(label, figures)
            return html

        measure("manager", "", "unfiltered")
        for sort in ("name", "-total_spent", "-orders", "-last_order", "last_order"):
            measure("manager", f"sort={sort}", f"sort{sort}")
        query = "sort=-total_spent"
        for _ in range(20):
            html = clients["manager"].get(f"{LIST}?{query}").content.decode()
            query = re.search(r'rel="next" href="\?([^"]+)"', html).group(1).replace("&amp;", "&")
        measure("manager", query, "page21")
        measure("manager", "q=wangxiao", "search_pinyin")
        measure("manager", "q=%E7%8E%8B%E5%B0%8F", "search_chinese")  # 王小
        measure("manager", "q=138%200013", "search_phone")
        measure("manager", "q=qq.com", "search_domain")
        measure("manager", "city=%E4%B8%8A%E6%B5%B7&email_consent=yes", "filter_city_consent")
        measure("sales", "", "sales_unfiltered")
        measure("sales", "q=li&sort=-last_order", "sales_search_sorted")
        connection.set_schema_to_public()
