"""The notifications page, the bell, marking read (htmx and plain), opening, and the preferences page."""

import pytest
from django.urls import reverse
from django_tenants.utils import schema_context

from crm.accounts.models import User
from crm.notifications import services
from crm.notifications.models import EmailDelivery, Notification, NotificationPreference
from crm.notifications.registry import register_kind, unregister_kind
from crm.notifications.services import NotificationSpec

pytestmark = pytest.mark.django_db


@pytest.fixture
def kind():
    register_kind("test.due", "Follow-up due (test)")
    yield "test.due"
    unregister_kind("test.due")


def _bell(response) -> str:
    html = response.content.decode()
    start = html.index('id="notification-bell"')
    return html[start : html.index("</a>", start)]


def test_the_page_lists_only_my_notifications_unread_first(client_for, users, kind):
    sales, sales2 = users["sales"], users["sales2"]
    mine = services.notify(
        recipient=sales, kind=kind, key="1", title="Call <b>Li Lei</b>", body="line 1\nline 2"
    )
    read = services.notify(recipient=sales, kind=kind, key="2", title="Already seen")
    Notification.objects.filter(pk=read.pk).update(read_at="2026-12-01T00:00Z")
    services.notify(recipient=sales2, kind=kind, key="1", title="Not for sales")
    html = client_for(sales).get(reverse("notifications:list")).content.decode()
    assert "Call &lt;b&gt;Li Lei&lt;/b&gt;" in html and "line 1<br>line 2" in html
    assert "Follow-up due (test)" in html
    assert "Not for sales" not in html
    assert html.index(f'id="notification-{mine.pk}"') < html.index(f'id="notification-{read.pk}"')


def test_the_page_costs_the_same_queries_for_5_or_60_notifications(
    client_for, sales_user, kind, django_assert_max_num_queries
):
    client = client_for(sales_user)
    services.notify_many(kind=kind, items=[NotificationSpec(sales_user, f"a{i}", f"n{i}") for i in range(5)])
    client.get(reverse("notifications:list"))  # warm the session and the bell cache
    with django_assert_max_num_queries(7):  # session, user, page (2), count; no query per row
        client.get(reverse("notifications:list"))
    services.notify_many(kind=kind, items=[NotificationSpec(sales_user, f"b{i}", f"n{i}") for i in range(55)])
    services.bump_unread([sales_user.pk])
    client.get(reverse("notifications:list"))
    with django_assert_max_num_queries(7):
        response = client.get(reverse("notifications:list"))
    assert response.content.decode().count('data-testid="notification"') == 25
    older = client.get(reverse("notifications:list"), {"after": response.context["page"].next_cursor})
    assert older.content.decode().count('data-testid="notification"') == 25


def test_marking_read_with_htmx_updates_the_row_and_the_bell(client_for, sales_user, kind):
    client = client_for(sales_user)
    a = services.notify(recipient=sales_user, kind=kind, key="a", title="A")
    services.notify(recipient=sales_user, kind=kind, key="b", title="B")
    services.bump_unread([sales_user.pk])
    assert 'data-testid="notification-count">2<' in _bell(client.get(reverse("notifications:list")))
    response = client.post(reverse("notifications:read", args=[a.pk]), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and 'data-read="yes"' in html
    assert 'hx-swap-oob="true"' in html and 'data-testid="notification-count">1<' in html
    assert 'data-testid="notification-count">1<' in _bell(client.get(reverse("home")))
    a.refresh_from_db()
    assert a.read_at is not None


def test_opening_follows_the_link_and_marks_read(client_for, sales_user, kind):
    n = services.notify(recipient=sales_user, kind=kind, key="o", title="Open me", url="/customers/?q=li")
    response = client_for(sales_user).get(reverse("notifications:open", args=[n.pk]))
    assert response.status_code == 302 and response["Location"] == "/customers/?q=li"
    n.refresh_from_db()
    assert n.read_at is not None


def test_nobody_opens_or_reads_another_users_notification(client_for, users, kind):
    n = services.notify(recipient=users["sales2"], kind=kind, key="x", title="Private")
    for key in ("sales", "manager", "admin"):
        client = client_for(users[key])
        assert client.get(reverse("notifications:open", args=[n.pk])).status_code == 404
        assert client.post(reverse("notifications:read", args=[n.pk])).status_code == 404
        client.post(reverse("notifications:read_all"))
    n.refresh_from_db()
    assert n.read_at is None


def test_mark_all_read_empties_the_bell(client_for, sales_user, sales_user2, kind):
    for i in range(3):
        services.notify(recipient=sales_user, kind=kind, key=f"m{i}", title="t")
    other = services.notify(recipient=sales_user2, kind=kind, key="m", title="t")
    client = client_for(sales_user)
    response = client.post(reverse("notifications:read_all"), follow=True)
    assert "All notifications are marked read." in response.content.decode()
    assert "notification-count" not in _bell(response)
    assert not Notification.objects.filter(recipient=sales_user, read_at__isnull=True).exists()
    other.refresh_from_db()
    assert other.read_at is None


def test_preferences_page_saves_and_notify_honours_it(client_for, sales_user, kind):
    client = client_for(sales_user)
    page = client.get(reverse("notifications:preferences")).content.decode()
    assert "Follow-up due (test)" in page and 'name="email:test.due"' in page and "checked" in page
    response = client.post(reverse("notifications:preferences"), {})  # every box cleared
    assert response.status_code == 302, response.context["form"].errors
    assert NotificationPreference.objects.get(user=sales_user, kind=kind).email is False
    services.notify(recipient=sales_user, kind=kind, key="p", title="t")
    assert not EmailDelivery.objects.exists()
    client.post(reverse("notifications:preferences"), {"email:test.due": "on"})
    services.notify(recipient=sales_user, kind=kind, key="q", title="t")
    assert EmailDelivery.objects.count() == 1


def test_two_users_in_two_tenants_see_only_their_own(client_for, tenant_a, tenant_b, kind):
    with schema_context(tenant_a.schema_name):
        alpha_user = User.objects.get(email="sales@alpha.test")
        services.notify(recipient=alpha_user, kind=kind, key="t", title="Alpha only")
    with schema_context(tenant_b.schema_name):
        beta_user = User.objects.get(email="sales@beta.test")
        services.notify(recipient=beta_user, kind=kind, key="t", title="Beta only")
        beta_id = Notification.objects.get().pk
    alpha_html = client_for(alpha_user, tenant_a).get(reverse("notifications:list")).content.decode()
    beta_client = client_for(beta_user, tenant_b)
    beta_html = beta_client.get(reverse("notifications:list")).content.decode()
    assert "Alpha only" in alpha_html and "Beta only" not in alpha_html
    assert "Beta only" in beta_html and "Alpha only" not in beta_html
    # alpha's session means nothing on beta's site
    alpha_on_beta = client_for(alpha_user, tenant_a)
    alpha_on_beta.defaults["HTTP_HOST"] = "beta.testserver.local"
    assert alpha_on_beta.get(reverse("notifications:open", args=[beta_id])).status_code == 302
    assert "/accounts/login/" in alpha_on_beta.get(reverse("notifications:list"))["Location"]
