"""Benchmark: My day with many follow-ups (parametrised size; `make bench ARGS="-k my_day"`).

A committed throw-away tenant gets `size` customers (COPY through the customers demo seeder), the sales
rep owns a third of them and has `size` open follow-ups spread from 60 days overdue to 60 days ahead,
plus churn alerts; the page is requested in-process as the rep and as a manager (whole team), warm.
Recorded in bench-results.json: the median of 5 requests (ms) and the number of SQL queries (the same
at every size: every list on the page is bounded). Target (issue 11): < 150 ms at 100,000 customers.
"""

import io
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
from customers.models import Customer
from interactions.followups.models import FollowUp

from .conftest import record_benchmark

pytestmark = pytest.mark.slow
SIZES = [2_000, 100_000]


@pytest.mark.parametrize("size", SIZES)
def test_my_day(committed_tenant, django_db_blocker, size):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        with schema_context(tenant.schema_name):
            users = list(User.objects.all())
            seed(users=users, customers=size, rng=random.Random(11), stdout=io.StringIO())
            sales = User.objects.get(email=f"sales@{tenant.slug}.test")
            ids = list(Customer.objects.order_by("pk").values_list("pk", flat=True))
            Customer.objects.filter(pk__in=ids[::3]).update(owner=sales)
            now = timezone.now()
            rng = random.Random(5)
            FollowUp.objects.bulk_create(
                [
                    FollowUp(
                        customer_id=rng.choice(ids),
                        assignee=sales if n % 2 == 0 else users[n % len(users)],
                        due_at=now + timedelta(hours=rng.uniform(-24 * 60, 24 * 60)),
                        title=f"Follow-up {n}",
                    )
                    for n in range(size)
                ],
                batch_size=5000,
            )
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        host = f"{tenant.slug}.{settings.BASE_DOMAIN}"
        figures = {"size": size}
        for role in ("sales", "manager"):
            client = Client(HTTP_HOST=host)
            with schema_context(tenant.schema_name):
                client.force_login(User.objects.get(email=f"{role}@{tenant.slug}.test"))
            client.get("/my-day/")  # warm
            times = []
            for _ in range(5):
                started = time.perf_counter()
                with CaptureQueriesContext(connection) as queries:
                    response = client.get("/my-day/")
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
            figures[f"{role}_median_ms"] = round(statistics.median(times), 1)
            figures[f"{role}_queries"] = len(queries.captured_queries)
        connection.set_schema_to_public()
    record_benchmark("followups.my_day", **figures)
    print(figures)
