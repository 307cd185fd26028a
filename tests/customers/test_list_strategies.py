"""The customer list's two ways of reading a search's page (customers.selectors.customer_page):
walking the sort's index and testing each row (the planner's choice), or reading every match through
the search's index and sorting them (`matches_first`, when the matches were counted exactly). Both
must give the rows of the plain query, in its order, page after page, forwards, backwards and from
the last page; a sales rep sees their own and shared customers only, on either path.

The data is built like the demo's, where the plain walk was slow: "qq.com" is in the e-mail of the
Chinese names and of none of the Latin ones, which sort first by name; ties on every sort value,
customers without a purchase (NULL last purchase), two reps, one customer shared, one in the bin,
one found only through a merged-in contact."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import customers.selectors as selectors
from customers.models import Customer, SecondaryContact
from customers.selectors import (
    TotalEstimate,
    customer_count,
    customer_list,
    customer_page,
    page_reads_matches_first,
    parse_sort,
)
from tests.factories import CustomerFactory

LIST = "/customers/"
SORTS = ["-created", "created", "name", "-name", "-total_spent", "orders", "last_order", "-last_order"]
CHINESE = ["王小明", "王大伟", "王芳", "李娜", "王小明"]  # a repeated name: ties on the sort by name


@pytest.fixture
def crowd(tenant, manager_user, sales_user, sales_user2):
    now = timezone.now()
    owners = [sales_user, sales_user2, None, sales_user]
    made = []
    for i in range(40):
        chinese = i % 4 != 0
        customer = CustomerFactory(
            name=CHINESE[i % len(CHINESE)] if chinese else f"Anna {i % 7}",
            email=f"c{i}@qq.com" if chinese else f"c{i}@example.com",
            owner=owners[i % len(owners)],
            total_spent=Decimal(i % 4),
            orders_count=i % 3,
            last_order_at=None if i % 5 == 0 else now - timedelta(days=i % 6),
        )
        made.append(customer)
    shared = next(c for c in made if c.owner == sales_user2 and "qq.com" in c.email)
    shared.shared_with.add(sales_user)
    binned = next(c for c in made if c.owner == sales_user and "qq.com" in c.email)
    Customer.objects.filter(pk=binned.pk).update(deleted_at=now)
    merged_in = next(c for c in made if c.owner == sales_user and "example.com" in c.email)
    SecondaryContact.objects.create(
        customer=merged_in, kind=SecondaryContact.Kind.EMAIL, value="old@qq.com", search_value="old@qq.com"
    )
    return {"shared": shared, "binned": binned, "merged_in": merged_in}


def _plain_order(qs, sort: str) -> list[int]:
    """The list's order as one plain query: the sort value (NULLs last), then the id, one direction."""
    option, descending = parse_sort(sort)
    key = F(option.path).desc(nulls_last=True) if descending else F(option.path).asc(nulls_last=True)
    return list(qs.order_by(key, "-pk" if descending else "pk").values_list("pk", flat=True))


def _walk(qs, sort: str, *, matches_first: bool, size: int = 4, **read) -> tuple[list[int], list[int]]:
    """Every page forwards by cursor, then from the last page backwards by cursor: both id lists.
    `read`: more of customer_page's ways of reading (bounded_walk=True)."""
    total = qs.count()
    pages = total // size + 2  # more pages than that: the cursors go round in circles
    forward, cursor = [], None
    for _ in range(pages):
        page = customer_page(
            qs, sort=sort, cursor=cursor, page_size=size, matches_first=matches_first, **read
        )
        forward.extend(c.pk for c in page.rows)
        if not page.has_next:
            break
        cursor = page.next_cursor
    else:
        pytest.fail(f"more than {pages} pages forwards")
    last = customer_page(
        qs,
        sort=sort,
        direction="last",
        page_size=size,
        last_rows=total % size or size,
        matches_first=matches_first,
        **read,
    )
    backward, cursor = [c.pk for c in last.rows], last.previous_cursor
    for _ in range(pages):
        if not cursor:
            break
        page = customer_page(
            qs,
            sort=sort,
            cursor=cursor,
            direction="prev",
            page_size=size,
            matches_first=matches_first,
            **read,
        )
        backward = [c.pk for c in page.rows] + backward
        cursor = page.previous_cursor
    else:
        pytest.fail(f"more than {pages} pages backwards")
    return forward, backward


