"""Cohort retention and segment migration: one SQL statement each over the scope's querysets (which
carry the user's visibility and the page's filters), and for each cell the customers behind it.

Cohorts: a customer's cohort is the month (tenant time zone) of their first purchase in scope; cell
(cohort, k) counts the cohort's customers who bought in the k-th month after it (k = 0: the first
month, always the whole cohort) and the revenue of those purchases.

Migration: a customer's RFM segment (or lifecycle stage) on a date is the one their latest change
before the end of that day set; the table counts customers by (state on the first date, state on the
second date). "" is "none yet" (no change recorded by then).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import F, Min, Q, QuerySet
from django.db.models.expressions import RawSQL

from segmentation.selectors import segment_transitions, stage_transitions

from .scope import Scope

MAX_COHORT_MONTHS = 24


def _sql(qs: QuerySet) -> tuple[str, tuple]:
    sql, params = qs.query.sql_with_params()
    return sql, tuple(params)


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


# --------------------------------------------------------------------------------------------------
# Cohorts
# --------------------------------------------------------------------------------------------------
@dataclass
class CohortRow:
    month: date
    size: int
    cells: list[dict]  # per k: {"k", "customers", "share", "revenue_per_customer"} (None past today)


def cohort_matrix(scope: Scope, *, months: int, today: date) -> list[CohortRow]:
    """The last `months` cohorts (oldest first), each with its months since the first purchase."""
    months = max(1, min(int(months), MAX_COHORT_MONTHS))
    first_cohort = _add_months(_month_start(today), -(months - 1))
    # The start of every month of the matrix and of the month after it, as instants (midnight on the
    # 1st in the tenant's time zone, daylight saving included): width_bucket() then gives a purchase's
    # month as a number by a binary search, instead of a time-zone conversion and date_trunc per row
    # (about half the statement's time over half a million purchases).
    bounds = [
        datetime.combine(_add_months(first_cohort, i), time.min, tzinfo=scope.zone) for i in range(months + 1)
    ]
    cohort_start, after_last = bounds[0], bounds[-1]
    if scope.filters.channel:  # the first purchase through that channel
        firsts_sql, firsts_params = _sql(
            scope.orders()
            .order_by()
            .values("customer_id")
            .annotate(first=Min("placed_at"))
            .filter(first__gte=cohort_start, first__lt=after_last)
            .values("customer_id", "first")
        )
    else:  # the first purchase is kept on the customer: no pass over every order to find it
        firsts_sql, firsts_params = _sql(
            scope.customers()
            .filter(first_order_at__gte=cohort_start, first_order_at__lt=after_last)
            .order_by()
            .values(customer_id=F("pk"), first=F("first_order_at"))
        )
    orders_sql, orders_params = _sql(  # no ORDER BY: sorting the orders cost more than the rest
        scope.orders()
        .filter(placed_at__gte=cohort_start, placed_at__lt=after_last)  # a cohort's purchases follow it
        .order_by()
        .values("customer_id", "placed_at", "total", "refunded_total")
    )
    # One pass over the cohort customers' purchases, grouped two ways at once (grouping sets):
    # per customer, the set of months they bought in as bits (month m = bit m, numbered 1..months by
    # width_bucket), and per (cohort, month) the revenue. Customers with the same cohort and months
    # are then counted together, so what leaves PostgreSQL is a few thousand rows. (Grouping by
    # (customer, month) first hashed three times as many groups and cost about four times as much.)
    # Subqueries, not CTEs: a CTE used twice is materialised and its row count guessed, which led
    # PostgreSQL to 64,000 index probes instead of one hash join. Money is summed in whole cents
    # (two decimal places): integer sums cost less than numeric ones over half a million rows.
    sql = f"""
        SELECT g.per_cell, g.cohort, g.months_or_month, count(*), sum(g.net)
        FROM (
            SELECT GROUPING(o.customer_id) AS per_cell,
                   CASE WHEN GROUPING(o.customer_id) = 0 THEN min(x.cohort) ELSE x.cohort END AS cohort,
                   CASE WHEN GROUPING(o.customer_id) = 0 THEN bit_or(1 << x.month) ELSE x.month END
                       AS months_or_month,
                   sum(((o.total - o.refunded_total) * 100)::bigint) AS net
            FROM ({orders_sql}) AS o
            JOIN ({firsts_sql}) AS f ON f.customer_id = o.customer_id
            CROSS JOIN LATERAL (
                SELECT width_bucket(f.first, %s::timestamptz[]) AS cohort,
                       width_bucket(o.placed_at, %s::timestamptz[]) AS month
            ) AS x
            GROUP BY GROUPING SETS ((o.customer_id), (x.cohort, x.month))
        ) AS g
        GROUP BY 1, 2, 3
    """  # noqa: S608 - the inner statements are the ORM's, every value is a parameter
    with connection.cursor() as cursor:
        cursor.execute(sql, (*orders_params, *firsts_params, bounds, bounds))
        found = cursor.fetchall()
    counts: dict[tuple[int, int], int] = {}
    revenues: dict[tuple[int, int], Decimal] = {}
    for per_cell, c, value, n, net in found:
        if per_cell:  # value is the month: the revenue of (cohort, month)
            revenues[(c, value - c)] = Decimal(net or 0).scaleb(-2)  # summed in cents
            continue
        bits = value >> c  # value is the set of months: bit 0 is now the cohort's own month
        k = 0
        while bits:
            if bits & 1:
                counts[(c, k)] = counts.get((c, k), 0) + n
            bits >>= 1
            k += 1
    cells: dict[tuple[date, int], tuple[int, Decimal]] = {
        (_add_months(first_cohort, c - 1), k): (n, revenues.get((c, k), Decimal(0)))
        for (c, k), n in counts.items()
    }
    rows = []
    for i in range(months):
        month = _add_months(first_cohort, i)
        size = cells.get((month, 0), (0, Decimal(0)))[0]
        row_cells = []
        for k in range(months):
            if _add_months(month, k) > _month_start(today):
                row_cells.append(None)
                continue
            n, revenue = cells.get((month, k), (0, Decimal(0)))
            row_cells.append(
                {
                    "k": k,
                    "customers": n,
                    "share": round(n / size * 100, 1) if size else None,
                    "revenue_per_customer": (revenue / size).quantize(Decimal("0.01")) if size else None,
                }
            )
        rows.append(CohortRow(month=month, size=size, cells=row_cells))
    return rows


def cohort_customers(scope: Scope, *, cohort: date, k: int) -> QuerySet:
    """The customers of `cohort` (first purchase in its month) who bought in its k-th month after."""
    zone = scope.zone
    cohort = _month_start(cohort)
    cohort_start = datetime.combine(cohort, time.min, tzinfo=zone)
    cohort_end = datetime.combine(_add_months(cohort, 1), time.min, tzinfo=zone)
    month = _add_months(cohort, k)
    month_start = datetime.combine(month, time.min, tzinfo=zone)
    month_end = datetime.combine(_add_months(month, 1), time.min, tzinfo=zone)
    orders = scope.orders()
    bought = orders.filter(placed_at__gte=month_start, placed_at__lt=month_end).values("customer_id")
    if not scope.filters.channel:  # the first purchase is kept on the customer (as in cohort_matrix)
        return scope.customers().filter(
            first_order_at__gte=cohort_start, first_order_at__lt=cohort_end, pk__in=bought
        )
    in_cohort_month = orders.filter(placed_at__gte=cohort_start, placed_at__lt=cohort_end).values(
        "customer_id"
    )
    earlier = orders.filter(placed_at__lt=cohort_start).values("customer_id")
    return scope.customers().filter(pk__in=in_cohort_month).filter(pk__in=bought).exclude(pk__in=earlier)


def cohort_line(rows: list[CohortRow]) -> dict:
    """Average retention by months since the first purchase, weighted by cohort size (the line chart)."""
    if not rows:
        return {"labels": [], "shares": []}
    width = len(rows[0].cells)
    shares = []
    for k in range(width):
        sizes = [r.size for r in rows if r.cells[k] is not None and r.size]
        buyers = [r.cells[k]["customers"] for r in rows if r.cells[k] is not None and r.size]
        shares.append(round(sum(buyers) / sum(sizes) * 100, 1) if sum(sizes) else None)
    return {"labels": list(range(width)), "shares": shares}


# --------------------------------------------------------------------------------------------------
# Segment and stage migration
# --------------------------------------------------------------------------------------------------
DIMENSIONS = ("rfm", "stage")


def _states_sql(scope: Scope, dimension: str) -> tuple[str, tuple]:
    if dimension == "stage":
        qs = stage_transitions(user=scope.user).values("customer_id", "at", "id", state=F("to_stage"))
    else:
        qs = segment_transitions(user=scope.user).values("customer_id", "at", "id", state=F("to_segment"))
    qs = qs.filter(customer_id__in=scope.customers().values("pk")).order_by()
    return _sql(qs)


def _migration_sql(scope: Scope, dimension: str, first: date, second: date) -> tuple[str, tuple]:
    zone = scope.zone
    one = datetime.combine(first + timedelta(days=1), time.min, tzinfo=zone)
    two = datetime.combine(second + timedelta(days=1), time.min, tzinfo=zone)
    states_sql, params = _states_sql(scope, dimension)
    sql = f"""
        WITH t AS ({states_sql}),
        a AS (SELECT DISTINCT ON (customer_id) customer_id, state FROM t WHERE at < %s
              ORDER BY customer_id, at DESC, id DESC),
        b AS (SELECT DISTINCT ON (customer_id) customer_id, state FROM t WHERE at < %s
              ORDER BY customer_id, at DESC, id DESC)
        SELECT b.customer_id, coalesce(a.state, '') AS before, b.state AS after
        FROM b LEFT JOIN a USING (customer_id)
    """
    return sql, (*params, one, two)


def migration_matrix(
    scope: Scope, *, dimension: str, first: date, second: date
) -> dict[tuple[str, str], int]:
    sql, params = _migration_sql(scope, dimension, first, second)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT before, after, count(*) FROM ({sql}) m GROUP BY 1, 2", params)
        return {(before, after): n for before, after, n in cursor.fetchall()}


def migration_customers(
    scope: Scope, *, dimension: str, first: date, second: date, before: str, after: str
) -> QuerySet:
    sql, params = _migration_sql(scope, dimension, first, second)
    ids = RawSQL(
        f"SELECT customer_id FROM ({sql}) m WHERE before = %s AND after = %s", (*params, before, after)
    )
    return scope.customers().filter(pk__in=ids)


# --------------------------------------------------------------------------------------------------
# Lifecycle funnel over a period
# --------------------------------------------------------------------------------------------------
FUNNEL = ("prospect", "new", "repeat", "loyal")


def _stage_at_sql(scope: Scope, when: datetime) -> tuple[str, tuple]:
    states_sql, params = _states_sql(scope, "stage")
    sql = f"""
        SELECT customer_id FROM (
            SELECT DISTINCT ON (customer_id) customer_id, state FROM ({states_sql}) t WHERE at < %s
            ORDER BY customer_id, at DESC, id DESC
        ) s WHERE state = %s
    """
    return sql, (*params, when)


def funnel_customers(scope: Scope, *, stage: str, step: str, start: datetime, end: datetime) -> QuerySet:
    """step "base": in `stage` at the start or entered it in the period; "converted": moved on from
    `stage` to the next funnel stage in the period."""
    moves = stage_transitions(user=scope.user).filter(at__gte=start, at__lt=end)
    if step == "converted":
        following = FUNNEL[FUNNEL.index(stage) + 1]
        moved = moves.filter(from_stage=stage, to_stage=following).values("customer_id")
        return scope.customers().filter(pk__in=moved)
    sql, params = _stage_at_sql(scope, start)
    entered = moves.filter(to_stage=stage).values("customer_id")
    at_start = RawSQL(sql, (*params, stage))
    return scope.customers().filter(Q(pk__in=entered) | Q(pk__in=at_start))


def funnel_rows(scope: Scope, *, start: datetime, end: datetime) -> list[dict]:
    rows = []
    for i, stage in enumerate(FUNNEL[:-1]):
        base = funnel_customers(scope, stage=stage, step="base", start=start, end=end).count()
        converted = funnel_customers(scope, stage=stage, step="converted", start=start, end=end).count()
        rows.append(
            {
                "stage": stage,
                "next": FUNNEL[i + 1],
                "base": base,
                "converted": converted,
                "rate": round(converted / base * 100, 1) if base else None,
            }
        )
    return rows
