"""Benchmark: My day with many follow-ups (`make bench ARGS="-k my_day"`).

Sizes (environment): FOLLOWUPS_BENCH_SIZES, a comma-separated list of customer counts (default
"2000,100000", the issue's size); each size gets as many open follow-ups as customers, half of them
the sales rep's, spread from 60 days overdue to 60 days ahead, plus one open churn alert per 50
customers. Customers and orders come from the customers demo seeder (COPY); follow-ups and alerts
are one INSERT ... SELECT over generate_series each, so 100,000 of them take a second or two.

The page is requested in-process as the rep and as a manager (whole team), warm. Recorded in
bench-results.json: the median of 5 requests (ms) and the number of SQL queries, pinned: the same at
every size (every list on the page is bounded) and equal to the ordinary suite's pin
(tests/followups/test_views.py). Target (issue 11): < 150 ms at 100,000 customers.
"""

import io
import os
import random
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
from interactions.followups.models import FollowUp
from segmentation.models import ChurnAlert
from tests.followups.test_views import MY_DAY_QUERIES

from .conftest import record_benchmark

pytestmark = pytest.mark.slow
SIZES = [int(n) for n in os.environ.get("FOLLOWUPS_BENCH_SIZES", "2000,100000").split(",") if n.strip()]


def load_followups(*, count: int, sales_id: int) -> None:
    """`count` open follow-ups on random living customers: even ones the rep's, odd ones spread over
    every user; due between 60 days ago and 60 days ahead. One statement."""
    table = FollowUp._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH customers AS (SELECT array_agg(id ORDER BY id) AS ids FROM customers_customer
                               WHERE deleted_at IS NULL),
                 users AS (SELECT array_agg(id ORDER BY id) AS ids FROM accounts_user)
            INSERT INTO {table} (customer_id, assignee_id, due_at, title, notes, status, snooze_count,
                                 source, source_key, created_at, updated_at)
            SELECT customers.ids[1 + floor(random() * cardinality(customers.ids))::int],
                   CASE WHEN n %% 2 = 0 THEN %s ELSE users.ids[1 + n %% cardinality(users.ids)] END,
                   now() + (random() * 120 - 60) * interval '1 day',
                   'Follow-up ' || n, '', 'open', 0, 'manual', NULL, now(), now()
            FROM generate_series(1, %s) AS n, customers, users
            """,
            [sales_id, count],
        )
        cursor.execute(
            """
            INSERT INTO segmentation_churnalert (customer_id, owner_id, reason, details, status, created_at)
            SELECT id, owner_id, 'entered_at_risk', '{}'::jsonb, 'open', now() - (id % 30) * interval '1 day'
            FROM customers_customer WHERE deleted_at IS NULL AND id % 50 = 0
            ON CONFLICT DO NOTHING
            """
        )
        cursor.execute(f"ANALYZE {table}")
        cursor.execute(f"ANALYZE {ChurnAlert._meta.db_table}")
        cursor.execute("ANALYZE customers_customer")


@pytest.mark.parametrize("size", SIZES)
def test_my_day(committed_tenant, django_db_blocker, size):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        with schema_context(tenant.schema_name):
            users = list(User.objects.all())
            started = time.perf_counter()
            seed(users=users, customers=size, rng=random.Random(11), stdout=io.StringIO())
            seeded = time.perf_counter() - started
            sales = User.objects.get(email=f"sales@{tenant.slug}.test")
            started = time.perf_counter()
            load_followups(count=size, sales_id=sales.pk)
            loaded = time.perf_counter() - started
        host = f"{tenant.slug}.{settings.BASE_DOMAIN}"
        figures = {"size": size, "seed_seconds": round(seeded, 1), "followups_seconds": round(loaded, 2)}
        for role in ("sales", "manager"):
            client = Client(HTTP_HOST=host)
            with schema_context(tenant.schema_name):
                client.force_login(User.objects.get(email=f"{role}@{tenant.slug}.test"))
            client.get("/my-day/")  # warm
            times, counts = [], []
            for _ in range(5):
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    response = client.get("/my-day/")
                    times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
                counts.append(len(queries))
            figures[f"{role}_median_ms"] = round(statistics.median(times), 1)
            figures[f"{role}_queries"] = counts[-1]
            assert set(counts) == {MY_DAY_QUERIES[role]}, (role, counts)
        connection.set_schema_to_public()
    figures["load_average"] = round(os.getloadavg()[0], 1)
    record_benchmark("followups.my_day", **figures)
    print(figures)
