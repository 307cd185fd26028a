import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.accounts.models import User
from crm.audit.models import AuditEvent
from customers.models import Customer, CustomFieldDefinition, Order
from customers.registry import registry
from customers.services import customer_create
from tests.factories import (
    CustomerFactory,
    CustomFieldDefinitionFactory,
    OrderFactory,
    OrderLineFactory,
    TagFactory,
)

LIST = "/customers/"


@pytest.fixture(autouse=True)
def english(tenant):
    """The tenants default to Chinese; these tests read English messages (rolled back afterwards)."""
    User.objects.update(language="en")


def detail_url(customer):
    return reverse("customers:detail", args=[customer.pk])


def page_text(response) -> str:
    return response.content.decode()


# --- navigation and list --------------------------------------------------------------------------


def test_navigation_points_to_the_customer_list(sales_client):
    html = page_text(sales_client.get("/"))
    assert f'href="{LIST}" data-nav="customers"' in html
    assert reverse("customers:list") == LIST


def test_anonymous_users_are_sent_to_login(anon_client):
    response = anon_client.get(LIST)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_list_shows_own_and_shared_customers_to_sales(sales_client, sales_user, sales_user2):
    CustomerFactory(name="Mine Ltd", owner=sales_user)
    CustomerFactory(name="Shared Co", owner=sales_user2, shared_with=[sales_user])
    CustomerFactory(name="Hidden Inc", owner=sales_user2)
    html = page_text(sales_client.get(LIST))
    assert "Mine Ltd" in html and "Shared Co" in html and "Hidden Inc" not in html
    assert "2 customers" in html


def test_search_as_you_type_returns_only_the_table_partial(admin_client, admin_user):
    customer_create(actor=admin_user, name="張偉")
    customer_create(actor=admin_user, name="Other Person")
    response = admin_client.get(
        LIST, {"q": "zhangwei"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="customer-results"
    )
    html = page_text(response)
    assert response.status_code == 200
    assert "張偉" in html and "Other Person" not in html
    assert "<html" not in html and 'id="customer-table"' in html
    assert 'hx-swap-oob="true"' in html  # keeps the filter form's sort in step
    full = page_text(admin_client.get(LIST, {"q": "张伟"}))
    assert 'hx-trigger="input changed delay:300ms, search"' in full and "張偉" in full


def test_sorting_and_keyset_links(admin_client):
    for i in range(3):
        CustomerFactory(name=f"Sorted {i}", total_spent=Decimal(i * 10))
    html = page_text(admin_client.get(LIST, {"sort": "-total_spent"}))
    assert html.index("Sorted 2") < html.index("Sorted 1") < html.index("Sorted 0")
    html = page_text(admin_client.get(LIST, {"sort": "total_spent"}))
    assert html.index("Sorted 0") < html.index("Sorted 1") < html.index("Sorted 2")


def test_keyset_next_link_leads_to_the_next_page(admin_client, monkeypatch):
    import customers.views as views

    monkeypatch.setattr(views, "LIST_PAGE_SIZE", 2)
    for name in ("Ann", "Bob", "Cid", "Dan", "Eve"):
        CustomerFactory(name=name)
    seen = []
    query = "sort=name"
    while query:
        html = page_text(admin_client.get(f"{LIST}?{query}"))
        seen += re.findall(r'class="fw-semibold">(\w+)</a>', html)
        next_link = re.search(
            r'<li class="page-item">\s*<a class="page-link" rel="next" href="\?([^"]+)"', html
        )
        query = next_link.group(1).replace("&amp;", "&") if next_link else ""
    assert seen == ["Ann", "Bob", "Cid", "Dan", "Eve"]


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": "e30", "direction": "prev"},
        {"sort": "password"},
        {"owner": "99999999"},
        {"tag": "abc"},
        {"source": "nope", "email_consent": "maybe"},
        {"q": "x" * 500},
        {"q": "%_\\'\""},
    ],
)
def test_bad_list_input_never_errors(admin_client, params):
    assert admin_client.get(LIST, params).status_code == 200


