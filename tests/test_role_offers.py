"""Pages offer each role only what it may do (the server refuses the rest anyway, see the access
matrix): the owner field and filter, the managers' bulk actions, refunds and sharing, "export all
data", the recompute button and editing another rep's saved segment."""

from django.urls import reverse

from segmentation.models import Segment
from tests.factories import CustomerFactory, OrderFactory

RULES = {"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Shanghai"}]}


def test_the_owner_field_filter_and_bulk_actions_are_for_managers(tenant, client_for, users):
    sales = client_for(users["sales"])
    manager = client_for(users["manager"])
    assert "owner" not in sales.get(reverse("customers:create")).context["form"].fields
    assert "owner" in manager.get(reverse("customers:create")).context["form"].fields
    sales_list, manager_list = sales.get(reverse("customers:list")), manager.get(reverse("customers:list"))
    assert [f.name for f in sales_list.context["form"].basic_fields()] == ["tag", "source"]
    assert [f.name for f in manager_list.context["form"].basic_fields()] == ["owner", "tag", "source"]
    sales_html, manager_html = sales_list.content.decode(), manager_list.content.decode()
    assert 'value="delete"' not in sales_html and 'value="assign"' not in sales_html
    assert 'value="delete"' in manager_html and 'value="assign"' in manager_html


def test_refunds_and_sharing_are_offered_to_managers_only(tenant, client_for, users):
    customer = CustomerFactory(owner=users["sales"])
    order = OrderFactory(customer=customer, status="paid")
    refund = reverse("customers:order_refund", args=[order.pk])
    share = reverse("customers:share", args=[customer.pk])
    for role, offered in (("sales", False), ("manager", True)):
        client = client_for(users[role])
        detail = client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
        orders = client.get(reverse("customers:orders", args=[customer.pk])).content.decode()
        # the refund forms sit in the Orders tab, which the page loads with htmx when first shown
        assert (share in detail, refund in orders) == (offered,) * 2, role
        assert refund not in detail, role


def test_export_all_and_recompute_are_offered_to_managers_only(tenant, client_for, users):
    export_all = reverse("customers:export_all")
    recompute = reverse("segmentation:recompute")
    for role, offered in (("sales", False), ("manager", True)):
        client = client_for(users[role])
        assert (export_all in client.get(reverse("customers:export")).content.decode()) is offered, role
        assert (recompute in client.get(reverse("segmentation:index")).content.decode()) is offered, role


def test_a_shared_segment_is_editable_by_its_author_and_managers_only(tenant, client_for, users):
    segment = Segment.objects.create(name="Team list", rules=RULES, created_by=users["sales"])
    edit = reverse("segmentation:builder_edit", args=[segment.pk])
    for role, offered in (("sales", True), ("sales2", False), ("manager", True)):
        html = client_for(users[role]).get(reverse("segmentation:segments")).content.decode()
        assert "Team list" in html and (edit in html) is offered, role


def test_the_duplicates_page_tells_sales_they_see_only_their_pairs(tenant, client_for, users):
    note = "You see pairs of customers you can see both of."
    assert note in client_for(users["sales"]).get(reverse("customers:duplicates")).content.decode()
    assert note not in client_for(users["manager"]).get(reverse("customers:duplicates")).content.decode()
