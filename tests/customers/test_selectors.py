from datetime import timedelta
from decimal import Decimal

import pytest
from django import forms
from django.db import connection
from django.http import Http404
from django.utils import timezone

from customers.models import Customer
from customers.registry import ListColumn, ListFilter, registry
from customers.selectors import (
    customer_count,
    customer_find_existing,
    customer_get_for_user,
    customer_list,
    customer_page,
    customer_table_estimate,
    customer_timeline,
    decode_cursor,
    encode_cursor,
    order_get_for_user,
)
from customers.services import customer_create, customer_update
from tests.factories import CustomerFactory, CustomFieldDefinitionFactory, OrderFactory, TagFactory


def names(qs):
    return sorted(qs.values_list("name", flat=True))


@pytest.fixture
def chinese(tenant, admin_user):
    return {
        "chen": customer_create(actor=admin_user, name="陳大文", phone="13800138000"),
        "wang": customer_create(actor=admin_user, name="王小明", email="xiaoming@example.cn"),
        "smith": customer_create(actor=admin_user, name="John Smith", external_id="ERP-77"),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("陳大文", ["陳大文"]),  # traditional as stored
        ("陈大文", ["陳大文"]),  # simplified finds the traditional record
        ("陳", ["陳大文"]),
        ("chen", ["陳大文"]),
        ("Chen Da", ["陳大文"]),
        ("chendawen", ["陳大文"]),
        ("cdw", ["陳大文"]),
        ("小明", ["王小明"]),
        ("wangxiaoming", ["王小明"]),
        ("XIAOMING@example.cn", ["王小明"]),
        ("138 0013 8000", ["陳大文"]),
        ("+86 138-0013-8000", ["陳大文"]),
        ("0013800", ["陳大文"]),
        ("erp-77", ["John Smith"]),
        ("smith", ["John Smith"]),
        ("nobody", []),
    ],
)
def test_search(chinese, admin_user, query, expected):
    assert names(customer_list(user=admin_user, filters={"q": query})) == sorted(expected)


def test_list_excludes_the_bin_and_respects_visibility(tenant, sales_user, sales_user2, manager_user):
    own = CustomerFactory(owner=sales_user, name="Own")
    shared = CustomerFactory(owner=sales_user2, name="Shared", shared_with=[sales_user])
    CustomerFactory(owner=sales_user2, name="Other")
    CustomerFactory(owner=sales_user, name="Binned", deleted_at=timezone.now())
    assert names(customer_list(user=sales_user)) == ["Own", "Shared"]
    assert names(customer_list(user=manager_user)) == ["Other", "Own", "Shared"]
    assert own and shared


def test_access_helper_answers_404_alike(tenant, sales_user, sales_user2):
    other = CustomerFactory(owner=sales_user2)
    binned = CustomerFactory(owner=sales_user, deleted_at=timezone.now())
    for customer_id in (other.pk, binned.pk, 999999, "abc", None):
        with pytest.raises(Http404):
            customer_get_for_user(user=sales_user, customer_id=customer_id)
    assert customer_get_for_user(user=sales_user, customer_id=binned.pk, include_deleted=True) == binned


def test_order_access_helper_answers_404_alike(tenant, sales_user, sales_user2, manager_user):
    mine = OrderFactory(customer=CustomerFactory(owner=sales_user))
    theirs = OrderFactory(customer=CustomerFactory(owner=sales_user2))
    assert order_get_for_user(user=sales_user, order_id=mine.pk) == mine
    for order_id in (theirs.pk, 999999, "abc", None):
        with pytest.raises(Http404):
            order_get_for_user(user=sales_user, order_id=order_id)
    assert order_get_for_user(user=manager_user, order_id=theirs.pk) == theirs


def test_each_filter(tenant, manager_user, sales_user):
    vip = TagFactory(name="VIP")
    a = CustomerFactory(
        name="A", owner=sales_user, tags=[vip], source="website", city="Shanghai", email_consent=True
    )
    b = CustomerFactory(name="B", owner=None, source="store", city="Beijing", sms_consent=True)
    assert a and b

    def run(**filters):
        return names(customer_list(user=manager_user, filters=filters))

    assert run(owner=sales_user) == ["A"]
    assert run(owner="none") == ["B"]
    assert run(tag=vip) == ["A"]
    assert run(source="store") == ["B"]
    assert run(city=" beijing ") == ["B"]
    assert run(email_consent=True) == ["A"]
    assert run(email_consent=False) == ["B"]
    assert run(sms_consent=True) == ["B"]
    assert run(email_consent=None, q="", tag=None) == ["A", "B"]