def test_bad_custom_field_filter_input_is_shown_not_crashing(admin_client):
    CustomFieldDefinitionFactory(key="height", field_type="number", label="Height")
    CustomFieldDefinitionFactory(key="since", field_type="date", label="Since")
    response = admin_client.get(LIST, {"cf_height_min": "tall", "cf_since_max": "2024-99-99"})
    assert response.status_code == 200
    assert "“tall” is not a number." in page_text(response)


def test_list_query_count_does_not_grow_with_rows(admin_client, sales_user):
    tag = TagFactory(name="Q")
    CustomerFactory(owner=sales_user, tags=[tag])
    admin_client.get(LIST)  # warm up (session, content types)
    with CaptureQueriesContext(connection) as one:
        assert admin_client.get(LIST).status_code == 200
    for _ in range(49):
        CustomerFactory(owner=sales_user, tags=[tag, TagFactory()])
    with CaptureQueriesContext(connection) as fifty:
        response = admin_client.get(LIST)
    assert page_text(response).count('name="ids"') == 50
    assert len(fifty) == len(one), "\n".join(
        ["ONE:"]
        + [q["sql"][:120] for q in one.captured_queries]
        + ["FIFTY:"]
        + [q["sql"][:120] for q in fifty.captured_queries]
    )
    # 11 of our own (tenant, session, user, custom fields, owners, tags, page, tags of the page, estimate,
    # count) plus what the filters other apps register need for their choices.
    assert len(fifty) <= 11 + 2 * len(registry.list_filters), "\n".join(
        q["sql"][:150] for q in fifty.captured_queries
    )


def test_list_query_count_with_filters_and_search(sales_client, sales_user):
    CustomerFactory(owner=sales_user, name="Anna")
    params = {"q": "ann", "sort": "-last_order", "email_consent": "no"}
    sales_client.get(LIST, params)
    with CaptureQueriesContext(connection) as one:
        sales_client.get(LIST, params)
    for i in range(30):
        CustomerFactory(owner=sales_user, name=f"Anna {i}", last_order_at=None if i % 2 else timezone.now())
    with CaptureQueriesContext(connection) as many:
        html = page_text(sales_client.get(LIST, params))
    assert "Anna 29" in html
    # Two segments (with / without a last purchase) may cost one query more than one segment.
    assert len(many) <= len(one) + 1


def test_chosen_columns_persist_in_the_session(admin_client):
    CustomerFactory(name="Col", email="col@example.com", source="referral")
    response = admin_client.post(reverse("customers:columns"), {"columns": ["source", "bogus"], "next": LIST})
    assert response.status_code == 302
    html = page_text(admin_client.get(LIST))
    assert "Referral" in html and "col@example.com" not in html


def test_export_for_everyone_import_for_managers(admin_client, sales_client):
    admin_html = page_text(admin_client.get(LIST))
    sales_html = page_text(sales_client.get(LIST))
    assert 'id="export-link"' in admin_html and 'id="export-link"' in sales_html
    assert reverse("customers:import_start") in admin_html
    assert reverse("customers:import_start") not in sales_html


# --- bulk actions ---------------------------------------------------------------------------------


def test_sales_can_bulk_tag_their_customers_but_not_assign_or_delete(sales_client, sales_user, sales_user2):
    mine = CustomerFactory(owner=sales_user)
    theirs = CustomerFactory(owner=sales_user2)
    url = reverse("customers:bulk")
    response = sales_client.post(url, {"action": "tag_add", "tag": "Hot", "ids": [mine.pk, theirs.pk]})
    assert response.status_code == 302
    assert list(mine.tags.values_list("name", flat=True)) == ["Hot"] and not theirs.tags.exists()
    sales_client.post(url, {"action": "assign", "owner": sales_user2.pk, "ids": [mine.pk]})
    sales_client.post(url, {"action": "delete", "ids": [mine.pk]})
    mine.refresh_from_db()
    assert mine.owner == sales_user and mine.deleted_at is None
    html = page_text(sales_client.get(LIST))
    assert 'value="assign"' not in html and 'value="delete"' not in html


def test_managers_bulk_assign_and_delete(manager_client, sales_user, sales_user2):
    customers = CustomerFactory.create_batch(2, owner=sales_user)
    ids = [c.pk for c in customers]
    url = reverse("customers:bulk")
    manager_client.post(url, {"action": "assign", "owner": sales_user2.pk, "ids": ids})
    assert set(Customer.objects.filter(pk__in=ids).values_list("owner", flat=True)) == {sales_user2.pk}
    response = manager_client.post(url, {"action": "delete", "ids": ids}, follow=True)
    assert "2 customers moved to the recycle bin" in page_text(response)
    assert Customer.objects.filter(pk__in=ids, deleted_at__isnull=False).count() == 2


