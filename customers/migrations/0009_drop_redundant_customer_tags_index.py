"""Fewer index writes per imported customer (issue 18): drop the one index no query needs.

Dropped: `customers_customer_tags_customer_id_0423a302`, the plain btree on
customers_customer_tags(customer_id) that Django adds for the automatic through table of
Customer.tags. The unique index on (customer_id, tag_id) of the same table starts with customer_id, so
every lookup by customer (a customer's tags on the list, the 360 page, exports, merges, the import's
own matching, the foreign key's ON DELETE from customers) is served by that one with the same plan;
the plain index was a second btree insert for every tag link an import writes.

Every other index of the customer table stays, each for the page that uses it (checked for this
migration; none of them is unused):
- customer_email_idx, customer_phone_idx: the search's exact e-mail / E.164 arms, the duplicate check
  while typing (customer_find_existing), the duplicates scan;
- customer_owner_created_idx: a sales user's scope (owner = me) and the owner filter, incl.
  "unassigned" (owner IS NULL, which a partial index would not serve);
- customer_source_idx: the list's source filter, the dashboards' source scope and segment rules on
  the source; a rare source (2% "api" in the demo data, or one a tenant hardly uses) is counted
  through it instead of reading the whole table;
- customer_live_{created,name,spent,orders,last_order}_idx: the list's keyset sorts;
- customer_city_upper_idx: the city filter; customer_custom_fields_gin: custom-field filters
  (custom_fields @> ...) on the list and in segment rules;
- customer_search_trgm, customer_search_han_grams: the search (customers.search_index);
- customer_birthday_key_idx (interactions.followups): My day's birthdays this week;
- customer_binned_idx, customer_merged_into_idx: partial on the few binned / merged rows, so an
  import's new rows are not written to them at all.
"""

from django.db import migrations

INDEX = "customers_customer_tags_customer_id_0423a302"


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0008_search_han_grams_index"),
    ]

    operations = [
        migrations.RunSQL(
            sql=f'DROP INDEX IF EXISTS "{INDEX}"',
            reverse_sql=f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "customers_customer_tags" ("customer_id")',
        ),
    ]
