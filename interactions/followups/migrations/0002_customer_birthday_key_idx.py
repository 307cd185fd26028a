"""An index for My day's "birthdays this week" on the customers' table.

It belongs to the page that reads it: the customers app itself never asks by month and day. The
expression is exactly the one `selectors.birthday_key()` generates, so PostgreSQL matches it; partial
on what `customer_list` always filters (living customers with a birthday). Without it the section
scanned every customer (about 30 ms at 100,000).
"""

from django.db import migrations

INDEX = "customer_birthday_key_idx"


class Migration(migrations.Migration):
    dependencies = [
        ("followups", "0001_initial"),
        ("customers", "0004_fewer_customer_indexes"),
    ]

    operations = [
        migrations.RunSQL(
            sql=(
                f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "customers_customer" '
                '(((EXTRACT(MONTH FROM "birthday") * 100) + EXTRACT(DAY FROM "birthday")), "owner_id") '
                'WHERE "birthday" IS NOT NULL AND "deleted_at" IS NULL'
            ),
            reverse_sql=f'DROP INDEX IF EXISTS "{INDEX}"',
        ),
    ]