def test_another_apps_bulk_action_is_offered_only_to_the_roles_it_names(
    monkeypatch, manager_client, sales_client, sales_user
):
    from customers.registry import BulkAction

    CustomerFactory(owner=sales_user)
    monkeypatch.setitem(
        registry.bulk_actions,
        "test.managers",
        BulkAction(
            key="test.managers", label="Managers only action", url_name="customers:list", roles=("manager",)
        ),
    )
    assert "Managers only action" in manager_client.get(reverse("customers:list")).content.decode()
    assert "Managers only action" not in sales_client.get(reverse("customers:list")).content.decode()


def test_bulk_without_selection_or_tag_explains(manager_client):
    url = reverse("customers:bulk")
    html = page_text(manager_client.post(url, {"action": "tag_add", "tag": "x"}, follow=True))
    assert "Select customers first." in html
    customer = CustomerFactory()
    html = page_text(manager_client.post(url, {"action": "tag_add", "ids": [customer.pk]}, follow=True))
    assert "Enter a tag name." in html
    assert manager_client.post(url, {"action": "explode", "ids": ["x"]}).status_code == 302


# --- access ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["detail", "edit", "timeline", "orders", "profile_card"])
def test_sales_get_404_for_another_owners_customer(sales_client, sales_user2, name):
    other = CustomerFactory(owner=sales_user2)
    assert sales_client.get(reverse(f"customers:{name}", args=[other.pk])).status_code == 404
    assert sales_client.get(reverse(f"customers:{name}", args=[99999999])).status_code == 404


def test_sales_cannot_post_to_another_owners_customer(sales_client, sales_user2):
    other = CustomerFactory(owner=sales_user2, name="Untouched")
    assert (
        sales_client.post(reverse("customers:edit", args=[other.pk]), {"name": "Hacked"}).status_code == 404
    )
    assert sales_client.post(reverse("customers:delete", args=[other.pk])).status_code == 404
    other.refresh_from_db()
    assert other.name == "Untouched" and other.deleted_at is None


def test_manager_only_and_admin_only_pages(sales_client, manager_client, admin_client, sales_user):
    customer = CustomerFactory(owner=sales_user)
    order = OrderFactory(customer=customer)
    assert sales_client.post(reverse("customers:share", args=[customer.pk])).status_code == 403
    assert (
        sales_client.post(reverse("customers:order_refund", args=[order.pk]), {"amount": "1"}).status_code
        == 403
    )
    assert sales_client.get(reverse("customers:custom_fields")).status_code == 403
    assert manager_client.get(reverse("customers:custom_fields")).status_code == 403
    assert admin_client.get(reverse("customers:custom_fields")).status_code == 200


def test_tenant_isolation(client_for, tenant_a, tenant_b, admin_user):
    customer = customer_create(actor=admin_user, name="Alpha Only 阿尔法客户")
    with schema_context(tenant_b.schema_name):
        admin_b = User.objects.get(email="admin@beta.test")
    client_b = client_for(admin_b, tenant_b)
    assert "Alpha Only" not in page_text(client_b.get(LIST))
    assert "Alpha Only" not in page_text(client_b.get(LIST, {"q": "alpha"}))
    assert client_b.get(detail_url(customer)).status_code == 404
    with schema_context(tenant_b.schema_name):
        assert not Customer.objects.filter(name__startswith="Alpha Only").exists()
    connection.set_tenant(tenant_a)
    assert Customer.objects.filter(pk=customer.pk).exists()


# --- create / edit --------------------------------------------------------------------------------


def test_create_with_field_level_messages(admin_client):
    url = reverse("customers:create")
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(
        url,
        {
            "name": "",
            "email": "bad",
            "phone": "123",
            "gender": "unknown",
            "source": "store",
            "kind": "person",
        },
    )
    html = page_text(response)
    assert response.status_code == 200
    assert "This field is required." in html
    assert "Enter a valid email address." in html
    assert "valid phone number" in html
    assert not Customer.objects.exists()


