"""Customer search on its indexes (customers.search_index): the same rows as a plain substring search,
in the sales scope and per tenant, and plans PostgreSQL can serve from the indexes."""

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from crm.accounts.models import User
from customers.models import Customer, SecondaryContact
from customers.search import normalise_query
from customers.search_index import (
    han_grams,
    han_grams_contain,
    inner_han,
    is_short_han,
    search_text_han_grams,
    search_text_inner_han,
)
from customers.selectors import customer_list, customer_search
from customers.services import customer_create
from tests.factories import CustomerFactory

NAMES = [
    "王小明",
    "王小",
    "小王",
    "陳大文",
    "陈大文",
    "欧阳娜娜",
    "司马懿",
    "王 小明",
    "Wang 小",
    "Anna 李",
    "John",
]


def _grams_in_python(text: str) -> set[str]:
    han = [c for c in text if is_short_han(c)]
    pairs = {a + b for a, b in itertools.pairwise(text) if is_short_han(a + b)}
    return set(han) | pairs


def _ids(qs) -> list[int]:
    return sorted(qs.values_list("pk", flat=True))


@pytest.fixture
def people(tenant, admin_user):
    return [customer_create(actor=admin_user, name=name) for name in NAMES]


def test_grams_are_the_han_characters_and_adjacent_pairs(people):
    rows = Customer.objects.values_list("search_text", "search_han_grams")
    for text, grams in rows:
        assert set(grams) == _grams_in_python(text), text
    assert {"王", "小", "明", "王小", "小明"} <= set(Customer.objects.get(name="王小明").search_han_grams)
    # a space or a Latin letter between two characters makes no pair
    assert "王小" not in Customer.objects.get(name="王 小明").search_han_grams


# Texts at the edges of the Han ranges (U+3400, U+9FFF, U+F900, U+FAFF and their neighbours outside:
# U+33FF, U+A000, U+F8FF, U+FB00), an Extension B character (outside the ranges), runs of one, two and
# three characters between Latin letters, digits, punctuation and spaces, a repeated character, and
# names that begin (or not) like their text.
EDGES = [
    ("", ""),
    ("王小明 | wang xiao ming | wxm", "王小明"),
    (" 王小明 | wang", " 王小明"),  # a name stored with a leading space: the text is stripped
    ("王王王王 | x", "王王王王"),
    ("\u3400\u9fff\uf900\ufaff \u33ff\ua000\uf8ff\ufb00", "\u3400x"),
    ("a\U00020000b 𠀀王", "a"),
    ("欧阳娜娜1王2小3明-李.四,五;六", "欧阳娜娜"),
    ("陳大文 | 陈大文 | chen da wen", "陳大文"),
    ("anna 李 | anna@qq.com | 8613800138000", "Anna 李"),
    ("x王y王z", "王"),
]


@pytest.mark.parametrize(("text", "name"), EDGES)
def test_python_keeps_the_sets_the_sql_definitions_give(tenant, text, name):
    """customers.search_index.search_columns gives the sets of the index expressions that the columns
    replaced (migration 0016 filled existing customers with those)."""
    customer = CustomerFactory(name=name or "x")
    Customer.objects.filter(pk=customer.pk).update(name=name, search_text=text)
    sql = Customer.objects.annotate(g=search_text_han_grams(), i=search_text_inner_han()).get(pk=customer.pk)
    assert set(han_grams(text)) == set(sql.g) - {""}
    assert set(inner_han(text, name)) == set(sql.i) - {""}


