"""The planner's estimate of the list's city filter (issue 18).

The filter is `UPPER(city) = UPPER(%s)`, served by `customer_city_upper_idx`. That index is partial
(live customers only), and PostgreSQL keeps no statistics for the expression of a partial index: it
estimated a city at the 0.5% default, 4,985 rows at 1,000,000 customers where 121,000 live in
上海 (52 times too few). The list then counted the filter up to its cap (10,001 rows spread over
the whole table) instead of showing the planner's figure, and joined and sorted as if few matched.

An expression statistics object gives `upper(city)` its own most-common values and histogram, kept
by ANALYZE (and autovacuum) like a column's: the same filter is estimated at 121,231 there.
New tenants get it from the template (crm/tenancy/cloning.py copies statistics objects by name).
"""

from django.db import migrations

NAME = "customer_city_upper_stats"


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0010_orderchange"),
    ]

    operations = [
        migrations.RunSQL(
            sql=f'CREATE STATISTICS IF NOT EXISTS "{NAME}" ON (upper(city::text)) FROM customers_customer',
            reverse_sql=f'DROP STATISTICS IF EXISTS "{NAME}"',
        ),
    ]
