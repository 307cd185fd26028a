"""Benchmark: Settings > Tags at 100,000 customers (the demo seeder's tags on them).

Recorded in bench-results.json: the tag list page (median of 5 requests, ms, and its queries), and a
merge of the most used tag into another (seconds, customers moved): two statements whatever the size.
"""

import io
import random
import statistics
import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from crm.accounts.models import User
from customers.demo import seed
from customers.models import Customer
from customers.tags.selectors import tag_list_with_counts
from customers.tags.services import tag_merge

from .conftest import record_benchmark

pytestmark = pytest.mark.slow


def test_tag_list_and_merge_at_100000_customers(committed_tenant, django_db_blocker):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        with schema_context(tenant.schema_name):
            seed(
                users=list(User.objects.all()), customers=100_000, rng=random.Random(15), stdout=io.StringIO()
            )
            manager = User.objects.get(email=f"manager@{tenant.slug}.test")
            links = Customer.tags.through.objects.count()
            client = Client(HTTP_HOST=f"{tenant.slug}.testserver.local")
            client.force_login(manager)
            client.get("/customers/tags/")  # warm up
            timings = []
            for _ in range(5):
                started = time.perf_counter()
                with CaptureQueriesContext(connection) as queries:
                    assert client.get("/customers/tags/").status_code == 200
                timings.append((time.perf_counter() - started) * 1000)
            biggest, other = list(tag_list_with_counts().order_by("-customer_count")[:2])
            started = time.perf_counter()
            counts = tag_merge(actor=manager, source=biggest, target=other)
            merge_seconds = time.perf_counter() - started
        connection.set_schema_to_public()
    figures = {
        "customers": 100_000,
        "tag_links": links,
        "list_median_ms": round(statistics.median(timings), 1),
        "list_queries": len(queries),
        "merge_seconds": round(merge_seconds, 3),
        "merge_customers": counts["customers"],
        "merge_moved": counts["moved"],
    }
    record_benchmark("tags.list_and_merge_100000", **figures)
    print(figures)