def test_create_normalises_and_redirects_to_the_new_customer(sales_client, sales_user):
    CustomFieldDefinitionFactory(key="wechat", label="WeChat", field_type="text", required=True)
    data = {
        "name": "李娜",
        "kind": "person",
        "email": "LiNa@Example.com",
        "phone": "138 0013 8000",
        "gender": "female",
        "source": "referral",
        "new_tags": "VIP, 新客",
        "email_consent": "on",
    }
    response = sales_client.post(reverse("customers:create"), data)
    assert "This field is required." in page_text(response)  # the required custom field
    response = sales_client.post(reverse("customers:create"), {**data, "cf_wechat": "lina88"})
    customer = Customer.objects.get(name="李娜")
    assert response.status_code == 302 and response["Location"] == detail_url(customer)
    assert (customer.email, customer.phone, customer.owner) == (
        "lina@example.com",
        "+8613800138000",
        sales_user,
    )
    assert customer.custom_fields == {"wechat": "lina88"}
    assert sorted(customer.tags.values_list("name", flat=True)) == ["VIP", "新客"]
    assert customer.email_consent and customer.email_consent_at


def test_edit_in_place_swaps_card_and_records_history(admin_client, admin_user):
    customer = customer_create(actor=admin_user, name="Inline", email="inline@example.com")
    url = reverse("customers:edit", args=[customer.pk])
    form_html = page_text(admin_client.get(url, HTTP_HX_REQUEST="true"))
    assert 'hx-post="' in form_html and "<html" not in form_html
    data = {
        "name": "Inline 2",
        "kind": "person",
        "email": "inline@example.com",
        "phone": "",
        "gender": "unknown",
        "source": "store",
    }
    response = admin_client.post(url, {**data, "email": "nope"}, HTTP_HX_REQUEST="true")
    assert "Enter a valid email address." in page_text(response) and 'hx-post="' in page_text(response)
    response = admin_client.post(url, {**data, "city": "成都"}, HTTP_HX_REQUEST="true")
    html = page_text(response)
    assert 'id="profile-card"' in html and "成都" in html and response["HX-Trigger"] == "customer-updated"
    customer.refresh_from_db()
    assert (customer.name, customer.city) == ("Inline 2", "成都")
    event = AuditEvent.objects.filter(target_id=str(customer.pk), action="customer.updated").get()
    assert event.changes["city"] == {"old": "", "new": "成都"}
    detail = page_text(admin_client.get(detail_url(customer)))
    assert "Inline 2" in detail and "成都" in detail
    history = page_text(admin_client.get(reverse("customers:history", args=[customer.pk])))
    assert 'id="history"' in history and "成都" in history