def _may_see(user) -> set[int]:
    """What a user may see, worked out in Python from the rows (not through the scope's query)."""
    live = Customer.objects.filter(deleted_at__isnull=True).prefetch_related("shared_with")
    if user.sees_all_customers:
        return {c.pk for c in live}
    return {c.pk for c in live if c.owner_id == user.pk or user in c.shared_with.all()}


@pytest.mark.parametrize("role", ["manager", "sales", "sales2"])
@pytest.mark.parametrize("query", ["qq.com", "王"])
def test_both_ways_give_the_plain_query_s_rows_in_its_order(
    crowd, role, query, manager_user, sales_user, sales_user2
):
    user = {"manager": manager_user, "sales": sales_user, "sales2": sales_user2}[role]
    qs = customer_list(user=user, filters={"q": query})
    visible = _may_see(user)
    matching = set(qs.values_list("pk", flat=True))
    assert len(matching) >= 8 and matching <= visible  # several pages, and nothing the user may not see
    assert crowd["binned"].pk not in matching
    if query == "qq.com" and role != "sales2":
        assert crowd["merged_in"].pk in matching
    if role == "sales":
        assert crowd["shared"].pk in matching
    for sort in SORTS:
        expected = _plain_order(qs, sort)
        for matches_first in (False, True):
            forward, backward = _walk(qs, sort, matches_first=matches_first)
            assert forward == expected, (sort, matches_first)
            assert backward == expected, (sort, matches_first)
            assert set(forward) <= visible


@pytest.mark.parametrize("bound, most", [(1, 2), (3, 5), (3, 100_000), (7, 14), (100, 200)])
@pytest.mark.parametrize("query", ["qq.com", "王"])
def test_a_bounded_walk_gives_the_plain_query_s_rows_in_its_order(
    crowd, query, bound, most, manager_user, sales_user, monkeypatch
):
    """The walk stops after `bound` live customers in sort order, walks a second stretch sized by the
    matches it found (at most `most` customers in all), and reads the rest of the page from the
    matches past that point: bounds in the middle of a page, at a page's edge, among the Latin names
    (which sort first by name, where 王 matches nothing), and past the whole list."""
    monkeypatch.setattr(selectors, "WALK_BOUND", bound)
    monkeypatch.setattr(selectors, "MAX_WALK", most)
    for user in (manager_user, sales_user):
        qs = customer_list(user=user, filters={"q": query})
        for sort in SORTS:
            expected = _plain_order(qs, sort)
            forward, backward = _walk(qs, sort, matches_first=False, bounded_walk=True)
            assert forward == expected, (user, sort)
            assert backward == expected, (user, sort)


def test_a_bounded_walk_stops_at_its_bound(crowd, manager_user, monkeypatch):
    """Past the bound the page comes from the matches, sorted (no index gives that order), and the
    walk's own query carries the bound: the sort index is read only so far."""
    monkeypatch.setattr(selectors, "WALK_BOUND", 3)
    qs = customer_list(user=manager_user, filters={"q": "王"})
    with CaptureQueriesContext(connection) as queries:
        page = customer_page(qs, sort="name", page_size=4, bounded_walk=True)
    assert [c.pk for c in page.rows] == _plain_order(qs, "name")[:4]
    third = list(Customer.objects.filter(deleted_at__isnull=True).order_by("name", "pk"))[2]
    searched = '"customers_customer"."search_han_grams" @>'  # the search's condition: a page's query
    pages = [q["sql"] for q in queries.captured_queries if searched in q["sql"]]
    walked, matched = [sql for sql in pages if "ORDER BY" in sql][:2]
    assert f'"customers_customer"."id" <= {third.pk}' in walked, walked
    assert f'"customers_customer"."id" > {third.pk}' in matched and "NULLS FIRST" in matched, matched