def test_custom_field_filters(tenant, manager_user, admin_user):
    CustomFieldDefinitionFactory(key="wechat", field_type="text")
    CustomFieldDefinitionFactory(key="height", field_type="number")
    CustomFieldDefinitionFactory(key="since", field_type="date")
    CustomFieldDefinitionFactory(key="size", field_type="choice", choices=["S", "M", "L"])
    CustomFieldDefinitionFactory(key="likes", field_type="multi_choice", choices=["tea", "coffee"])
    CustomFieldDefinitionFactory(key="vip", field_type="boolean")
    customer_create(
        actor=admin_user,
        name="Tall",
        custom_fields={
            "wechat": "TallWX",
            "height": 190,
            "since": "2020-01-05",
            "size": "L",
            "likes": ["tea"],
            "vip": True,
        },
    )
    customer_create(
        actor=admin_user,
        name="Short",
        custom_fields={
            "height": "155.5",
            "since": "2024-06-01",
            "size": "S",
            "likes": "tea,coffee",
            "vip": False,
        },
    )
    customer_create(actor=admin_user, name="Empty")

    def run(**custom):
        return names(customer_list(user=manager_user, filters={"custom_fields": custom}))

    assert run(wechat="tallw") == ["Tall"]
    assert run(height=(Decimal("160"), None)) == ["Tall"]
    assert run(height=(None, 160)) == ["Short"]
    assert run(height=(150, 200)) == ["Short", "Tall"]
    assert run(since=("2023-01-01", None)) == ["Short"]
    from datetime import date

    assert run(since=(date(2019, 1, 1), date(2020, 12, 31))) == ["Tall"]
    assert run(size="L") == ["Tall"]
    assert run(likes="coffee") == ["Short"]
    assert run(likes="tea") == ["Short", "Tall"]
    assert run(vip=True) == ["Tall"]
    assert run(vip=False) == ["Empty", "Short"]
    assert run(size=None, height=(None, None)) == ["Empty", "Short", "Tall"]


def test_registered_filters_and_sort_columns_are_applied(tenant, manager_user):
    CustomerFactory(name="Alpha", orders_count=5)
    CustomerFactory(name="Beta", orders_count=1)
    registry.add_list_filter(
        ListFilter(
            key="test_min_orders",
            label="Min orders",
            form_field=lambda: forms.IntegerField(),
            apply=lambda qs, value, user: qs.filter(orders_count__gte=value),
        )
    )
    registry.add_list_column(
        ListColumn(
            key="test_name_len",
            label="Orders (registered)",
            prepare=lambda qs: qs,
            value=lambda c: c.orders_count,
            sort_field="orders_count",
        )
    )
    try:
        assert names(customer_list(user=manager_user, filters={"test_min_orders": 3})) == ["Alpha"]
        page = customer_page(customer_list(user=manager_user), sort="test_name_len")
        assert [c.name for c in page.rows] == ["Beta", "Alpha"]
    finally:
        registry.list_filters.pop("test_min_orders")
        registry.list_columns.pop("test_name_len")