def test_full_page_edit(admin_client, admin_user):
    customer = customer_create(actor=admin_user, name="Full")
    url = reverse("customers:edit", args=[customer.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(
        url, {"name": "Full 2", "kind": "company", "gender": "unknown", "source": "store"}
    )
    assert response.status_code == 302
    customer.refresh_from_db()
    assert (customer.name, customer.kind) == ("Full 2", "company")


def test_duplicate_warning_while_typing(sales_client, sales_user, sales_user2):
    mine = CustomerFactory(owner=sales_user, name="Visible Twin", email="twin@example.com")
    CustomerFactory(owner=sales_user2, name="Secret Twin", phone="+8613955556666")
    url = reverse("customers:check_duplicate")
    html = page_text(sales_client.get(url, {"email": "TWIN@example.com"}))
    assert "A customer with this email already exists." in html and "Visible Twin" in html
    html = page_text(sales_client.get(url, {"phone": "139 5555 6666"}))
    assert "A customer with this phone number already exists." in html and "Secret Twin" not in html
    assert "href" not in html
    assert (
        page_text(sales_client.get(url, {"email": "twin@example.com", "customer_id": mine.pk})).strip() == ""
    )
    assert sales_client.get(url, {"email": "x" * 5000, "customer_id": "abc"}).status_code == 200


# --- detail ---------------------------------------------------------------------------------------


def test_detail_shows_figures_orders_lines_timeline_and_history(admin_client, admin_user):
    customer = customer_create(actor=admin_user, name="Three Sixty", email="360@example.com")
    order = OrderFactory(
        customer=customer,
        number="ORD-360",
        total=Decimal("1234.50"),
        placed_at=timezone.now() - timedelta(days=3),
    )
    OrderLineFactory(
        order=order, product_name="Oolong 乌龙茶", quantity=Decimal("2"), unit_price=Decimal("617.25")
    )
    from customers.services import customer_refresh_order_stats, order_refund

    customer_refresh_order_stats(customer_ids=[customer.pk])
    order_refund(actor=admin_user, order=order, amount=Decimal("34.50"), reason="Late")
    html = page_text(admin_client.get(detail_url(customer)))
    assert "¥1,200.00" in html  # total spent, net of the refund, in the tenant currency
    # The Orders tab (badge: every order) loads with htmx when first shown, like the History tab.
    assert "ORD-360" not in html and 'data-testid="orders-pending"' in html
    assert 'data-testid="history-pending"' in html
    orders = page_text(admin_client.get(reverse("customers:orders", args=[customer.pk])))
    assert "ORD-360" in orders and "Oolong 乌龙茶" in orders and "¥617.25" in orders
    paged = page_text(admin_client.get(detail_url(customer), {"orders_page": "1"}))  # the pager's href
    assert "ORD-360" in paged
    assert 'data-kind="order"' not in html  # the timeline comes with htmx when it scrolls into view
    timeline = page_text(admin_client.get(reverse("customers:timeline", args=[customer.pk])))
    assert 'data-kind="order"' in timeline and 'data-kind="refund"' in timeline
    assert 'data-kind="created"' in timeline
    inline = page_text(admin_client.get(detail_url(customer), {"timeline": "1"}))  # without JavaScript
    for kind in ("order", "refund", "created"):
        assert f'data-kind="{kind}"' in inline, kind
    assert "Record a refund" in orders  # managers and admins can refund


def test_timeline_load_more(admin_client, admin_user):
    customer = customer_create(actor=admin_user, name="Busy")
    for i in range(25):
        OrderFactory(
            customer=customer, number=f"BUSY-{i:02d}", placed_at=timezone.now() - timedelta(days=i + 1)
        )
    html = page_text(admin_client.get(detail_url(customer), {"timeline": "1"}))
    assert html.count('data-kind="order"') == 19  # 20 entries: the creation and 19 orders
    first = page_text(admin_client.get(reverse("customers:timeline", args=[customer.pk])))
    assert first.count('data-kind="order"') == 19
    more = re.search(r'hx-get="([^"]+/timeline/\?before=[^"]+)"', html).group(1).replace("&amp;", "&")
    rest = page_text(admin_client.get(more, HTTP_HX_REQUEST="true"))
    assert rest.count('data-kind="order"') == 6 and "Load more" not in rest
    assert (
        admin_client.get(
            reverse("customers:timeline", args=[customer.pk]), {"before": "yesterday"}
        ).status_code
        == 200
    )


def test_refund_from_the_detail_page(manager_client, sales_user):
    customer = CustomerFactory(owner=sales_user)
    order = OrderFactory(customer=customer, total=Decimal("50"))
    url = reverse("customers:order_refund", args=[order.pk])
    html = page_text(manager_client.post(url, {"amount": "80"}, follow=True))
    assert "At most 50.00 can still be refunded." in html
    manager_client.post(url, {"amount": "50", "reason": "Wrong size"})
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED


def test_share_from_the_detail_page(manager_client, sales_user, sales_user2, client_for):
    customer = CustomerFactory(owner=sales_user2, name="Share Me")
    page = page_text(manager_client.get(detail_url(customer)))
    # each rep a Bootstrap check box beside its name (not a bare box touching the label)
    boxes = re.findall(r'<input[^>]*name="users"[^>]*>', page)
    assert boxes and all('class="form-check-input"' in box for box in boxes), boxes
    manager_client.post(reverse("customers:share", args=[customer.pk]), {"users": [sales_user.pk]})
    assert list(customer.shared_with.all()) == [sales_user]
    assert client_for(sales_user).get(detail_url(customer)).status_code == 200


def test_registered_detail_panel_is_rendered(admin_client):
    from customers.registry import DetailPanel, registry

    customer = CustomerFactory()
    registry.add_detail_panel(
        DetailPanel(
            key="test_panel",
            title="Test panel",
            template="customers/partials/_duplicate_warning.html",
            context=lambda c, u: {"matches": []},
        )
    )
    registry.add_detail_panel(
        DetailPanel(key="test_broken", title="Broken", template="nope.html", context=lambda c, u: 1 / 0)
    )
    try:
        html = page_text(admin_client.get(detail_url(customer)))
    finally:
        registry.detail_panels.pop("test_panel")
        registry.detail_panels.pop("test_broken")
    assert 'data-panel="test_panel"' in html and 'data-panel="test_broken"' not in html


# --- recycle bin ----------------------------------------------------------------------------------


def test_delete_restore_through_the_pages(sales_client, sales_user, manager_client):
    customer = CustomerFactory(owner=sales_user, name="Binnable")
    OrderFactory(customer=customer)
    response = sales_client.post(reverse("customers:delete", args=[customer.pk]), follow=True)
    assert "moved to the recycle bin" in page_text(response)
    assert sales_client.get(detail_url(customer)).status_code == 404
    assert "Binnable" not in page_text(sales_client.get(LIST))
    bin_html = page_text(sales_client.get(reverse("customers:bin")))
    assert "Binnable" in bin_html
    purge_on = (
        timezone.localtime(Customer.objects.get(pk=customer.pk).deleted_at) + timedelta(days=30)
    ).date()
    assert purge_on.isoformat() in bin_html
    assert "Binnable" in page_text(manager_client.get(reverse("customers:bin")))
    response = sales_client.post(reverse("customers:restore", args=[customer.pk]))
    assert response.status_code == 302 and response["Location"] == detail_url(customer)
    customer.refresh_from_db()
    assert customer.deleted_at is None and customer.orders.count() == 1
    actions = list(AuditEvent.objects.filter(target_id=str(customer.pk)).values_list("action", "actor"))
    assert ("customer.deleted", sales_user.pk) in actions and ("customer.restored", sales_user.pk) in actions


def test_sales_cannot_delete_a_shared_customer_nor_see_others_bin(sales_client, sales_user, sales_user2):
    shared = CustomerFactory(owner=sales_user2, shared_with=[sales_user], name="Shared")
    CustomerFactory(owner=sales_user2, name="Other binned", deleted_at=timezone.now())
    response = sales_client.post(reverse("customers:delete", args=[shared.pk]), follow=True)
    assert "Only the owner" in page_text(response)
    shared.refresh_from_db()
    assert shared.deleted_at is None
    assert "Other binned" not in page_text(sales_client.get(reverse("customers:bin")))


def test_restore_of_unknown_or_live_customer_is_404(manager_client):
    live = CustomerFactory()
    assert manager_client.post(reverse("customers:restore", args=[live.pk])).status_code == 404
    assert manager_client.post(reverse("customers:restore", args=[424242])).status_code == 404
    assert manager_client.get(reverse("customers:delete", args=[live.pk])).status_code == 405


# --- custom fields admin --------------------------------------------------------------------------


def test_custom_field_admin_pages(admin_client):
    url = reverse("customers:custom_fields")
    html = page_text(
        admin_client.post(url, {"key": "Bad Key", "label": "X", "field_type": "text", "position": 0})
    )
    assert "lower-case letters" in html
    html = page_text(
        admin_client.post(url, {"key": "size", "label": "Size", "field_type": "choice", "position": 0})
    )
    assert "A choice field needs at least one choice." in html
    response = admin_client.post(
        url, {"key": "size", "label": "Size", "field_type": "choice", "choices": "S\nM\nL", "position": 1}
    )
    assert response.status_code == 302
    html = page_text(
        admin_client.post(url, {"key": "size", "label": "Again", "field_type": "text", "position": 0})
    )
    assert "A custom field with this key already exists." in html
    definition = CustomFieldDefinition.objects.get(key="size")
    edit = reverse("customers:custom_field_edit", args=[definition.pk])
    response = admin_client.post(
        edit,
        {
            "label": "T-shirt size",
            "choices": "S\nM\nL\nXL",
            "position": 2,
            "key": "hacked",
            "field_type": "text",
        },
    )
    assert response.status_code == 302
    definition.refresh_from_db()
    assert (definition.label, definition.key, definition.field_type) == ("T-shirt size", "size", "choice")
    assert definition.choices == ["S", "M", "L", "XL"]
    admin_client.post(reverse("customers:custom_field_toggle", args=[definition.pk]))
    definition.refresh_from_db()
    assert not definition.is_active
    assert "T-shirt size" in page_text(admin_client.get(url))
    assert admin_client.get(reverse("customers:custom_field_edit", args=[999999])).status_code == 404


def test_settings_page_links_to_custom_fields(admin_client):
    html = page_text(admin_client.get(reverse("accounts:settings")))
    assert reverse("customers:custom_fields") in html


# --- Django admin ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model", ["customer", "order", "refund", "behaviourevent", "tag", "customfielddefinition"]
)
def test_admin_pages_for_staff(client_for, admin_user, model):
    User.objects.filter(pk=admin_user.pk).update(is_staff=True, is_superuser=True)
    admin_user.refresh_from_db()
    customer = CustomerFactory(name="Admin Visible")
    OrderLineFactory(order__customer=customer)
    client = client_for(admin_user)
    response = client.get(f"/django-admin/customers/{model}/")
    assert response.status_code == 200
    if model == "customer":
        assert "Admin Visible" in page_text(response)
        assert client.get(f"/django-admin/customers/customer/{customer.pk}/change/").status_code == 200


# --- bad input never gives a 500 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"name": "x" * 10_000, "kind": "alien", "gender": "?", "source": "moon"},
        {"name": "Ok", "kind": "person", "gender": "unknown", "source": "store", "birthday": "2024-13-45"},
        {
            "name": "Ok",
            "kind": "person",
            "gender": "unknown",
            "source": "store",
            "owner": "999999",
            "tags": ["x"],
        },
        {
            "name": "Ok",
            "kind": "person",
            "gender": "unknown",
            "source": "store",
            "cf_height": "abc",
            "cf_since": "no",
        },
        {
            "name": "Ok",
            "kind": "person",
            "gender": "unknown",
            "source": "store",
            "country": "CHINA",
            "phone": "+" * 50,
        },
        {
            "name": "Ok",
            "kind": "person",
            "gender": "unknown",
            "source": "store",
            "new_tags": ",".join(["t" * 80] * 3),
        },
    ],
)
def test_create_and_edit_with_bad_input_answer_with_messages(admin_client, admin_user, data):
    CustomFieldDefinitionFactory(key="height", field_type="number")
    CustomFieldDefinitionFactory(key="since", field_type="date")
    response = admin_client.post(reverse("customers:create"), data)
    assert response.status_code == 200 and 'id="customer-form"' in page_text(response)
    customer = customer_create(actor=admin_user, name="Target")
    edit = reverse("customers:edit", args=[customer.pk])
    assert admin_client.post(edit, data).status_code == 200
    assert admin_client.post(edit, data, HTTP_HX_REQUEST="true").status_code == 200
    customer.refresh_from_db()
    assert customer.name == "Target"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("customers:custom_fields", {"key": "k" * 500, "label": "", "field_type": "x", "position": "-1"}),
        ("customers:bulk", {"action": "assign", "owner": "abc", "ids": ["1", "x", "-5"]}),
        ("customers:bulk", {"action": "tag_add", "tag": "t" * 500, "ids": ["1"]}),
        ("customers:columns", {"columns": ["<script>"], "next": "https://evil.example/"}),
    ],
)
def test_other_posts_with_bad_input(admin_client, name, data):
    response = admin_client.post(reverse(name), data)
    assert response.status_code in (200, 302)
    if name == "customers:columns":
        assert response["Location"] == LIST  # never redirects off-site


