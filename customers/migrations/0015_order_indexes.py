import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Two indexes of the order table nothing needs (at 1,000,000 customers / 8,000,000 orders: 385 MB,
    two of its seven indexes, kept on every order written):
    - the foreign key's own index on customer_id, beside order_customer_placed_idx (customer,
      -placed_at), which serves every lookup by customer;
    - the varchar_pattern_ops copy of the order number's unique index, which Django adds to a
      `unique=True` CharField for LIKE 'prefix%' and no query here makes. The number stays unique:
      the model now names the same constraint in Meta (state only: the constraint is not rebuilt).
    """

    dependencies = [
        ("customers", "0014_customer_search_inner_han"),
    ]

    operations = [
        migrations.AlterField(
            model_name="order",
            name="customer",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="orders",
                to="customers.customer",
                verbose_name="customer",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="order",
                    name="number",
                    field=models.CharField(max_length=64, verbose_name="order number"),
                ),
                migrations.AddConstraint(
                    model_name="order",
                    constraint=models.UniqueConstraint(fields=("number",), name="customers_order_number_key"),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "DROP INDEX IF EXISTS customers_order_number_40a6fdde_like",
                    reverse_sql="CREATE INDEX customers_order_number_40a6fdde_like "
                    "ON customers_order (number varchar_pattern_ops)",
                ),
            ],
        ),
    ]