def test_every_write_of_search_text_keeps_the_search_columns(tenant, admin_user, users, settings, tmp_path):
    """save() (the services), the erasure's update, search_text_refresh, the import's COPY and UPDATE
    and the demo's COPY all leave the columns as search_columns makes them from the text and name
    they wrote."""
    import random
    from io import StringIO

    from customers import demo
    from customers.imports.services import search_text_refresh
    from customers.privacy.services import customer_erase
    from customers.services import customer_update
    from tests.customers.test_import_services import run_import

    settings.MEDIA_ROOT = tmp_path

    def columns_agree() -> None:
        for text, name, grams, inner in Customer._base_manager.values_list(
            "search_text", "name", "search_han_grams", "search_inner_han"
        ):
            assert (set(grams), set(inner)) == (set(han_grams(text)), set(inner_han(text, name))), name

    created = customer_create(actor=admin_user, name="王小明")
    assert set(created.search_inner_han) == {"小", "明"}
    customer_update(actor=admin_user, customer=created, data={"name": "李四"})
    assert set(Customer.objects.get(pk=created.pk).search_han_grams) == {"李", "四", "李四"}
    other = customer_create(actor=admin_user, name="张三")
    Customer.objects.filter(pk=other.pk).update(search_text="")  # as an earlier version's import left it
    assert search_text_refresh(runs=[[other.pk, other.pk]]) == 1
    columns_agree()
    customer_erase(actor=admin_user, customer=other, confirmation="ERASE")
    erased = Customer.objects.get(pk=other.pk)
    assert (erased.search_han_grams, erased.search_inner_han) == ([], [])
    assert not Customer.objects.filter(han_grams_contain("张")).exists()
    columns_agree()

    # an import: two new customers (COPY) and a renamed one (UPDATE)
    run_import(admin_user, "姓名,邮箱,外部编号\n周杰伦,z@example.com,Z-1\n欧阳娜娜,o@example.com,O-1\n")
    renamed = Customer.objects.get(external_id="Z-1")
    run_import(admin_user, "姓名,外部编号\n周杰,Z-1\n")
    assert set(Customer.objects.get(pk=renamed.pk).search_han_grams) == {"周", "杰", "周杰"}
    assert Customer.objects.get(external_id="O-1").search_inner_han == ["阳", "娜"]
    columns_agree()

    demo.seed(users=list(users.values()), customers=60, rng=random.Random(1), stdout=StringIO(), force=True)
    assert Customer.objects.exclude(search_han_grams=[]).count() > 40
    columns_agree()


def test_short_chinese_needles_find_exactly_what_a_substring_search_finds(people, admin_user):
    texts = list(Customer.objects.values_list("search_text", flat=True))
    needles = {c for text in texts for c in _grams_in_python(text)} | {"明王", "大", "懿", "李", "龍"}
    assert len(needles) > 20
    for needle in sorted(needles):
        expected = _ids(Customer.objects.filter(search_text__contains=needle))
        assert _ids(Customer.objects.filter(han_grams_contain(needle))) == expected, needle
        # through the list, a traditional character is looked up in its simplified form
        simplified = _ids(Customer.objects.filter(search_text__contains=normalise_query(needle)))
        assert _ids(customer_list(user=admin_user, filters={"q": needle})) == simplified, needle


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("王", ["王 小明", "王小", "王小明", "小王"]),
        ("小王", ["小王"]),
        ("王小", ["王小", "王小明"]),
        ("陳", ["陈大文", "陳大文"]),  # traditional query, simplified in search_text of both
        ("欧阳", ["欧阳娜娜"]),
        ("李", ["Anna 李"]),
        ("小", ["Wang 小", "王 小明", "王小", "王小明", "小王"]),
    ],
)
def test_surname_and_given_name_searches(people, admin_user, query, expected):
    assert is_short_han(normalise_query(query))
    found = customer_list(user=admin_user, filters={"q": query})
    assert sorted(found.values_list("name", flat=True)) == sorted(expected)


def test_short_chinese_search_keeps_the_sales_scope(tenant, sales_user, sales_user2):
    mine = CustomerFactory(owner=sales_user, name="王一")
    shared = CustomerFactory(owner=sales_user2, name="王二", shared_with=[sales_user])
    CustomerFactory(owner=sales_user2, name="王三")
    CustomerFactory(owner=None, name="王四")
    for query in ("王", "王二", "王三"):
        found = set(customer_list(user=sales_user, filters={"q": query}))
        assert found == {c for c in (mine, shared) if query in c.name}, query


