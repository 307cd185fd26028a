"""Benchmark: service tickets at scale. Parametrised: `small` (20,000 tickets, 5,000 open) and `full`
(200,000 tickets, 50,000 open, the size issue 14 names). Run with `make bench ARGS="-k service"` (or
`-k "service and small"`).

The tickets are bulk-inserted into a committed throw-away tenant (a quarter open, their SLA instants
spread around now so that the scan has warnings and breaches to raise). Timed: the queue pages (median
of 5 requests, in-process through the whole middleware stack, with their query count) and the SLA scan
over the open tickets, first run (raising the events) and again (nothing new). Targets: queue pages
< 150 ms, the scan < 10 s.
"""

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
from customers.models import Customer
from interactions.service.models import Priority, SlaEvent, Status, Team, Ticket
from interactions.service.services import sla_scan

from .conftest import record_benchmark

pytestmark = pytest.mark.slow

SIZES = {"small": (20_000, 5_000), "full": (200_000, 50_000)}


def _fill(n_tickets: int, n_open: int, rng: random.Random) -> None:
    now = timezone.now()
    users = list(User.objects.filter(role="sales"))
    manager = User.objects.get(email__startswith="manager@")
    team = Team.objects.create(name="Bench team", manager=manager)
    team.members.add(*users)
    n_customers = max(n_tickets // 10, 100)
    Customer.objects.bulk_create(
        [Customer(name=f"Bench {i}", email=f"b{i}@bench.test") for i in range(n_customers)], batch_size=5000
    )
    customer_ids = list(Customer.objects.values_list("pk", flat=True))
    priorities = list(Priority.values)
    batch = []
    for i in range(n_tickets):
        is_open = i < n_open
        created = now - timedelta(minutes=rng.randint(1, 60 * 24 * 90))
        # open ones: due times spread from 4 h ago to 8 h ahead (about a third past 80%)
        offset = timedelta(minutes=rng.randint(-240, 480))
        assignee = rng.choice(users) if rng.random() < 0.8 else None
        batch.append(
            Ticket(
                customer_id=rng.choice(customer_ids),
                subject=f"Bench ticket {i}",
                priority=rng.choice(priorities),
                status=rng.choice([Status.NEW, Status.OPEN]) if is_open else Status.CLOSED,
                assignee=assignee,
                team=team if assignee else None,
                requester_email=f"r{i}@bench.test",
                created_at=created,
                first_response_target=60,
                resolution_target=480,
                first_response_warn_at=now + offset - timedelta(minutes=12),
                first_response_due_at=now + offset,
                resolution_warn_at=now + offset + timedelta(hours=5),
                resolution_due_at=now + offset + timedelta(hours=6),
                first_response_at=None if is_open else created + timedelta(minutes=30),
                resolved_at=None if is_open else created + timedelta(hours=3),
                closed_at=None if is_open else created + timedelta(hours=4),
                first_response_seconds=None if is_open else 1800,
                resolution_seconds=None if is_open else 10800,
            )
        )
        if len(batch) == 10_000:
            Ticket.objects.bulk_create(batch)
            batch = []
    Ticket.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE service_ticket")


@pytest.mark.parametrize("size", list(SIZES))
def test_service_queue_pages_and_sla_scan(size, committed_tenant, django_db_blocker):
    n_tickets, n_open = SIZES[size]
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        with schema_context(tenant.schema_name):
            started = time.perf_counter()
            _fill(n_tickets, n_open, random.Random(14))
            fill_seconds = round(time.perf_counter() - started, 1)
            clients = {}
            for role in ("manager", "sales"):
                user = User.objects.get(email=f"{role}@{tenant.slug}.test")
                client = Client(HTTP_HOST=f"{tenant.slug}.{settings.BASE_DOMAIN}")
                client.force_login(user)
                clients[role] = client
        results = {"tickets": n_tickets, "open": n_open, "fill_seconds": fill_seconds}
        for role, query in (
            ("manager", "queue=all"),
            ("manager", "queue=unassigned"),
            ("manager", "queue=breaching"),
            ("manager", "queue=all&status=closed&priority=high"),
            ("sales", "queue=mine"),
            ("sales", "queue=team"),
        ):
            client = clients[role]
            client.get(f"/service/?{query}")  # warm
            times, counts = [], []
            for _ in range(5):
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    response = client.get(f"/service/?{query}")
                    times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
                counts.append(len(queries))
            figures = {"median_ms": round(statistics.median(times), 1), "queries": max(counts), "role": role}
            record_benchmark(f"service.queue.{size}.{query}", **figures)
            results[f"{role} {query}"] = figures
        with schema_context(tenant.schema_name):
            started = time.perf_counter()
            raised = len(sla_scan())
            first_scan = round(time.perf_counter() - started, 2)
            started = time.perf_counter()
            again = len(sla_scan())
            second_scan = round(time.perf_counter() - started, 2)
            assert again == 0 and SlaEvent.objects.count() == raised > 0
        record_benchmark(
            f"service.sla_scan.{size}",
            open_tickets=n_open,
            raised=raised,
            first_scan_seconds=first_scan,
            second_scan_seconds=second_scan,
        )
        results.update(raised=raised, first_scan_seconds=first_scan, second_scan_seconds=second_scan)
        print(size, results)
        connection.set_schema_to_public()
