import django.contrib.postgres.fields
import django.contrib.postgres.indexes
from django.db import migrations, models

from customers.search_index import HAN, search_text_han_grams, search_text_inner_han


def fill(apps, schema_editor):
    """The customers with a Han character get the columns from the expressions the indexes held (the
    same sets as customers.search_index.search_columns, tests/customers/test_search_index.py); every
    other customer's are empty, as the columns' default left them."""
    Customer = apps.get_model("customers", "Customer")
    Customer.objects.filter(search_text__regex=HAN).update(
        search_han_grams=search_text_han_grams(), search_inner_han=search_text_inner_han()
    )


class Migration(migrations.Migration):
    """The Han characters of search_text (and pairs of them, and all but the name's first) become two
    columns worked out in Python instead of two index expressions evaluated by PostgreSQL: an import
    of 100,000 new customers spent 2.4 s of PostgreSQL's CPU on those two indexes against 0.9 s for the
    same indexes on the columns (customers.models, docs/import-costs.md). The indexes keep their names
    and what they answer; the expressions are dropped before the columns are filled, so the filling
    maintains no index of its own."""

    dependencies = [
        ("customers", "0015_order_indexes"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="customer", name="customer_search_han_grams"),
        migrations.RemoveIndex(model_name="customer", name="customer_search_inner_han"),
        migrations.AddField(
            model_name="customer",
            name="search_han_grams",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.TextField(), blank=True, default=list, editable=False, size=None
            ),
        ),
        migrations.AddField(
            model_name="customer",
            name="search_inner_han",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.TextField(), blank=True, default=list, editable=False, size=None
            ),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="customer",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["search_han_grams"], name="customer_search_han_grams"
            ),
        ),
        migrations.AddIndex(
            model_name="customer",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["search_inner_han"], name="customer_search_inner_han"
            ),
        ),
    ]
