"""notify() / notify_many(): one row per (recipient, key), bounded and validated input, e-mail rows per
the recipient's preference, the cached bell count, and two tenants that never see each other's."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django_tenants.utils import schema_context

from crm.accounts.models import User
from crm.notifications import selectors, services
from crm.notifications.models import BODY_MAX_LENGTH, EmailDelivery, Notification, NotificationPreference
from crm.notifications.registry import register_kind, unregister_kind
from crm.notifications.services import NotificationSpec

pytestmark = pytest.mark.django_db


@pytest.fixture
def kinds():
    register_kind("test.due", "Test due", default_email=True)
    register_kind("test.quiet", "Test quiet", default_email=False)
    yield
    unregister_kind("test.due")
    unregister_kind("test.quiet")


def test_notify_twice_creates_one_row_and_one_email(tenant, sales_user, kinds):
    first = services.notify(
        recipient=sales_user, kind="test.due", key="due:1", title="Call Li Lei", url="/customers/1/"
    )
    again = services.notify(recipient=sales_user, kind="test.due", key="due:1", title="Call Li Lei (again)")
    assert again.pk == first.pk and again.title == "Call Li Lei"
    assert Notification.objects.filter(recipient=sales_user).count() == 1
    delivery = EmailDelivery.objects.get(notification=first)
    assert delivery.status == EmailDelivery.Status.PENDING and delivery.attempts == 0
    assert delivery.message_id == f"<notification-{connection.schema_name}-{first.pk}@testserver.local>"


def test_the_same_key_for_two_recipients_is_two_notifications(tenant, sales_user, sales_user2, kinds):
    services.notify(recipient=sales_user, kind="test.due", key="k", title="A")
    services.notify(recipient=sales_user2, kind="test.due", key="k", title="A")
    assert Notification.objects.filter(key="k").count() == 2


def test_notify_many_inserts_in_bulk_and_skips_existing(
    tenant, sales_user, sales_user2, kinds, django_assert_max_num_queries
):
    services.notify(recipient=sales_user2, kind="test.due", key="r:0", title="already there")
    items = [
        NotificationSpec(sales_user if i % 2 else sales_user2.pk, f"r:{i}", f"Reminder {i}")
        for i in range(2500)
    ]
    with django_assert_max_num_queries(12):  # 3 insert chunks + preferences + e-mail rows, not 2,500
        created = services.notify_many(kind="test.due", items=items)
    assert len(created) == 2499
    assert Notification.objects.count() == 2500
    assert EmailDelivery.objects.count() == 2500


def test_a_refused_email_row_undoes_the_notifications_too(tenant, sales_user, sales_user2, kinds):
    """The notifications and their e-mail rows are written together: when the e-mail rows are refused
    (the database raises part-way), no notification stays without its e-mail."""
    from django.db import DatabaseError

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_delivery() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'no e-mail rows today'; END $$"
        )
        cursor.execute(
            f'CREATE TRIGGER refuse_delivery BEFORE INSERT ON "{EmailDelivery._meta.db_table}" '
            "FOR EACH ROW EXECUTE FUNCTION refuse_delivery()"
        )
    items = [NotificationSpec(sales_user, "a", "Call A"), NotificationSpec(sales_user2, "b", "Call B")]
    with pytest.raises(DatabaseError):
        services.notify_many(kind="test.due", items=items)
    assert not Notification.objects.exists() and not EmailDelivery.objects.exists()


def test_preferences_decide_the_email_and_in_app_always_happens(tenant, sales_user, sales_user2, kinds):
    NotificationPreference.objects.create(user=sales_user, kind="test.due", email=False)
    NotificationPreference.objects.create(user=sales_user2, kind="test.quiet", email=True)
    a = services.notify(recipient=sales_user, kind="test.due", key="1", title="t")
    b = services.notify(recipient=sales_user2, kind="test.due", key="1", title="t")
    c = services.notify(recipient=sales_user, kind="test.quiet", key="2", title="t")
    d = services.notify(recipient=sales_user2, kind="test.quiet", key="2", title="t")
    e = services.notify(recipient=sales_user2, kind="test.due", key="3", title="t", email=False)
    mailed = set(EmailDelivery.objects.values_list("notification_id", flat=True))
    assert mailed == {b.pk, d.pk}
    assert {a.pk, c.pk, e.pk} <= set(Notification.objects.values_list("pk", flat=True))


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/",
        "//evil.example/x",
        "javascript:alert(1)",
        "customers/1/",
        "/a b",
        "/a\\b",
        "/x\ny",
    ],
)
def test_a_link_off_the_site_is_refused_and_nothing_is_written(tenant, sales_user, kinds, url):
    with pytest.raises(ValidationError):
        services.notify_many(
            kind="test.due",
            items=[
                NotificationSpec(sales_user, "ok", "fine", url="/customers/1/"),
                NotificationSpec(sales_user, "bad", "x", url=url),
            ],
        )
    assert not Notification.objects.exists()


@pytest.mark.parametrize("field", ["key", "title"])
def test_an_empty_key_or_title_is_refused(tenant, sales_user, kinds, field):
    values = {"key": "k", "title": "t", field: "  "}
    with pytest.raises(ValidationError):
        services.notify(recipient=sales_user, kind="test.due", **values)
    assert not Notification.objects.exists()


def test_long_text_is_clipped_to_the_bounds(tenant, sales_user, kinds):
    n = services.notify(
        recipient=sales_user, kind="test.due", key="long", title="标题" * 500, body="x" * 50_000
    )
    n.refresh_from_db()
    assert len(n.title) == 200 and n.title.endswith("…")
    assert len(n.body) == BODY_MAX_LENGTH


def test_bell_count_is_cached_and_follows_mark_read(tenant, sales_user, kinds, django_assert_num_queries):
    for i in range(3):
        services.notify(recipient=sales_user, kind="test.due", key=f"b{i}", title="t")
    services.bump_unread([sales_user.pk])  # on_commit does not run inside the test's transaction
    assert selectors.unread_badge(sales_user) == "3"
    with django_assert_num_queries(0):
        assert selectors.unread_badge(sales_user) == "3"
    first = Notification.objects.filter(recipient=sales_user).first()
    services.notification_mark_read(user=sales_user, notification=first)
    assert selectors.unread_badge(sales_user) == "2"
    services.notifications_mark_all_read(user=sales_user)
    assert selectors.unread_badge(sales_user) == ""


def test_marking_another_users_notification_is_refused(tenant, sales_user, sales_user2, kinds):
    n = services.notify(recipient=sales_user2, kind="test.due", key="x", title="t")
    with pytest.raises(ValidationError):
        services.notification_mark_read(user=sales_user, notification=n)
    n.refresh_from_db()
    assert n.read_at is None


def test_two_tenants_never_see_each_others_notifications_or_counts(tenant_a, tenant_b, kinds):
    with schema_context(tenant_a.schema_name):
        a_user = User.objects.get(email="sales@alpha.test")
        services.notify(recipient=a_user, kind="test.due", key="a", title="for alpha")
        services.bump_unread([a_user.pk])
        assert selectors.unread_badge(a_user) == "1"
    with schema_context(tenant_b.schema_name):
        b_user = User.objects.get(email="sales@beta.test")
        assert not Notification.objects.exists()
        assert selectors.unread_count(user=b_user) == 0
        assert selectors.notification_page(user=b_user).items == []
        # Even a user id that happens to be the same number reads only beta's rows and cache key
        assert a_user.pk != b_user.pk or selectors.unread_badge(b_user) == ""


def test_pages_list_unread_first_then_read_newest_first(
    tenant, sales_user, kinds, django_assert_max_num_queries
):
    ids = [
        services.notify(recipient=sales_user, kind="test.due", key=f"p{i}", title=f"n{i}").pk
        for i in range(7)
    ]
    Notification.objects.filter(pk__in=ids[::2]).update(read_at="2026-12-01T00:00Z")  # 0,2,4,6 read
    seen = []
    cursor = ""
    while True:
        with django_assert_max_num_queries(2):
            page = selectors.notification_page(user=sales_user, cursor=cursor, size=3)
        seen += [n.pk for n in page.items]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == [ids[5], ids[3], ids[1], ids[6], ids[4], ids[2], ids[0]]
    unread = selectors.notification_page(user=sales_user, unread_only=True, size=10)
    assert [n.pk for n in unread.items] == [ids[5], ids[3], ids[1]] and unread.next_cursor == ""