def test_search_finds_merged_in_contacts_and_stays_in_scope(tenant, sales_user, sales_user2):
    mine = CustomerFactory(owner=sales_user, name="Mine")
    theirs = CustomerFactory(owner=sales_user2, name="Theirs")
    for customer, value in ((mine, "old.mine@qq.com"), (theirs, "old.theirs@qq.com")):
        SecondaryContact.objects.create(
            customer=customer, kind="email", value=value, search_value=value, source_label="x"
        )
    assert list(customer_list(user=sales_user, filters={"q": "old.mine"})) == [mine]
    assert list(customer_list(user=sales_user, filters={"q": "old.theirs"})) == []
    assert set(customer_list(user=sales_user2, filters={"q": "qq.com"})) == {theirs}


def test_search_reads_one_query_whatever_the_path(people, admin_user):
    for query in ("王", "王小明", "wang", "+86 138 0013 8000", "a@b.cn"):
        with CaptureQueriesContext(connection) as queries:
            list(customer_list(user=admin_user, filters={"q": query}))
        assert len(queries) == 1, query


def test_tenants_do_not_see_each_others_short_name_matches(tenant_a, tenant_b):
    with schema_context(tenant_b.schema_name):
        beta_admin = User.objects.filter(role="admin").first()
        CustomerFactory(name="王贝塔")
        assert customer_list(user=beta_admin, filters={"q": "王"}).count() == 1
    with schema_context(tenant_a.schema_name):
        alpha_admin = User.objects.filter(role="admin").first()
        CustomerFactory(name="王阿尔法")
        assert list(customer_list(user=alpha_admin, filters={"q": "王"}).values_list("name", flat=True)) == [
            "王阿尔法"
        ]


def _plan(qs) -> str:
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        # A handful of rows: PostgreSQL would rightly read the whole table. Switched off, as are plain
        # index scans (a walk of a list index filtering every row), what is left are the bitmap scans
        # of indexes whose condition the query names: the plan shows which indexes can serve it.
        cursor.execute("ANALYZE customers_customer")
        for setting in ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan"):
            cursor.execute(f"SET LOCAL {setting} = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        for setting in ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan"):
            cursor.execute(f"SET LOCAL {setting} = on")
    return plan


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("王", "customer_search_han_grams"),
        ("王小", "customer_search_han_grams"),
        ("王小明", "customer_search_trgm"),
        ("wangxiao", "customer_search_trgm"),
        ("138 0013 8000", "customer_search_trgm"),
    ],
)
def test_every_arm_of_the_search_is_served_by_an_index(people, query, index):
    # the search condition alone (the list adds "not in the bin", which partial list indexes cover)
    plan = _plan(customer_search(Customer.objects.order_by(), query))
    assert index in plan, plan
    # merged-in contacts are looked up once, on the primary key, not by a sub-plan per customer row
    assert "SubPlan" not in plan, plan
    assert "BitmapOr" in plan, plan
    assert "Seq Scan on customers_customer" not in plan, plan


def test_the_grams_query_matches_the_index_expression(people):
    # The index is used only when the query spells the expression exactly as the index does.
    plan = _plan(Customer.objects.filter(han_grams_contain("王")))
    assert "customer_search_han_grams" in plan, plan
    with pytest.raises(ValueError):
        han_grams_contain("王小明")