@pytest.mark.parametrize(
    "sort",
    [
        "name",
        "-name",
        "created",
        "-created",
        "total_spent",
        "-total_spent",
        "orders",
        "-orders",
        "last_order",
        "-last_order",
    ],
)
def test_keyset_pagination_walks_every_row_once_in_order_with_ties_and_nulls(tenant, manager_user, sort):
    now = timezone.now()
    for i in range(23):
        CustomerFactory(
            name=f"N{i % 4}",  # many ties on name
            total_spent=Decimal(i % 3),  # ties on money
            orders_count=i % 2,
            last_order_at=None if i % 5 == 0 else now - timedelta(days=i % 4),  # ties and NULLs
        )
    qs = customer_list(user=manager_user)
    forward, cursor, pages = [], None, 0
    while True:
        page = customer_page(qs, sort=sort, cursor=cursor, page_size=5)
        forward.extend(c.pk for c in page.rows)
        pages += 1
        if not page.has_next:
            break
        cursor = page.next_cursor
    assert pages == 5
    assert len(forward) == len(set(forward)) == 23
    # The same order as one sorted query (NULLs last, id as tiebreak in the sort's direction).
    option_path = {
        "name": "name",
        "created": "created_at",
        "total_spent": "total_spent",
        "orders": "orders_count",
        "last_order": "last_order_at",
    }[sort.lstrip("-")]
    descending = sort.startswith("-")
    from django.db.models import F

    expr = F(option_path).desc(nulls_last=True) if descending else F(option_path).asc(nulls_last=True)
    expected = list(qs.order_by(expr, "-pk" if descending else "pk").values_list("pk", flat=True))
    assert forward == expected

    # Walk back from the last page with "previous" and get the same rows in the same order.
    backward = list(page.rows)
    cursor = page.previous_cursor
    while cursor:
        previous = customer_page(qs, sort=sort, cursor=cursor, direction="prev", page_size=5)
        backward = list(previous.rows) + backward
        cursor = previous.previous_cursor
    assert [c.pk for c in backward] == expected


def test_first_page_has_no_previous_and_bad_cursors_mean_first_page(tenant, manager_user):
    CustomerFactory.create_batch(3)
    qs = customer_list(user=manager_user)
    first = customer_page(qs, page_size=2)
    assert not first.has_previous and first.has_next
    second = customer_page(qs, cursor=first.next_cursor, page_size=2)
    assert second.has_previous and not second.has_next
    back = customer_page(qs, cursor=second.previous_cursor, direction="prev", page_size=2)
    assert [c.pk for c in back.rows] == [c.pk for c in first.rows]
    assert not back.has_previous
    for junk in ("garbage", "e30", "!!", encode_cursor("x", 1)[:-3]):
        assert [c.pk for c in customer_page(qs, cursor=junk, page_size=2).rows] == [c.pk for c in first.rows]
    unknown_sort = customer_page(qs, sort="; drop table", page_size=2)
    assert unknown_sort.sort == "-created"


def test_cursor_round_trip():
    now = timezone.now()
    for value in (None, "名字", Decimal("12.30"), now, 7, 1.5):
        assert decode_cursor(encode_cursor(value, 42)) == (value, 42)


def test_count_is_exact_below_the_cap_and_capped_above(tenant, manager_user, sales_user):
    CustomerFactory.create_batch(3, owner=sales_user)
    qs = customer_list(user=sales_user)
    total = customer_count(user=sales_user, qs=qs, filters={})
    assert (total.value, total.exact) == (3, True)


def test_count_caps_big_results(tenant, manager_user, monkeypatch):
    import customers.selectors as selectors

    CustomerFactory.create_batch(4)
    monkeypatch.setattr(selectors, "COUNT_CAP", 2)
    total = customer_count(user=manager_user, qs=customer_list(user=manager_user), filters={"q": "customer"})
    assert (total.value, total.exact, total.capped) == (2, False, True)


@pytest.fixture
def planner_estimate(django_db_blocker):
    """ANALYZE writes the planner's row estimate in place, which the test's rollback does not undo:
    analyse again afterwards (this fixture is set up before `db`, so torn down after its rollback)."""
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "alpha"."{Customer._meta.db_table}"')


def test_sales_get_their_own_count_never_the_estimate_of_the_whole_table(
    planner_estimate, tenant, manager_user, sales_user, sales_user2, monkeypatch
):
    """A big table's unfiltered list shows the planner's estimate to managers; a sales user sees their
    own exact count, not how many customers the company has."""
    import customers.selectors as selectors

    CustomerFactory.create_batch(2, owner=sales_user)
    CustomerFactory.create_batch(6, owner=sales_user2)
    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{Customer._meta.db_table}"')
    monkeypatch.setattr(selectors, "COUNT_CAP", 5)
    assert customer_table_estimate() >= 8
    manager = customer_count(user=manager_user, qs=customer_list(user=manager_user), filters={})
    assert manager.exact is False
    sales = customer_count(user=sales_user, qs=customer_list(user=sales_user), filters={})
    assert (sales.value, sales.exact) == (2, True)