def test_a_rep_never_sees_another_rep_s_customers_on_either_path(crowd, sales_user, sales_user2, monkeypatch):
    monkeypatch.setattr(selectors, "WALK_BOUND", 5)  # the bounded walk stops inside the list
    theirs = set(Customer.objects.filter(owner=sales_user2).values_list("pk", flat=True)) - {
        crowd["shared"].pk
    }
    mine = set(Customer.objects.filter(owner=sales_user).values_list("pk", flat=True))
    for query in ("qq.com", "王", "anna"):
        qs = customer_list(user=sales_user, filters={"q": query})
        for sort in ("name", "-last_order"):
            for read in ({"matches_first": False}, {"matches_first": True}, {"bounded_walk": True}):
                forward, backward = _walk(qs, sort, **{"matches_first": False, **read})
                assert not set(forward) & theirs and not set(backward) & theirs, (query, sort, read)
                assert set(forward) <= mine | {crowd["shared"].pk}


def test_matches_first_only_for_a_search_counted_exactly(crowd, manager_user, monkeypatch):
    exact = TotalEstimate(30, exact=True)
    assert page_reads_matches_first(filters={"q": "qq.com"}, total=exact)
    assert not page_reads_matches_first(filters={}, total=exact)  # no search: the list's own indexes
    assert not page_reads_matches_first(filters={"q": "li"}, total=exact)  # no trigram: no index serves it
    for served in ("王", "王小", "wangxiao", "138 0013", "qq.com"):
        assert page_reads_matches_first(filters={"q": served}, total=exact), served
    assert not page_reads_matches_first(filters={"q": "qq.com"}, total=TotalEstimate(10_000, False, True))
    assert not page_reads_matches_first(filters={"q": "qq.com"}, total=TotalEstimate(95_843, exact=False))
    qs = customer_list(user=manager_user, filters={"q": "qq.com"})
    counted = customer_count(user=manager_user, qs=qs, filters={"q": "qq.com"})
    assert counted.exact and page_reads_matches_first(filters={"q": "qq.com"}, total=counted)
    monkeypatch.setattr(selectors, "COUNT_CAP", 5)
    capped = customer_count(user=manager_user, qs=qs, filters={"q": "qq.com"})
    assert capped.capped and not page_reads_matches_first(filters={"q": "qq.com"}, total=capped)


def _explain(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def _page_query(qs, sort: str, *, matches_first: bool) -> str:
    with CaptureQueriesContext(connection) as queries:
        customer_page(qs, sort=sort, page_size=4, matches_first=matches_first)
    (sql,) = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith('SELECT "customers_customer"."id"')
    ]
    return sql


@pytest.mark.parametrize("sort", ["name", "-total_spent", "-created", "last_order"])
def test_no_index_can_give_the_matches_first_order(crowd, manager_user, sort):
    """The point of matches_first: PostgreSQL cannot walk a sort index for it, so it reads the matches
    through the search's index and sorts them. Shown with sorting made prohibitively expensive
    (enable_sort off): the plain order then comes from the list's index, matches_first still sorts
    (no path without a sort exists)."""
    qs = customer_list(user=manager_user, filters={"q": "qq.com"})
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
    plain = _explain(_page_query(qs, sort, matches_first=False))
    assert re.search(r"Index Scan (Backward )?using customer_live_", plain), plain
    assert "Sort Key" not in plain, plain
    first = _explain(_page_query(qs, sort, matches_first=True))
    assert re.search(r"Sort Key: .*(NULLS FIRST|NULLS LAST)", first), first


def _page_ids(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'name="ids" value="(\d+)"', response.content.decode())]