def test_refund_and_share_with_bad_input(manager_client, sales_user):
    customer = CustomerFactory(owner=sales_user)
    order = OrderFactory(customer=customer)
    for amount in ("abc", "-5", "1e99", ""):
        response = manager_client.post(reverse("customers:order_refund", args=[order.pk]), {"amount": amount})
        assert response.status_code == 302
    assert (
        manager_client.post(
            reverse("customers:share", args=[customer.pk]), {"users": ["x", "99999"]}
        ).status_code
        == 302
    )
    order.refresh_from_db()
    assert order.refunded_total == 0


def test_bin_offers_undo_merge_for_merged_customers(manager_client):
    survivor = CustomerFactory(name="Survivor")
    merged = CustomerFactory(name="Merged away", merged_into=survivor, deleted_at=timezone.now())
    html = page_text(manager_client.get(reverse("customers:bin")))
    assert reverse("customers:merge_undo", args=[merged.pk]) in html
    assert reverse("customers:restore", args=[merged.pk]) not in html


def test_detail_query_count_does_not_grow_with_orders(admin_client, admin_user):
    customer = customer_create(actor=admin_user, name="Few orders")
    OrderLineFactory(order__customer=customer)
    url = detail_url(customer) + "?timeline=1"  # the page with its timeline in it
    admin_client.get(url)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for _ in range(30):
        OrderLineFactory(order__customer=customer)
        OrderLineFactory(order=Order.objects.filter(customer=customer).last())
    with CaptureQueriesContext(connection) as many:
        html = page_text(admin_client.get(url))
    assert 'id="timeline-more"' in html  # more than one page of timeline
    assert len(many) == len(few), "\n".join(q["sql"][:120] for q in many.captured_queries)


