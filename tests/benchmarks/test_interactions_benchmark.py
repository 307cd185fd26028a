"""Benchmark: the interactions page, the 360 page and My day with interactions at scale.

Run with `make bench ARGS="-k interactions"` (or `make bench SCALE=1m`). On the session's shared
tenant (`scale_tenant`, tests/benchmarks/conftest.py): `seed_demo` at BENCH_CUSTOMERS (default
100,000; 1,000,000 at SCALE=1m), interactions topped up to INTERACTIONS_BENCH_PER_CUSTOMER per
customer (default 20, so 2,000,000 interactions at 100,000 customers, as issue 11 asks), open
follow-ups (INTERACTIONS_BENCH_FOLLOWUPS, default 100,000 times the scale), the sales rep owning 30 %
of the customers. Pages are requested in-process with Django's test client as a manager and as a
sales rep.

Recorded in bench-results.json: seconds to load, and per scenario the median and 95th percentile of
INTERACTIONS_BENCH_REQUESTS requests (default 20, after one warm-up; ms), the number of SQL queries and
the load average. Query counts are pinned (PINNED: the same for every filter, page depth and size).
The 360 page's timeline is a request of its own (htmx, when it scrolls into view) and is measured as
such. Target: each page < 150 ms at the full size on a quiet machine.
"""

import math
import os
import statistics
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.accounts.models import User
from customers.models import Customer
from interactions.labels import Channel, Direction
from tests.followups.test_views import MY_DAY_QUERIES
from tests.interactions.test_views import CUSTOMER_360_QUERIES, CUSTOMER_TIMELINE_QUERIES

from .conftest import record_benchmark

pytestmark = [pytest.mark.slow, pytest.mark.at_scale]

REQUESTS = max(1, int(os.environ.get("INTERACTIONS_BENCH_REQUESTS", "20")))
# Pinned: every page of a kind makes the same number of queries whatever the filter and the size.
PINNED = {
    "index": {"manager": 9, "sales": 9},
    # The suite's pin is for its fullest customer; seed_demo's customers show one query more (a
    # customer with a same-email/phone record besides every other panel): at most one above it.
    "customer_360": {role: count + 1 for role, count in CUSTOMER_360_QUERIES.items()},
    "timeline": {"manager": CUSTOMER_TIMELINE_QUERIES, "sales": CUSTOMER_TIMELINE_QUERIES},  # at most
    "my_day": MY_DAY_QUERIES,
}
TARGET_MS = 150
CHANNELS_SQL = "ARRAY[" + ", ".join(f"'{c}'" for c in Channel.values) + "]"
DIRECTIONS_SQL = "ARRAY[" + ", ".join(f"'{d}'" for d in Direction.values) + "]"


def _measure(client: Client, url: str, **headers) -> dict:
    assert client.get(url, **headers).status_code == 200  # warm
    times, counts = [], []
    for _ in range(REQUESTS):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url, **headers)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, url
        counts.append(len(queries))
    p95 = sorted(times)[math.ceil(0.95 * len(times)) - 1]  # nearest rank
    return {
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(p95, 1),
        "queries": min(counts),  # the steady count; a few requests also refresh an expired cache entry
        "query_counts": counts,
    }


def test_360_and_interactions_pages_at_scale(scale_tenant, django_db_blocker):
    tenant = scale_tenant.tenant
    customers, written = scale_tenant.customers, scale_tenant.interactions
    with django_db_blocker.unblock():
        with schema_context(tenant.schema_name):
            sales = User.objects.get(email=f"sales@{tenant.slug}.test")
            sample = list(
                Customer.objects.filter(owner=sales, orders_count__gt=0, deleted_at__isnull=True)
                .order_by("?")
                .values_list("pk", flat=True)[:5]
            )
            channel_author = sales.pk
        record_benchmark(
            "interactions.load",
            customers=customers,
            interactions=written,
            seed_seconds=scale_tenant.seed_seconds,
        )
        host = f"{tenant.slug}.{settings.BASE_DOMAIN}"
        clients = {}
        for role in ("manager", "sales"):
            client = Client(HTTP_HOST=host)
            with schema_context(tenant.schema_name):
                client.force_login(User.objects.get(email=f"{role}@{tenant.slug}.test"))
            clients[role] = client

        today = timezone.localdate()
        scenarios = {
            "index": "/interactions/",
            "index_channel": "/interactions/?channel=wechat",
            "index_author": f"/interactions/?author={channel_author}",
            "index_outcome_channel": "/interactions/?channel=phone&outcome=1",
            "index_last_30_days": f"/interactions/?date_from={today - timedelta(days=30)}",
            "index_rfm_segment": "/interactions/?rfm_segment=champions",
        }
        results = {}
        for role in ("manager", "sales"):
            for label, url in scenarios.items():
                results[f"{role}.{label}"] = _measure(clients[role], url)
            # 20 pages deep by keyset
            client = clients[role]
            url = "/interactions/"
            for _ in range(20):
                response = client.get(url)
                url = f"/interactions/?{response.context['next_query']}"
            results[f"{role}.index_page_21"] = _measure(client, url)
            for n, pk in enumerate(sample[:3]):
                results[f"{role}.customer_360_{n}"] = _measure(client, f"/customers/{pk}/")
                results[f"{role}.timeline_{n}"] = _measure(
                    client, f"/customers/{pk}/timeline/", HTTP_HX_REQUEST="true"
                )
            results[f"{role}.my_day"] = _measure(client, "/my-day/")
            results[f"{role}.customer_list_last_contact"] = _measure(client, "/customers/")
            results[f"{role}.customer_list_no_contact_90"] = _measure(
                client, "/customers/?no_contact_days=90"
            )
        connection.set_schema_to_public()

    load = round(os.getloadavg()[0], 1)
    for label, figures in results.items():
        record_benchmark(
            f"interactions.{label}", customers=customers, interactions=written, load_average=load, **figures
        )
        print(f"{label}: {figures}")
    for label, figures in results.items():
        # The same count for every request but the odd one that refreshes a cache entry that expired
        # meanwhile (the bell count, the navigation badges: two queries), which a slow run meets.
        steady = figures["queries"]
        assert sum(count != steady for count in figures["query_counts"]) <= max(1, REQUESTS // 10), (
            label,
            figures,
        )
        role, scenario = label.split(".", 1)
        page = next(
            (kind for kind in ("index", "customer_360", "timeline", "my_day") if scenario.startswith(kind)),
            None,
        )
        if page in ("customer_360", "timeline"):  # what there is to show depends on the customer
            assert figures["queries"] <= PINNED[page][role], (label, figures["queries"])
        elif page is not None:
            assert figures["queries"] == PINNED[page][role], (label, figures["queries"])
    for role in ("manager", "sales"):
        counts = {v["queries"] for k, v in results.items() if k.startswith(f"{role}.customer_360")}
        assert len(counts) == 1, (role, counts)  # customers alike (with orders) cost alike
    slow = {
        k: v["median_ms"]
        for k, v in results.items()
        if v["median_ms"] > TARGET_MS and "customer_list" not in k
    }
    print("over target:", slow)