def test_find_existing_reveals_only_what_the_user_may_see(tenant, sales_user, sales_user2):
    mine = CustomerFactory(owner=sales_user, email="mine@example.com", phone="+8613911112222")
    CustomerFactory(owner=sales_user2, email="theirs@example.com", phone="+8613933334444")
    (match,) = customer_find_existing(user=sales_user, email="MINE@example.com")
    assert (match.field, match.customer) == ("email", mine)
    (match,) = customer_find_existing(user=sales_user, phone="139 3333 4444")
    assert (match.field, match.customer) == ("phone", None)  # exists, but not visible: no details
    assert customer_find_existing(user=sales_user, email="mine@example.com", exclude_id=mine.pk) == []
    assert customer_find_existing(user=sales_user, email="new@example.com", phone="bad") == []


def test_timeline_merges_orders_refunds_and_edits_newest_first(tenant, admin_user):
    customer = customer_create(actor=admin_user, name="Timeline")
    old = timezone.now() - timedelta(days=30)
    OrderFactory(customer=customer, number="T-OLD", placed_at=old)
    OrderFactory(customer=customer, number="T-NEW", placed_at=timezone.now() - timedelta(days=1))
    customer_update(actor=admin_user, customer=customer, data={"city": "Hangzhou"})
    entries, more = customer_timeline(customer=customer, user=admin_user, limit=10)
    kinds = [e.kind for e in entries]
    assert kinds == ["edit", "created", "order", "order"]
    assert "Hangzhou" in entries[0].detail
    assert entries[2].title.endswith("T-NEW") and more is None
    first, cursor = customer_timeline(customer=customer, user=admin_user, limit=2)
    assert len(first) == 2 and cursor == first[-1].when
    rest, cursor = customer_timeline(customer=customer, user=admin_user, before=cursor, limit=2)
    assert [e.title for e in rest] == [entries[2].title, entries[3].title] and cursor is None


def test_a_failing_timeline_provider_does_not_break_the_timeline(tenant, admin_user):
    customer = customer_create(actor=admin_user, name="Robust")

    def broken(**kwargs):
        raise RuntimeError("boom")

    registry.add_timeline_provider("test.broken", broken)
    try:
        entries, _ = customer_timeline(customer=customer, user=admin_user)
    finally:
        registry.timeline_providers.pop("test.broken")
    assert [e.kind for e in entries] == ["created"]


@pytest.mark.parametrize("sort", ["name", "-total_spent", "last_order", "-last_order"])
def test_the_last_page_is_the_end_of_the_order_and_walks_back_to_the_start(tenant, manager_user, sort):
    """Issue 15: paging was First / Previous / Next only. "Last" reads the final page backwards from
    the end of the order (keyset: no OFFSET, nullable sorts included); from there Previous walks back
    to the first page with every customer once."""
    now = timezone.now()
    for i in range(12):
        CustomerFactory(
            name=f"C{i:02d}",
            total_spent=Decimal(i * 7 % 5),
            last_order_at=None if i % 4 == 0 else now - timedelta(days=i),
        )
    qs = customer_list(user=manager_user)
    forward, cursor = [], None
    while True:
        page = customer_page(qs, sort=sort, cursor=cursor, page_size=5)
        forward.extend(c.pk for c in page.rows)
        if not page.has_next:
            break
        cursor = page.next_cursor
    full_last = customer_page(qs, sort=sort, direction="last", page_size=5)
    assert [c.pk for c in full_last.rows] == forward[-5:]
    last = customer_page(qs, sort=sort, direction="last", page_size=5, last_rows=12 % 5)
    assert [c.pk for c in last.rows] == forward[-2:]  # the pages line up with the forward ones
    assert not last.has_next and last.has_previous and not last.is_first
    backward, cursor = list(last.rows), last.previous_cursor
    while cursor:
        previous = customer_page(qs, sort=sort, cursor=cursor, direction="prev", page_size=5)
        backward = list(previous.rows) + backward
        cursor = previous.previous_cursor
    assert [c.pk for c in backward] == forward