@pytest.mark.parametrize("role", ["manager", "sales"])
def test_the_list_page_is_the_same_whichever_way_it_is_read(
    crowd, role, client_for, manager_user, sales_user, monkeypatch
):
    """Through the view: counted exactly (matches first) or capped (a bounded walk), the same rows in
    the same order; the bounded walk costs one query more (its bound), more when it stops before the
    page is full (a second bound and walk, the rest of the page read from the matches)."""
    user = manager_user if role == "manager" else sales_user
    client = client_for(user)
    params = {"q": "qq.com", "sort": "name", "email_consent": "no"}
    expected = _plain_order(customer_list(user=user, filters={"q": "qq.com", "email_consent": False}), "name")
    client.get(LIST, params)  # warm up (session, content types)
    with CaptureQueriesContext(connection) as exact_queries:
        exact = client.get(LIST, params)
    monkeypatch.setattr(selectors, "COUNT_CAP", 3)
    with CaptureQueriesContext(connection) as capped_queries:
        capped = client.get(LIST, params)
    assert "3+ customers" in capped.content.decode()
    assert _page_ids(exact) == _page_ids(capped) == expected[:50]
    assert len(capped_queries) == len(exact_queries) + 1
    monkeypatch.setattr(selectors, "WALK_BOUND", 3)  # stops among the Latin names, which sort first
    with CaptureQueriesContext(connection) as bounded_queries:
        bounded = client.get(LIST, params)
    assert _page_ids(bounded) == expected[:50]
    # the bound; the walk up to it (a match or two: the merged-in "old@qq.com" of a Latin name); a
    # second bound, none (fewer customers are left than its stretch); the walk of the rest
    assert len(bounded_queries) == len(exact_queries) + 3
    monkeypatch.setattr(selectors, "MAX_WALK", 3)  # no second stretch: the matches past the bound
    with CaptureQueriesContext(connection) as matched_queries:
        matched = client.get(LIST, params)
    assert _page_ids(matched) == expected[:50]
    assert len(matched_queries) == len(exact_queries) + 2


@pytest.mark.parametrize("query", ["qq.com", "王"])
def test_a_page_cut_from_the_counted_matches_gives_the_plain_query_s_rows(
    crowd, query, manager_user, sales_user
):
    """Counted for a page in a core sort, the count keeps every match's id in the list's
    order, and the pages are cut from it: the same rows, page after page, both ways."""
    for user in (manager_user, sales_user):
        qs = customer_list(user=user, filters={"q": query})
        for sort in SORTS:
            total = customer_count(user=user, qs=qs, filters={"q": query}, sort=sort)
            expected = _plain_order(qs, sort)
            assert total.exact and total.value == len(expected), (user, sort)
            assert list(total.ordered) == expected, (user, sort)
            forward, backward = _walk(qs, sort, matches_first=True, ordered=total.ordered)
            assert forward == expected, (user, sort)
            assert backward == expected, (user, sort)


def test_a_page_cut_from_the_counted_matches_reads_them_once(crowd, manager_user):
    filters = {"q": "qq.com"}
    qs = customer_list(user=manager_user, filters=filters)
    with CaptureQueriesContext(connection) as queries:
        total = customer_count(user=manager_user, qs=qs, filters=filters, sort="-total_spent")
        page = customer_page(qs, sort="-total_spent", page_size=4, matches_first=True, ordered=total.ordered)
    assert [c.pk for c in page.rows] == _plain_order(qs, "-total_spent")[:4]
    searched = [
        q["sql"] for q in queries.captured_queries if "qq.com" in q["sql"] and "EXPLAIN" not in q["sql"]
    ]
    assert len(searched) == 2, searched  # the ordered count, then the page's rows by id
    assert "COUNT(" not in searched[0] and "LIMIT 10001" in searched[0]
    assert '"customers_customer"."id" IN (' in searched[1] and "NULLS FIRST" not in searched[1]
    # The cursor's row has moved since the last page (now the top spender): the next page comes after
    # the cursor's value and id, as when it is read from the database, not after where the row now is
    # (which would show the first page's rows again).
    cursor_row = Customer.objects.get(pk=page.rows[-1].pk)
    Customer.objects.filter(pk=cursor_row.pk).update(total_spent=cursor_row.total_spent + 10)
    total = customer_count(user=manager_user, qs=qs, filters=filters, sort="-total_spent")
    cut = customer_page(
        qs,
        sort="-total_spent",
        cursor=page.next_cursor,
        page_size=4,
        matches_first=True,
        ordered=total.ordered,
    )
    read = customer_page(qs, sort="-total_spent", cursor=page.next_cursor, page_size=4, matches_first=True)
    assert [c.pk for c in cut.rows] == [c.pk for c in read.rows]
    assert not {c.pk for c in cut.rows} & {c.pk for c in page.rows}