def test_the_list_says_page_n_of_m_offers_the_last_page_and_drops_empty_parameters(manager_client):
    """Issue 15: paging was First / Previous / Next only and the address carried 20 empty parameters.
    The list says "page N of M" (the total is exact here), links to the last page, and every link it
    builds carries only the parameters in use, even when the request came with empty ones."""
    CustomerFactory.create_batch(55)
    url = reverse("customers:list")
    first = manager_client.get(url)
    assert first.context["paging"]["number"] == 1 and first.context["paging"]["count"] == 2
    assert "direction=last" in first.context["last_query"] and "page=2" in first.context["last_query"]
    assert 'data-page="last"' in first.content.decode()

    empty = "q=&city=&owner=&source=&tag=&sort=&lifecycle_stage="
    last = manager_client.get(f"{url}?{empty}&direction=last&page=2")
    assert last.context["paging"]["number"] == 2 and len(last.context["page"].rows) == 5
    assert not last.context["page"].has_next
    for key in ("base_query", "prev_query", "last_query"):
        assert not re.search(r"(^|&)[a-z_]+=(&|$)", last.context[key]), (key, last.context[key])
    assert "direction=prev" in last.context["prev_query"]


def test_owner_names_in_the_list_do_not_wrap(manager_client, sales_user):
    """Issue 15: owner names wrapped inside their narrow column ("王经理" / "Wang" / "Li")."""
    CustomerFactory(owner=sales_user)
    html = manager_client.get(reverse("customers:list")).content.decode()
    assert f'<td class="small text-nowrap">{sales_user.get_full_name()}</td>' in html


