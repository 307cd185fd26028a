"""A one-character Chinese search sorted by name, read in two parts (`customer_page(han_prefix=)`):
the customers whose name begins with the character, walked along the name index from it, and the
other matches, read through the inner-characters index (customers.search_index). Together they must
be the plain query's rows in its order, page after page, both ways, as a manager and as a sales rep.

The data has what the two parts must not miss: the character inside a name (李王), a traditional name
found through its simplified form (search 陈 for 陳大文, whose search text begins 陳), a name the search
text does not begin with (a leading space), a Latin name found only through a merged-in contact, and
names that sort before, inside and after the names beginning with the character."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import customers.selectors as selectors
from customers.models import Customer, SecondaryContact
from customers.search_index import inner_han_contain, search_columns
from customers.selectors import TotalEstimate, customer_list, customer_page, page_han_prefix
from tests.customers.test_list_strategies import _plain_order, _walk
from tests.customers.test_search_index import _plan
from tests.factories import CustomerFactory

NAMES = [
    "王小明",
    "王芳",
    "王",
    "王小明",
    "李王",
    "陈王五",
    "Anna 1",
    "Bob",
    "王大伟",
    "黄王",
    "陳大文",
    "陈小红",
    "王陈",
    "Zoe 陈",
    "张三",
    "王芳",
    "王二小",
    "Li Wang",
    "赵王氏",
    "王王",
]


@pytest.fixture
def names(tenant, sales_user, sales_user2):
    owners = [sales_user, sales_user2, None]
    made = [
        CustomerFactory(name=name, email=f"p{i}@example.com", owner=owners[i % 3])
        for i, name in enumerate(NAMES)
    ]
    # A name the search text does not begin with (search_text is stripped; a stored name may not be).
    leading = CustomerFactory(name="王五", owner=sales_user)
    columns = search_columns(leading.search_text, " 王五")  # kept with the name, as the services do
    Customer.objects.filter(pk=leading.pk).update(name=" 王五", **columns)
    merged_in = CustomerFactory(name="Carl", owner=sales_user)
    SecondaryContact.objects.create(
        customer=merged_in,
        kind=SecondaryContact.Kind.EMAIL,
        value="wang@qq.com",
        search_value="王老板 wang@qq.com",
    )
    shared = next(c for c in made if c.owner == sales_user2 and "王" in c.name)
    shared.shared_with.add(sales_user)
    binned = next(c for c in made if c.owner == sales_user and c.name.startswith("王"))
    Customer.objects.filter(pk=binned.pk).update(deleted_at=binned.created_at)
    return {"leading": leading, "merged_in": merged_in, "shared": shared, "binned": binned}


@pytest.mark.parametrize("size", [1, 3, 50])
@pytest.mark.parametrize("query", ["王", "陈", "黄"])
def test_the_two_parts_give_the_plain_query_s_rows_in_its_order(names, query, size, manager_user, sales_user):
    for user in (manager_user, sales_user):
        qs = customer_list(user=user, filters={"q": query})
        for sort in ("name", "-name"):
            expected = _plain_order(qs, sort)
            forward, backward = _walk(qs, sort, matches_first=False, size=size, han_prefix=query)
            assert forward == expected, (user, sort)
            assert backward == expected, (user, sort)
    manager_matches = set(customer_list(user=manager_user, filters={"q": "王"}).values_list("pk", flat=True))
    assert {names["leading"].pk, names["merged_in"].pk, names["shared"].pk} <= manager_matches
    assert names["binned"].pk not in manager_matches


def test_the_other_matches_are_read_through_their_own_index(names, manager_user):
    qs = customer_list(user=manager_user, filters={"q": "王"})
    with CaptureQueriesContext(connection) as queries:
        page = customer_page(qs, sort="name", page_size=5, han_prefix="王")
    assert [c.pk for c in page.rows] == _plain_order(qs, "name")[:5]
    sqls = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("SET ")]
    assert len(sqls) == 3, sqls  # the names beginning with 王, the other matches, the tags
    prefixed = next(sql for sql in sqls if '"customers_customer"."name" < \'玌\'' in sql)
    assert '"customers_customer"."name" >= \'王\'' in prefixed
    rest = next(sql for sql in sqls if "NULLS FIRST" in sql)
    assert '"customers_customer"."search_inner_han" @>' in rest
    # the condition is on the indexed column: PostgreSQL can serve it from the index
    plan = _plan(Customer.objects.filter(inner_han_contain("王")))
    assert "customer_search_inner_han" in plan, plan


def test_the_page_is_split_only_where_most_matches_begin_with_the_character(names, manager_user, monkeypatch):
    dense = TotalEstimate(20_000, exact=False)
    assert (
        page_han_prefix(
            user=manager_user, filters={"q": "王"}, sort="name", total=TotalEstimate(11, exact=False)
        )
        == "王"
    )
    assert (
        page_han_prefix(
            user=manager_user, filters={"q": "王"}, sort="-name", total=TotalEstimate(11, exact=False)
        )
        == "王"
    )
    # counted exactly: the matches are read first anyway
    assert (
        page_han_prefix(
            user=manager_user, filters={"q": "王"}, sort="name", total=TotalEstimate(11, exact=True)
        )
        is None
    )
    # another sort, two characters, a Latin needle: not this way
    assert page_han_prefix(user=manager_user, filters={"q": "王"}, sort="-total_spent", total=dense) is None
    assert page_han_prefix(user=manager_user, filters={"q": "王小"}, sort="name", total=dense) is None
    assert page_han_prefix(user=manager_user, filters={"q": "wang"}, sort="name", total=dense) is None
    # far more matches than names beginning with the character: a given name's character
    monkeypatch.setattr(selectors, "HAN_PREFIX_REST", 5)
    assert (
        page_han_prefix(
            user=manager_user, filters={"q": "王"}, sort="name", total=TotalEstimate(40, exact=False)
        )
        is None
    )
