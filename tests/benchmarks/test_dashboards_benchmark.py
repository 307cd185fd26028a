"""Benchmark: the managers' reports at size (default 100,000 customers with the demo's orders, about
ten per customer; DASH_BENCH_CUSTOMERS to change it), and DASH_BENCH_INTERACTIONS interactions in all
(default 2,000,000: the demo's, topped up in one INSERT ... SELECT over two years, every channel, each
by its customer's owner). Loyalty members are added in one INSERT ... SELECT as auto-enrolment would
have made them (every buyer, from their first purchase, with a points balance about their net spend less
what was redeemed or expired), so the liability figure reads a realistic members table: the demo's own
loyalty step earns points order by order and takes far longer than the rest of the seeding.

DASH_BENCH_KEEP=1 keeps the seeded tenant (`dashbench`) after the run and reuses it the next time
(run with --reuse-db instead of --create-db): seeding 100,000 customers takes minutes.

Each page is requested in-process as a manager: cold (the data version replaced, as after an import,
so nothing is cached) and warm (the same request again), 3 times each; the median server time (ms) and
the number of SQL queries are recorded in bench-results.json. Targets (issue 17): every report page
under 1 s cold and under 100 ms warm; the 24-month cohort matrix under 1 s cold.
"""

import io
import os
import random
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
from customers.demo import seed
from customers.models import Customer, Order
from dashboards.caching import data_changed
from segmentation.models import RecomputeRun
from segmentation.recompute import recompute
from tests.conftest import _ensure_tenant

from .conftest import record_benchmark

pytestmark = pytest.mark.slow
CUSTOMERS = int(os.environ.get("DASH_BENCH_CUSTOMERS", "100000"))
INTERACTIONS = int(os.environ.get("DASH_BENCH_INTERACTIONS", "2000000"))
KEPT_SLUG = "dashbench"
CHANNELS = ["phone", "email", "sms", "wechat", "chat", "social", "meeting", "store_visit", "other"]


def add_members() -> int:
    """Enrol every buyer who is not a member yet (see the module docstring)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO loyalty_member
                (customer_id, number, status, joined_at, balance, created_at, updated_at)
            SELECT c.id, 'B' || c.id, 'active', c.first_order_at,
                   greatest(0, floor(c.total_spent * (0.2 + (c.id % 7) / 10.0)))::int, now(), now()
            FROM customers_customer AS c
            WHERE c.first_order_at IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM loyalty_member AS m WHERE m.customer_id = c.id)
            """
        )
        added = cursor.rowcount
        cursor.execute("ANALYZE loyalty_member")
    return added


def top_up_interactions(total: int) -> int:
    """Add interactions until there are `total`: spread over the customers and two years."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM interactions_interaction")
        missing = total - cursor.fetchone()[0]
        if missing <= 0:
            return 0
        cursor.execute(
            """
            WITH c AS (
                     SELECT id, owner_id, row_number() OVER (ORDER BY id) - 1 AS i FROM customers_customer
                 ),
                 n AS (SELECT count(*) AS n FROM customers_customer)
            INSERT INTO interactions_interaction
                (customer_id, channel, direction, occurred_at, subject, notes, author_id,
                 created_at, updated_at)
            SELECT c.id, (%s::text[])[1 + g %% 9], CASE WHEN g %% 3 = 0 THEN 'in' ELSE 'out' END,
                   now() - (g %% 730) * interval '1 day' - (g %% 86400) * interval '1 second', '', '',
                   c.owner_id, now(), now()
            FROM generate_series(1, %s) AS g CROSS JOIN n JOIN c ON c.i = (g::bigint * 7919) %% n.n
            """,
            [CHANNELS, missing],
        )
        cursor.execute("ANALYZE interactions_interaction")
    return missing


PAGES = {
    "overview": "/dashboards/",
    "overview_90d_last_year": "/dashboards/?range=90d&compare=last_year",
    "cohorts_24": "/dashboards/cohorts/?months=24",
    "migration": "/dashboards/migration/",
    "funnel": "/dashboards/funnel/?range=90d",
    "team": "/dashboards/team/",
}


def _seeded_tenant(committed_tenant, keep: bool):
    if not keep:
        return committed_tenant()
    connection.set_schema_to_public()
    tenant = _ensure_tenant(KEPT_SLUG, "Dashboards bench")
    connection.set_schema_to_public()
    return tenant


def test_report_pages_at_size(committed_tenant, django_db_blocker):
    keep = os.environ.get("DASH_BENCH_KEEP", "") in ("1", "true", "yes")
    with django_db_blocker.unblock():
        tenant = _seeded_tenant(committed_tenant, keep)
        with schema_context(tenant.schema_name):
            users = list(User.objects.all())
            seeded = Customer.objects.count()
            started = time.perf_counter()
            if seeded < CUSTOMERS:
                summary = seed(
                    users=users, customers=CUSTOMERS - seeded, rng=random.Random(2026), stdout=io.StringIO()
                )
            else:
                summary = {"reused": seeded}
            seconds = round(time.perf_counter() - started, 1)
            orders = Order.objects.count()
            started = time.perf_counter()
            added = top_up_interactions(INTERACTIONS)
            print(f"{added} interactions added in {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            print(f"{add_members()} loyalty members added in {time.perf_counter() - started:.1f} s")
            if RecomputeRun.objects.count() < 2:
                # Two recomputes, 90 days apart, so segment and stage changes exist between two dates.
                started = time.perf_counter()
                recompute(with_holdout=False, as_of=timezone.now() - timedelta(days=90))
                recompute(with_holdout=False)
                print(f"two recomputes in {time.perf_counter() - started:.1f} s")
            manager = User.objects.get(email=f"manager@{tenant.slug}.test")
        print(f"seeded {CUSTOMERS} customers, {orders} orders in {seconds} s", summary)
        client = Client(HTTP_HOST=f"{tenant.slug}.{settings.BASE_DOMAIN}")
        with schema_context(tenant.schema_name):
            client.force_login(manager)
        load = os.getloadavg()[0]
        for name, url in PAGES.items():
            cold, warm, queries = [], [], []
            for _ in range(3):
                with schema_context(tenant.schema_name):
                    data_changed()
                with CaptureQueriesContext(connection) as captured:
                    started = time.perf_counter()
                    response = client.get(url)
                    cold.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
                queries.append(len(captured))
                started = time.perf_counter()
                assert client.get(url).status_code == 200
                warm.append((time.perf_counter() - started) * 1000)
            figures = {
                "customers": CUSTOMERS,
                "orders": orders,
                "interactions": INTERACTIONS,
                "cold_median_ms": round(statistics.median(cold), 1),
                "warm_median_ms": round(statistics.median(warm), 1),
                "cold_queries": max(queries),
                "load_average": round(load, 1),
            }
            record_benchmark(f"dashboards.{name}", **figures)
            print(name, figures)
        connection.set_schema_to_public()