def test_admins_order_custom_fields_up_and_down(admin_client, admin_user, manager_client):
    """Issue 15: settings lacked a field order; the order is the one forms, the profile and exports use."""
    from customers.models import CustomFieldDefinition
    from customers.selectors import custom_field_list

    for position, key in enumerate(("first", "second", "third")):
        CustomFieldDefinition.objects.create(key=key, label=key.title(), field_type="text", position=position)
    third = CustomFieldDefinition.objects.get(key="third")
    url = reverse("customers:custom_field_move", args=[third.pk])
    assert admin_client.post(url, {"direction": "up"}).status_code == 302
    assert [d.key for d in custom_field_list(active_only=False)] == ["first", "third", "second"]
    admin_client.post(url, {"direction": "up"})
    admin_client.post(url, {"direction": "up"})  # already first: stays
    assert [d.key for d in custom_field_list(active_only=False)] == ["third", "first", "second"]
    admin_client.post(url, {"direction": "down"})
    assert [d.key for d in custom_field_list(active_only=False)] == ["first", "third", "second"]
    page = admin_client.get(reverse("customers:custom_fields")).content.decode()
    assert page.index('data-key="first"') < page.index('data-key="third"') < page.index('data-key="second"')
    before = list(CustomFieldDefinition.objects.values_list("key", "position"))
    admin_client.post(url, {"direction": "sideways"})
    assert manager_client.post(url, {"direction": "up"}).status_code == 403
    assert list(CustomFieldDefinition.objects.values_list("key", "position")) == before
