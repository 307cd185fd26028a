from django.db import migrations

# The segmentation recompute's journal (customers.OrderChange) learns when the recycle bin changed:
# a customer binned or restored, or a customer outside the bin deleted, writes a row for customer -1
# ("the bin changed"). Row triggers with a WHEN clause, so that other updates of a customer cost
# nothing (the bin changes a few customers at a time). An incremental run then aggregates every
# stored score for its counts, as customers entered or left them; without such a row it adds its
# own customers' changes to the last run's counts (segmentation.recompute, "Incremental runs").
# Restored customers are still journalled by id as well (migration 0012).

SQL = """
CREATE OR REPLACE FUNCTION public.customers_customer_bin_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO customers_orderchange (customer_id) VALUES (-1);
    RETURN NULL;
END $$;
CREATE TRIGGER customers_customer_journal_bin AFTER UPDATE OF deleted_at ON customers_customer
    FOR EACH ROW WHEN ((OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL))
    EXECUTE FUNCTION public.customers_customer_bin_changed();
CREATE TRIGGER customers_customer_journal_delete AFTER DELETE ON customers_customer
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL)
    EXECUTE FUNCTION public.customers_customer_bin_changed();
"""

REVERSE_SQL = """
DROP TRIGGER customers_customer_journal_bin ON customers_customer;
DROP TRIGGER customers_customer_journal_delete ON customers_customer;
DELETE FROM customers_orderchange WHERE customer_id = -1;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0012_customer_journal"),
    ]

    operations = [migrations.RunSQL(SQL, reverse_sql=REVERSE_SQL)]
