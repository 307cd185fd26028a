from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0009_drop_redundant_customer_tags_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="OrderChange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("customer_id", models.BigIntegerField()),
                ("txid", models.TextField(editable=False)),
            ],
            options={"verbose_name": "order change", "verbose_name_plural": "order changes"},
        ),
        # The writing transaction's id, filled in by the database (see OrderChange's doc).
        migrations.RunSQL(
            "ALTER TABLE customers_orderchange ALTER COLUMN txid TYPE xid8 USING txid::xid8, "
            "ALTER COLUMN txid SET DEFAULT pg_current_xact_id()",
            reverse_sql="ALTER TABLE customers_orderchange ALTER COLUMN txid DROP DEFAULT, "
            "ALTER COLUMN txid TYPE text USING txid::text",
            state_operations=[],
        ),
        # One function for every tenant, in public (a tenant schema holds tables only, which is what
        # the fast template copy handles: crm/tenancy/cloning.py); it writes to the journal of the
        # schema the statement runs in (the search_path's first, the tenant's).
        migrations.RunSQL(
            """
            CREATE OR REPLACE FUNCTION public.customers_order_journal() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO customers_orderchange (customer_id) SELECT DISTINCT customer_id FROM new_rows;
                ELSIF TG_OP = 'UPDATE' THEN
                    INSERT INTO customers_orderchange (customer_id)
                    SELECT customer_id FROM new_rows UNION SELECT customer_id FROM old_rows;
                ELSE
                    INSERT INTO customers_orderchange (customer_id) SELECT DISTINCT customer_id FROM old_rows;
                END IF;
                RETURN NULL;
            END $$;
            CREATE TRIGGER customers_order_journal_insert AFTER INSERT ON customers_order
                REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.customers_order_journal();
            CREATE TRIGGER customers_order_journal_update AFTER UPDATE ON customers_order
                REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                FOR EACH STATEMENT EXECUTE FUNCTION public.customers_order_journal();
            CREATE TRIGGER customers_order_journal_delete AFTER DELETE ON customers_order
                REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.customers_order_journal();
            """,
            reverse_sql="""
            DROP TRIGGER customers_order_journal_insert ON customers_order;
            DROP TRIGGER customers_order_journal_update ON customers_order;
            DROP TRIGGER customers_order_journal_delete ON customers_order;
            """,
        ),
    ]
