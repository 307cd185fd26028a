"""The fast template copy produces the same schema as the template, and falls back when it cannot."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from crm.accounts.models import User
from crm.tenancy import cloning, services

TEMPLATE = "tenant_template"


@pytest.fixture
def public(db):
    connection.set_schema_to_public()
    yield
    connection.set_schema_to_public()


def _shape(schema: str) -> dict[str, set]:
    """Columns, constraints and indexes of `schema`, with the schema's own name taken out."""

    def rows(sql: str) -> set:
        with connection.cursor() as cursor:
            cursor.execute(sql, {"schema": schema})
            return {tuple(str(v).replace(f"{schema}.", "S.") for v in row) for row in cursor.fetchall()}

    return {
        "triggers": rows(
            "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relnamespace = %(schema)s::regnamespace AND NOT t.tgisinternal"
        ),
        "columns": rows(
            """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                      a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid),
                      row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind = 'r'
                  AND a.attnum > 0 AND NOT a.attisdropped"""
        ),
        "constraints": rows(
            """SELECT c.relname, co.conname, co.contype, pg_get_constraintdef(co.oid), co.condeferrable
                 FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid
                WHERE co.connamespace = %(schema)s::regnamespace"""
        ),
        "indexes": rows(
            """SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_class i
                WHERE i.relnamespace = %(schema)s::regnamespace AND i.relkind = 'i'"""
        ),
        "storage": rows(  # e.g. loyalty_member's fillfactor
            """SELECT c.relname, c.reloptions FROM pg_class c
                WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind = 'r'"""
        ),
        "statistics": rows(  # e.g. customers' search_text
            """SELECT c.relname, a.attname, a.attstattarget FROM pg_attribute a
                 JOIN pg_class c ON c.oid = a.attrelid
                WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind = 'r' AND a.attnum > 0
                  AND NOT a.attisdropped AND a.attstattarget >= 0"""
        ),
        "extended statistics": rows(  # e.g. customers' upper(city), under its own name
            """SELECT s.stxname, pg_get_statisticsobjdef(s.oid), s.stxstattarget FROM pg_statistic_ext s
                WHERE s.stxnamespace = %(schema)s::regnamespace"""
        ),
        "sequences": rows(
            "SELECT count(*) FROM pg_class WHERE relnamespace = %(schema)s::regnamespace AND relkind = 'S'"
        ),
    }


def _rows(schema: str, table: str) -> list:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT * FROM "{schema}".{table} ORDER BY 1')
        return cursor.fetchall()


def test_the_template_holds_only_what_the_fast_copy_handles(public):
    assert cloning.unsupported_objects(TEMPLATE) == []


def test_fast_copy_has_the_templates_tables_constraints_indexes_and_rows(public):
    cloning.clone_schema_fast(source=TEMPLATE, target="copy_check")
    template, copy = _shape(TEMPLATE), _shape("copy_check")
    for part in ("columns", "constraints", "indexes", "storage", "statistics", "sequences", "triggers"):
        assert copy[part] == template[part], part
    assert copy["extended statistics"] == template["extended statistics"] != set()
    assert "customer_city_upper_stats" in {name for name, _definition, _target in copy["extended statistics"]}
    assert len(template["triggers"]) == 7  # the journal's (customers.OrderChange): orders, customers
    assert ("loyalty_member", "['fillfactor=70']") in copy["storage"]
    assert ("customers_customer", "search_text", "1000") in copy["statistics"]
    assert len(template["indexes"]) > 30 and len(template["constraints"]) > 50
    for table in ("django_migrations", "django_content_type", "auth_permission"):
        assert _rows("copy_check", table) == _rows(TEMPLATE, table) != []


def test_fast_copy_works_as_a_tenant_schema(public):
    cloning.clone_schema_fast(source=TEMPLATE, target="copy_use")
    with schema_context("copy_use"):
        first = User.objects.create_user(email="one@copy.test", password="x")
        second = User.objects.create_user(email="two@copy.test", password="x")
        assert second.pk == first.pk + 1
        from django.contrib.contenttypes.models import ContentType

        # Copied content types keep their ids; new ones continue after them.
        assert ContentType.objects.get_for_model(User).pk == _content_type_id(TEMPLATE, "accounts", "user")
    with schema_context(TEMPLATE):
        assert not User.objects.exists()