def test_a_search_expected_to_match_very_many_shows_the_planners_estimate(tenant, manager_user, monkeypatch):
    import customers.selectors as selectors
    from customers.selectors import customer_count

    CustomerFactory.create_batch(6, name="王某")
    CustomerFactory(name="Li")
    qs = customer_list(user=manager_user, filters={"q": "王"})
    counted = customer_count(user=manager_user, qs=qs, filters={"q": "王"})
    assert (counted.value, counted.exact) == (6, True)
    # past the threshold nothing is counted: the planner's figure is shown as an estimate
    monkeypatch.setattr(selectors, "ESTIMATE_FROM", 0)
    with CaptureQueriesContext(connection) as queries:
        estimated = customer_count(user=manager_user, qs=qs, filters={"q": "王"})
    assert estimated.exact is False and estimated.capped is False and estimated.value >= 1
    assert len(queries) == 1 and queries.captured_queries[0]["sql"].startswith("EXPLAIN")
    # a manager's list without a search or filter is not estimated this way (nor counted at all
    # once the table is big: customer_table_estimate)
    plain = customer_count(user=manager_user, qs=customer_list(user=manager_user), filters={"city": ""})
    assert (plain.value, plain.exact) == (7, True)


def test_a_filter_expected_to_hold_very_many_shows_the_planners_estimate(
    tenant, manager_user, sales_user, monkeypatch
):
    import customers.selectors as selectors
    from customers.selectors import customer_count

    CustomerFactory.create_batch(5, city="上海", owner=sales_user, name="王某")
    CustomerFactory(city="北京")
    filters = {"city": "上海"}
    qs = customer_list(user=manager_user, filters=filters)
    assert customer_count(user=manager_user, qs=qs, filters=filters) == selectors.TotalEstimate(5, exact=True)
    monkeypatch.setattr(selectors, "ESTIMATE_FROM", 0)
    for user, filters in (
        (manager_user, {"city": "上海"}),
        (sales_user, {}),
        (manager_user, {"q": "王", "city": "上海"}),
        (sales_user, {"q": "王"}),
    ):
        qs = customer_list(user=user, filters=filters)
        with CaptureQueriesContext(connection) as queries:
            estimated = customer_count(user=user, qs=qs, filters=filters)
        assert estimated.exact is False and estimated.capped is False and estimated.value >= 1, user
        assert len(queries) == 1 and queries.captured_queries[0]["sql"].startswith("EXPLAIN")


def _estimated_rows(qs) -> int:
    from customers.selectors import search_estimate

    return search_estimate(qs)


def test_the_city_filter_is_estimated_from_the_citys_own_statistics(tenant, manager_user):
    """`UPPER(city) = ...` is what the filter asks. The partial index on it keeps no statistics, so
    without the statistics object (customers migration 0011) PostgreSQL guessed 0.5% of the table for
    any city: 4,985 rows at 1,000,000 customers where 121,000 live in 上海."""
    CustomerFactory.create_batch(300, city="上海")
    CustomerFactory.create_batch(100, city="北京")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE customers_customer")
    shanghai = _estimated_rows(customer_list(user=manager_user, filters={"city": " 上海 "}))
    beijing = _estimated_rows(customer_list(user=manager_user, filters={"city": "北京"}))
    assert 240 <= shanghai <= 360 and 70 <= beijing <= 130, (shanghai, beijing)


def test_a_sales_reps_list_is_estimated_from_the_customers_they_own(
    tenant, sales_user, sales_user2, monkeypatch
):
    """The scope's shares are an array of ids (`visible_to`), which the planner counts as a few rows.
    As `id IN (shared with me)` the arm got the planner's default selectivity (half the table): a
    rep owning 30% of 1,000,000 customers was shown "about 648,000", and a rep's searches were
    estimated at twice their matches."""
    import customers.selectors as selectors
    from customers.selectors import customer_count

    CustomerFactory.create_batch(20, owner=sales_user, name="王某")
    CustomerFactory.create_batch(380, owner=sales_user2, name="王某")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE customers_customer")
    monkeypatch.setattr(selectors, "ESTIMATE_FROM", 0)
    for filters in ({}, {"q": "王"}):
        qs = customer_list(user=sales_user, filters=filters)
        estimated = customer_count(user=sales_user, qs=qs, filters=filters)
        assert estimated.exact is False and 10 <= estimated.value <= 40, (filters, estimated)
