"""Issue 15: tag management (Settings > Tags): counts, rename, colour, merge, recycle bin and restore."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.audit.models import AuditEvent
from customers.models import Customer, Tag
from customers.selectors import tag_list
from customers.services import customer_update, tag_get_or_create
from customers.tags.selectors import tag_list_with_counts
from customers.tags.services import tag_delete, tag_merge, tag_restore, tag_update
from segmentation.rules import _tag_choices, compile_rules
from tests.factories import CustomerFactory, TagFactory

LIST = "/customers/tags/"


def _tag_ids(customer: Customer) -> set[int]:
    return set(Customer.tags.through.objects.filter(customer=customer).values_list("tag_id", flat=True))


# --- access ---------------------------------------------------------------------------------------


def test_managers_and_admins_manage_tags_sales_get_403(
    anon_client, sales_client, manager_client, admin_client
):
    tag = TagFactory(name="VIP")
    response = anon_client.get(LIST)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert sales_client.get(LIST).status_code == 403
    for url, data in (
        (reverse("customers:tag_edit", args=[tag.pk]), {"name": "Hacked", "color": "danger"}),
        (reverse("customers:tag_delete", args=[tag.pk]), {}),
    ):
        assert sales_client.post(url, data).status_code == 403
    assert Tag.objects.get(pk=tag.pk).name == "VIP" and Tag.objects.get(pk=tag.pk).deleted_at is None
    assert manager_client.get(LIST).status_code == 200
    assert admin_client.get(LIST).status_code == 200


def test_the_services_refuse_sales_users_too(sales_user):
    tag = TagFactory(name="VIP")
    with pytest.raises(PermissionDenied):
        tag_update(actor=sales_user, tag=tag, name="Mine", color="danger")
    with pytest.raises(PermissionDenied):
        tag_delete(actor=sales_user, tag=tag)


def test_tags_of_another_company_are_not_listed_nor_reachable(manager_client, tenant, tenant_b):
    TagFactory(name="Alpha only")
    with schema_context(tenant_b.schema_name):
        beta_tag = Tag.objects.create(name="Beta secret")
    connection.set_tenant(tenant)
    page = manager_client.get(LIST).content.decode()
    assert "Alpha only" in page and "Beta secret" not in page
    # alpha's site looks beta's id up in alpha's schema: nothing (or another alpha tag) is found
    assert not Tag.objects.filter(name="Beta secret").exists()
    response = manager_client.post(reverse("customers:tag_delete", args=[beta_tag.pk]))
    assert response.status_code in (302, 404)
    with schema_context(tenant_b.schema_name):
        assert Tag.objects.get(pk=beta_tag.pk).deleted_at is None
    connection.set_tenant(tenant)


# --- the list -------------------------------------------------------------------------------------


def test_the_list_counts_live_customers_per_tag_in_constant_queries(
    manager_client, sales_user, django_assert_num_queries
):
    vip, regular = TagFactory(name="VIP"), TagFactory(name="Regular")
    CustomerFactory.create_batch(3, owner=sales_user, tags=[vip])
    CustomerFactory(owner=sales_user, tags=[vip, regular])
    CustomerFactory(owner=sales_user, tags=[vip], deleted_at=timezone.now())  # in the bin: not counted
    counts = {t.name: t.customer_count for t in tag_list_with_counts()}
    assert counts == {"Regular": 1, "VIP": 4}
    manager_client.get(LIST)  # warm up (session)
    with django_assert_num_queries(TAG_LIST_QUERIES):
        manager_client.get(LIST)
    TagFactory.create_batch(30)
    with django_assert_num_queries(TAG_LIST_QUERIES):
        page = manager_client.get(LIST).content.decode()
    assert page.count('data-tag="') == 32


# the tenant (domain) with its search_path set twice, session, user, the paginator's count, and the
# page of tags with their counts: the same whatever the number of tags and customers
TAG_LIST_QUERIES = 7


# --- rename and colour ----------------------------------------------------------------------------


def test_rename_is_normalised_and_recolour_audited(manager_client, manager_user):
    tag = TagFactory(name="vip", color="secondary")
    response = manager_client.post(
        reverse("customers:tag_edit", args=[tag.pk]), {"name": "  Very   important  ", "color": "warning"}
    )
    assert response.status_code == 302
    tag.refresh_from_db()
    assert (tag.name, tag.color) == ("Very important", "warning")
    event = AuditEvent.objects.get(action="tag.updated")
    assert event.actor == manager_user and event.target_type == "customers.tag"
    assert event.changes == {
        "name": {"old": "vip", "new": "Very important"},
        "color": {"old": "secondary", "new": "warning"},
    }


def test_a_rename_that_clashes_in_any_case_gets_a_clear_error_and_writes_nothing(manager_client):
    TagFactory(name="VIP")
    tag = TagFactory(name="Gold")
    response = manager_client.post(
        reverse("customers:tag_edit", args=[tag.pk]), {"name": " vip ", "color": "danger"}
    )
    assert response.status_code == 200
    assert "A tag named “VIP” already exists" in " ".join(response.context["form"].errors["name"])
    tag.refresh_from_db()
    assert (tag.name, tag.color) == ("Gold", "secondary")
    assert not AuditEvent.objects.filter(action="tag.updated").exists()


def test_colours_come_from_the_palette_only(manager_user):
    tag = TagFactory(name="VIP")
    with pytest.raises(ValidationError) as caught:
        tag_update(actor=manager_user, tag=tag, name="VIP", color="red; background:url(x)")
    assert "color" in caught.value.message_dict
    with pytest.raises(ValidationError):
        tag_update(actor=manager_user, tag=tag, name="x" * 61, color="danger")
    assert Tag.objects.get(pk=tag.pk).color == "secondary"


def test_the_database_refuses_a_second_live_tag_differing_only_in_case(tenant):
    from django.db import IntegrityError, transaction

    TagFactory(name="VIP")
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.create(name="vip")


# --- merge ----------------------------------------------------------------------------------------


def test_merge_moves_customers_keeps_one_link_each_and_deletes_the_source(
    manager_client, manager_user, sales_user
):
    source, target = TagFactory(name="V.I.P."), TagFactory(name="VIP")
    only_source = CustomerFactory.create_batch(3, owner=sales_user, tags=[source])
    both = CustomerFactory.create_batch(2, owner=sales_user, tags=[source, target])
    only_target = CustomerFactory(owner=sales_user, tags=[target])
    response = manager_client.post(reverse("customers:tag_merge", args=[source.pk]), {"target": target.pk})
    assert response.status_code == 302
    assert not Tag.objects.filter(pk=source.pk).exists()
    for customer in [*only_source, *both, only_target]:
        assert _tag_ids(customer) == {target.pk}
    assert Customer.tags.through.objects.filter(tag=target).count() == 6
    event = AuditEvent.objects.get(action="tag.merged")
    assert event.actor == manager_user and event.target_id == str(target.pk)
    assert event.changes == {"merged_tag": "V.I.P.", "customers": 5, "moved": 3, "already_tagged": 2}


def test_merge_runs_in_a_fixed_number_of_statements(manager_user, sales_user, django_assert_num_queries):
    source, target = TagFactory(name="A"), TagFactory(name="B")
    CustomerFactory.create_batch(25, owner=sales_user, tags=[source])
    # savepoint, lock both, INSERT ... SELECT, DELETE links, audit row, the saved segments' rules (read),
    # the tag's delete (its links, then its row), release: the same for 25 customers as for 25,000
    with django_assert_num_queries(MERGE_QUERIES):
        tag_merge(actor=manager_user, source=source, target=target)


MERGE_QUERIES = 9


def test_saved_segments_naming_the_merged_tag_follow_it(manager_user, sales_user):
    from segmentation.models import Segment

    source, target, other = TagFactory(name="V.I.P."), TagFactory(name="VIP"), TagFactory(name="Tea")
    customer = CustomerFactory(owner=sales_user, tags=[source])
    condition = {"field": "tags", "op": "has_any", "value": [source.pk, target.pk, other.pk]}
    segment = Segment.objects.create(
        name="VIPs", rules={"op": "and", "rules": [condition]}, created_by=manager_user
    )
    untouched = Segment.objects.create(
        name="Tea",
        rules={"op": "and", "rules": [{**condition, "value": [other.pk]}]},
        created_by=manager_user,
    )
    tag_merge(actor=manager_user, source=source, target=target)
    segment.refresh_from_db()
    assert segment.rules["rules"][0]["value"] == [target.pk, other.pk]
    assert Customer.objects.filter(compile_rules(segment.rules)).filter(pk=customer.pk).exists()
    untouched.refresh_from_db()
    assert untouched.rules["rules"][0]["value"] == [other.pk]


def test_merge_into_itself_or_a_binned_tag_is_refused(manager_user):
    tag, binned = TagFactory(name="A"), TagFactory(name="B")
    tag_delete(actor=manager_user, tag=binned)
    for target in (tag, binned):
        with pytest.raises(ValidationError):
            tag_merge(actor=manager_user, source=tag, target=target)
    assert Tag.objects.filter(pk=tag.pk).exists()


# --- recycle bin ----------------------------------------------------------------------------------


def test_a_binned_tag_leaves_pickers_filters_and_rules_but_keeps_its_customers(manager_user, sales_user):
    tag, other = TagFactory(name="Lapsed"), TagFactory(name="Loyal")
    customer = CustomerFactory(owner=sales_user, tags=[tag, other])
    rules = {"op": "and", "rules": [{"field": "tags", "op": "has_any", "value": [tag.pk]}]}
    assert Customer.objects.filter(compile_rules(rules)).filter(pk=customer.pk).exists()

    tag_delete(actor=manager_user, tag=tag)
    assert tag not in tag_list() and (tag.pk, "Lapsed") not in _tag_choices()
    assert not Customer.objects.filter(compile_rules(rules)).exists()  # a rule saved before: matches nothing
    assert _tag_ids(customer) == {tag.pk, other.pk}  # the link is kept for the restore
    # editing the customer (the form offers live tags only) does not drop the binned link
    customer_update(actor=manager_user, customer=customer, data={"tags": [other]})
    assert _tag_ids(customer) == {tag.pk, other.pk}
    # a new tag of the same name is a new tag; the binned one stays in the bin
    again = tag_get_or_create(name="  lapsed ")
    assert again.pk != tag.pk and again.name == "lapsed"


def test_bin_page_lists_binned_tags_and_restore_brings_them_back(manager_client, manager_user, sales_user):
    tag = TagFactory(name="Lapsed")
    customer = CustomerFactory(owner=sales_user, tags=[tag])
    manager_client.post(reverse("customers:tag_delete", args=[tag.pk]))
    tag.refresh_from_db()
    assert tag.deleted_at is not None and tag.deleted_by == manager_user
    page = manager_client.get(reverse("customers:bin")).content.decode()
    assert f'data-tag="{tag.pk}"' in page and "Lapsed" in page
    assert "Lapsed" not in manager_client.get(LIST).content.decode()

    response = manager_client.post(reverse("customers:tag_restore", args=[tag.pk]))
    assert response.status_code == 302
    tag.refresh_from_db()
    assert tag.deleted_at is None and tag in tag_list() and _tag_ids(customer) == {tag.pk}
    actions = list(
        AuditEvent.objects.filter(target_type="customers.tag", target_id=str(tag.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["tag.deleted", "tag.restored"]


def test_restore_is_refused_while_a_live_tag_has_the_name(manager_user):
    old = TagFactory(name="VIP")
    tag_delete(actor=manager_user, tag=old)
    tag_get_or_create(name="vip")
    with pytest.raises(ValidationError, match="Another tag is now called"):
        tag_restore(actor=manager_user, tag=old)
    assert Tag.objects.get(pk=old.pk).deleted_at is not None


def test_sales_do_not_see_the_binned_tags_section(sales_client, manager_user):
    tag_delete(actor=manager_user, tag=TagFactory(name="Lapsed"))
    page = sales_client.get(reverse("customers:bin")).content.decode()
    assert "bin-tags-table" not in page and "Lapsed" not in page


def test_imports_match_live_tags_ignoring_case_and_never_a_binned_one(tenant, manager_user):
    from tests.customers.test_import_services import run_import

    live = TagFactory(name="VIP")
    binned = TagFactory(name="Lapsed")
    tag_delete(actor=manager_user, tag=binned)
    run_import(manager_user, "姓名,手机,标签\n王小明,13800138000,vip、lapsed\n")
    customer = Customer.objects.get(name="王小明")
    names = set(customer.tags.values_list("name", "deleted_at"))
    assert ("VIP", None) in names  # the live tag, whatever the case in the file
    assert binned.pk not in _tag_ids(customer)  # a new live "lapsed" instead of the binned one
    assert Tag.objects.live().filter(name__iexact="lapsed").count() == 1
    assert live.pk in _tag_ids(customer)


def test_tag_names_are_escaped(manager_client, sales_user):
    TagFactory(name="<script>alert(1)</script>")
    page = manager_client.get(LIST).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_the_tag_services_refuse_a_sales_user_themselves(sales_user):
    """Behind the views' role check, each tag service checks the role too (a task or another app
    calling it cannot rename, merge, bin or restore tags for a sales user)."""

    from customers.tags import services as tag_services

    vip, gold = Tag.objects.create(name="vip-x"), Tag.objects.create(name="gold-x")
    calls = [
        lambda: tag_services.tag_update(actor=sales_user, tag=vip, name="VIP 2", color=vip.color),
        lambda: tag_services.tag_merge(actor=sales_user, source=vip, target=gold),
        lambda: tag_services.tag_delete(actor=sales_user, tag=vip),
        lambda: tag_services.tag_restore(actor=sales_user, tag=gold),
    ]
    for call in calls:
        with pytest.raises(PermissionDenied):
            call()
    assert sorted(Tag.objects.filter(pk__in=[vip.pk, gold.pk]).values_list("name", "deleted_at")) == [
        ("gold-x", None),
        ("vip-x", None),
    ]