def _content_type_id(schema: str, app: str, model: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT id FROM "{schema}".django_content_type WHERE app_label = %s AND model = %s', [app, model]
        )
        return cursor.fetchone()[0]


def test_objects_the_fast_copy_cannot_handle_are_reported(public):
    cloning.clone_schema_fast(source=TEMPLATE, target="copy_src")
    with connection.cursor() as cursor:
        cursor.execute('CREATE VIEW "copy_src".v_people AS SELECT id FROM "copy_src".accounts_user')
        cursor.execute('CREATE SEQUENCE "copy_src".loose_seq')
        cursor.execute(
            'CREATE FUNCTION "copy_src".touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$'
        )
        cursor.execute(
            'CREATE TRIGGER touch BEFORE UPDATE ON "copy_src".accounts_user '
            'FOR EACH ROW EXECUTE FUNCTION "copy_src".touch()'
        )
    found = " | ".join(cloning.unsupported_objects("copy_src"))
    for expected in ("v_people", "loose_seq", "function touch", "trigger touch"):
        assert expected in found


def test_provisioning_falls_back_to_django_tenants_clone_when_the_template_has_a_view(public, platform_admin):
    with connection.cursor() as cursor:
        cursor.execute(
            f'CREATE VIEW "{TEMPLATE}".v_users AS SELECT id, email FROM "{TEMPLATE}".accounts_user'
        )
    tenant = services.tenant_create(
        actor=platform_admin, name="Viewy", slug="viewy", admin_email="a@viewy.test"
    )
    services.tenant_provision(tenant_id=tenant.pk, admin_password="pass-1234-abcd")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM viewy.v_users")
        assert cursor.fetchone()[0] == 1


def _spare_names() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, '_spare_') ORDER BY 1")
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def no_spares(public):
    with connection.cursor() as cursor:
        for name in _spare_names():
            cursor.execute(f'DROP SCHEMA "{name}" CASCADE')


def test_a_spare_is_prepared_once_and_named_after_the_template_version(no_spares):
    version = cloning.template_version(TEMPLATE)
    assert cloning.spares_prepare(source=TEMPLATE) == 1
    assert cloning.spares_prepare(source=TEMPLATE) == 0
    [spare] = _spare_names()
    assert spare.startswith(f"_spare_{version}_")
    assert _shape(spare) == _shape(TEMPLATE)


def test_provisioning_renames_a_ready_spare_instead_of_copying(
    no_spares, platform_admin, django_assert_max_num_queries
):
    services.tenant_spares_prepare()
    [spare] = _spare_names()
    spare_oid = _schema_oid(spare)
    tenant = services.tenant_create(
        actor=platform_admin, name="Sparrow", slug="sparrow", admin_email="a@sparrow.test"
    )
    services.tenant_provision(tenant_id=tenant.pk, admin_password="pass-1234-abcd")
    assert _spare_names() == []
    assert _schema_oid("sparrow") == spare_oid  # the same schema, renamed
    with schema_context("sparrow"):
        assert User.objects.get().email == "a@sparrow.test"
    # Without a spare, provisioning copies the template as before.
    other = services.tenant_create(
        actor=platform_admin, name="Finch", slug="finch", admin_email="a@finch.test"
    )
    services.tenant_provision(tenant_id=other.pk, admin_password="pass-1234-abcd")
    assert _shape("finch") == _shape(TEMPLATE)


def _schema_oid(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT oid FROM pg_namespace WHERE nspname = %s", [name])
        return cursor.fetchone()[0]


def test_spares_of_an_older_template_are_never_used_and_get_dropped(no_spares):
    with connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "_spare_0000000000_old1"')
    assert cloning.spare_take(source=TEMPLATE, target="never_made") is False
    assert cloning.spares_prepare(source=TEMPLATE) == 1
    assert "_spare_0000000000_old1" not in _spare_names() and len(_spare_names()) == 1


def test_no_spares_for_a_template_the_fast_copy_cannot_handle(no_spares):
    version = cloning.template_version(TEMPLATE)
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "_spare_{version}_made"')
        cursor.execute(f'CREATE VIEW "{TEMPLATE}".v_any AS SELECT 1 AS one')
    assert cloning.spares_prepare(source=TEMPLATE) == 0
    assert _spare_names() == []
