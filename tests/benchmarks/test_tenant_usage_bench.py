"""Usage benchmark: what measuring one company costs at 10,000 and at 100,000 customers with ten orders
each (1,000,000 orders), exact counts against the estimate the daily usage task uses
(crm.tenancy.selectors.row_count_sql), and the whole measurement (one query plus the files walk).

Rows are written with INSERT ... SELECT generate_series in a committed tenant (seconds, not the
minutes the ORM would take), then VACUUM ANALYZE as autovacuum would. Each figure is the median of
RUNS runs on a warm cache. Sizes: USAGE_BENCH_SIZES="10000,100000" (customers; orders are ten times).
Run with `make bench` (or `pytest tests/benchmarks/test_tenant_usage_bench.py -o addopts="" -s`).
"""

import os
import statistics
import time

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from crm.tenancy import selectors
from crm.tenancy.usage import tenant_usage_measure
from tests.benchmarks.conftest import record_benchmark

RUNS = 5
SIZES = [int(size) for size in os.environ.get("USAGE_BENCH_SIZES", "10000,100000").split(",")]


def _fill(schema: str, customers: int) -> None:
    with schema_context(schema), connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO customers_customer (kind, name, email, phone, country, province, city, street,
                   postcode, gender, income_band, occupation, source, email_consent, sms_consent,
                   external_id, custom_fields, search_text, search_han_grams, search_inner_han,
                   total_spent, orders_count, deleted_at, created_at, updated_at, language)
               SELECT 'person', 'Customer ' || g, 'c' || g || '@example.com',
                      '+86139' || lpad(g::text, 8, '0'), 'CN', 'Zhejiang', 'Hangzhou', 'Street ' || g,
                      '310000', '', '', '', 'store', false, false, '', '{}', 'customer ' || g,
                      '{}', '{}', 100, 10,
                      CASE WHEN g %% 100 = 0 THEN now() END,  -- one in a hundred in the bin
                      now(), now(), ''
               FROM generate_series(1, %s) AS g""",
            [customers],
        )
        cursor.execute(
            """INSERT INTO customers_order (number, customer_id, placed_at, status, channel, currency, total,
                   refunded_total, external_id, created_at, updated_at)
               SELECT 'O' || g, c.first + (g %% %s), now() - (g || ' minutes')::interval, 'paid', 'store',
                      'CNY', 10, 0, '', now(), now()
               FROM generate_series(1, %s) AS g,
                    (SELECT min(id) AS first FROM customers_customer) AS c""",
            [customers, customers * 10],
        )
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(f'VACUUM ANALYZE "{schema}".customers_customer')
        cursor.execute(f'VACUUM ANALYZE "{schema}".customers_order')


def _median_ms(sql: str) -> tuple[float, int]:
    timings, value = [], None
    for _run in range(RUNS):
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(sql)
            value = cursor.fetchone()[0]
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), value


@pytest.mark.parametrize("customers", SIZES)
def test_usage_counts_at_size(customers, committed_tenant, django_db_blocker):
    tenant = committed_tenant(name=f"Usage bench {customers}")
    with django_db_blocker.unblock():
        started = time.perf_counter()
        _fill(tenant.schema_name, customers)
        fill_seconds = time.perf_counter() - started
        schema = f'"{tenant.schema_name}"'
        live = customers - customers // 100
        exact_customers_ms, exact_customers = _median_ms(
            f"SELECT count(*) FROM {schema}.customers_customer WHERE deleted_at IS NULL"
        )
        exact_orders_ms, exact_orders = _median_ms(f"SELECT count(*) FROM {schema}.customers_order")
        used_customers_ms, used_customers = _median_ms(
            f"SELECT {selectors.row_count_sql(tenant.schema_name, 'customers')}"
        )
        used_orders_ms, used_orders = _median_ms(
            f"SELECT {selectors.row_count_sql(tenant.schema_name, 'orders')}"
        )
        timings = []
        for _run in range(RUNS):
            started = time.perf_counter()
            figures = tenant_usage_measure(tenant=tenant)
            timings.append((time.perf_counter() - started) * 1000)
        measure_ms = statistics.median(timings)
        load = os.getloadavg()[0]

    assert exact_customers == live and exact_orders == customers * 10
    # Small tables are counted exactly; big ones within a few per cent.
    assert abs(used_customers - live) <= 0.05 * live
    assert abs(used_orders - customers * 10) <= 0.05 * customers * 10
    assert figures.customers == used_customers and figures.orders == used_orders
    result = record_benchmark(
        "tenant_usage_counts",
        customers=customers,
        orders=customers * 10,
        fill_seconds=round(fill_seconds, 1),
        exact_customers_ms=round(exact_customers_ms, 2),
        exact_orders_ms=round(exact_orders_ms, 2),
        counted_customers_ms=round(used_customers_ms, 2),
        counted_orders_ms=round(used_orders_ms, 2),
        counted_customers=used_customers,
        counted_orders=used_orders,
        estimated=customers * 10 >= selectors.EXACT_COUNT_BELOW,
        measure_ms=round(measure_ms, 2),
        database_bytes=figures.database_bytes,
        load_1min=round(load, 2),
    )
    print(result)
