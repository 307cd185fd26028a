from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from crm.audit.models import AuditEvent
from customers.models import Customer, Order, Refund
from customers.phone import normalise_phone, region_for_tenant
from customers.services import (
    custom_field_create,
    custom_field_set_active,
    custom_field_update,
    customer_create,
    customer_refresh_order_stats,
    customer_share,
    customer_update,
    customers_bulk_assign_owner,
    customers_bulk_delete,
    customers_bulk_tag,
    order_create,
    order_refund,
    tag_get_or_create,
)
from tests.factories import CustomerFactory, CustomFieldDefinitionFactory, OrderFactory, TagFactory


def audit_rows(customer, action=None):
    qs = AuditEvent.objects.filter(target_type="customers.customer", target_id=str(customer.pk))
    if action:
        qs = qs.filter(action=action)
    return list(qs.order_by("id"))


def error_fields(excinfo) -> dict[str, list[str]]:
    return excinfo.value.message_dict


# --- phone and email ----------------------------------------------------------------------------------


def test_chinese_mobile_typed_with_spaces_is_stored_in_e164(tenant, admin_user):
    customer = customer_create(actor=admin_user, name="王小明", phone="138 0013 8000")
    assert customer.phone == "+8613800138000"
    customer.refresh_from_db()
    assert customer.phone == "+8613800138000"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", "+8613800138000"),
        ("+86 138-0013-8000", "+8613800138000"),
        ("021 6234 5678", "+862162345678"),
        ("+44 20 7946 0958", "+442079460958"),
        ("", ""),
    ],
)
def test_phone_normalisation(tenant, raw, expected):
    assert normalise_phone(raw) == expected


def test_region_comes_from_the_tenant_time_zone(tenant):
    class T:
        time_zone, currency = "Europe/London", "GBP"

    assert region_for_tenant(tenant) == "CN"  # alpha runs on Asia/Shanghai
    assert region_for_tenant(T()) == "GB"
    assert normalise_phone("020 7946 0958", region="GB") == "+442079460958"
    T.time_zone = "Antarctica/Troll"
    T.currency = "USD"
    assert region_for_tenant(T()) == "US"


@pytest.mark.parametrize("raw", ["12345", "not a phone", "138 0013 80001234", "+999 123"])
def test_invalid_phone_gets_a_field_message(tenant, admin_user, raw):
    with pytest.raises(ValidationError) as excinfo:
        customer_create(actor=admin_user, name="Bad Phone", phone=raw)
    assert "valid phone number" in error_fields(excinfo)["phone"][0]
    assert not Customer.objects.filter(name="Bad Phone").exists()


def test_email_is_lower_cased_and_validated(tenant, admin_user):
    customer = customer_create(actor=admin_user, name="Mail", email="  Li.Na@Example.COM ")
    assert customer.email == "li.na@example.com"
    with pytest.raises(ValidationError) as excinfo:
        customer_create(actor=admin_user, name="Bad", email="not-an-email", phone="12")
    fields = error_fields(excinfo)
    assert "valid email" in fields["email"][0]
    assert "phone" in fields  # every bad field is reported at once


def test_name_is_required(tenant, admin_user):
    with pytest.raises(ValidationError) as excinfo:
        customer_create(actor=admin_user, name="   ")
    assert "name" in error_fields(excinfo)


def test_birthday_in_the_future_is_refused(tenant, admin_user):
    with pytest.raises(ValidationError) as excinfo:
        customer_create(actor=admin_user, name="X", birthday=timezone.localdate() + timedelta(days=3))
    assert "future" in error_fields(excinfo)["birthday"][0]


def test_external_id_must_be_unique_with_a_clear_message(tenant, admin_user):
    customer_create(actor=admin_user, name="A", external_id="ERP-1")
    with pytest.raises(ValidationError) as excinfo:
        customer_create(actor=admin_user, name="B", external_id="ERP-1")
    assert "already has this external id" in error_fields(excinfo)["external_id"][0]


# --- search text --------------------------------------------------------------------------------------


def test_search_text_holds_simplified_pinyin_initials_and_phone_digits(tenant, admin_user):
    customer = customer_create(
        actor=admin_user, name="陳大文", email="Chen@X.cn", phone="13800138000", external_id="ERP-9"
    )
    text = customer.search_text
    for part in (
        "陳大文",
        "陈大文",
        "chen da wen",
        "chendawen",
        "cdw",
        "chen@x.cn",
        "8613800138000",
        "erp-9",
    ):
        assert part in text
    updated = customer_update(actor=admin_user, customer=customer, data={"name": "李雷"})
    assert "lilei" in updated.search_text and "chendawen" not in updated.search_text


# --- ownership ----------------------------------------------------------------------------------------


def test_sales_own_what_they_create_and_cannot_reassign(tenant, sales_user, sales_user2, manager_user):
    customer = customer_create(actor=sales_user, name="Mine", owner=sales_user2)
    assert customer.owner == sales_user
    with pytest.raises(ValidationError) as excinfo:
        customer_update(actor=sales_user, customer=customer, data={"owner": sales_user2})
    assert "Only managers" in error_fields(excinfo)["owner"][0]
    customer_update(actor=manager_user, customer=customer, data={"owner": sales_user2})
    customer.refresh_from_db()
    assert customer.owner == sales_user2


def test_a_customers_language_is_one_of_the_sites_languages_or_blank(tenant, sales_user, client_for):
    customer = customer_create(actor=sales_user, name="Lin", language="zh-hans")
    assert Customer.objects.get(pk=customer.pk).language == "zh-hans"
    with pytest.raises(ValidationError) as excinfo:
        customer_update(actor=sales_user, customer=customer, data={"language": "xx" * 20})
    assert "language" in error_fields(excinfo)
    assert Customer.objects.get(pk=customer.pk).language == "zh-hans"  # nothing written
    customer_update(actor=sales_user, customer=customer, data={"language": ""})
    assert Customer.objects.get(pk=customer.pk).language == ""  # the company's language
    html = client_for(sales_user).get(f"/customers/{customer.pk}/edit/").content.decode()
    assert 'name="language"' in html and "The company&#x27;s language" in html


# --- audit --------------------------------------------------------------------------------------------


def test_create_and_update_write_audit_records_with_old_and_new_values(tenant, admin_user, sales_user):
    customer = customer_create(actor=admin_user, name="Old Name", email="old@example.com", owner=sales_user)
    created = audit_rows(customer, "customer.created")
    assert len(created) == 1 and created[0].actor == admin_user
    assert created[0].changes["name"] == {"old": None, "new": "Old Name"}

    customer_update(
        actor=admin_user,
        customer=customer,
        data={"name": "New Name", "email": "NEW@example.com", "city": "Beijing", "phone": ""},
    )
    (updated,) = audit_rows(customer, "customer.updated")
    assert updated.changes["name"] == {"old": "Old Name", "new": "New Name"}
    assert updated.changes["email"] == {"old": "old@example.com", "new": "new@example.com"}
    assert updated.changes["city"] == {"old": "", "new": "Beijing"}
    assert "phone" not in updated.changes  # nothing changed there


def test_update_that_changes_nothing_writes_no_audit_row(tenant, admin_user):
    customer = customer_create(actor=admin_user, name="Same")
    customer_update(actor=admin_user, customer=customer, data={"name": " Same "})
    assert audit_rows(customer, "customer.updated") == []


def test_failed_update_changes_nothing(tenant, admin_user):
    customer = customer_create(actor=admin_user, name="Keep", email="keep@example.com")
    with pytest.raises(ValidationError):
        customer_update(actor=admin_user, customer=customer, data={"name": "Changed", "email": "broken"})
    customer.refresh_from_db()
    assert (customer.name, customer.email) == ("Keep", "keep@example.com")
    assert audit_rows(customer, "customer.updated") == []


def test_consent_sets_and_clears_the_timestamp(tenant, admin_user):
    customer = customer_create(actor=admin_user, name="C", email_consent=True)
    assert customer.email_consent_at is not None and customer.sms_consent_at is None
    given_at = customer.email_consent_at
    customer = customer_update(
        actor=admin_user, customer=customer, data={"email_consent": True, "sms_consent": True}
    )
    assert customer.email_consent_at == given_at  # unchanged consent keeps its time
    assert customer.sms_consent_at is not None
    customer = customer_update(actor=admin_user, customer=customer, data={"email_consent": False})
    assert customer.email_consent is False and customer.email_consent_at is None
    (_, second) = audit_rows(customer, "customer.updated")
    assert second.changes["email_consent"] == {"old": True, "new": False}


def test_tags_in_update_are_audited(tenant, admin_user):
    vip, new = TagFactory(name="VIP"), TagFactory(name="New")
    customer = customer_create(actor=admin_user, name="T", tags=[vip])
    customer_update(actor=admin_user, customer=customer, data={"tags": [vip, new]})
    (row,) = audit_rows(customer, "customer.updated")
    assert row.changes["tags"] == {"old": ["VIP"], "new": ["New", "VIP"]}


# --- custom fields on customers -----------------------------------------------------------------------


@pytest.fixture
def fields(tenant):
    return {
        "wechat": CustomFieldDefinitionFactory(key="wechat", field_type="text"),
        "height": CustomFieldDefinitionFactory(key="height", field_type="number"),
        "since": CustomFieldDefinitionFactory(key="since", field_type="date"),
        "size": CustomFieldDefinitionFactory(key="size", field_type="choice", choices=["S", "M", "L"]),
        "likes": CustomFieldDefinitionFactory(
            key="likes", field_type="multi_choice", choices=["tea", "coffee"]
        ),
        "vip": CustomFieldDefinitionFactory(key="vip", field_type="boolean"),
        "member_no": CustomFieldDefinitionFactory(key="member_no", field_type="text", required=True),
    }


def test_custom_field_values_are_cleaned_by_type(tenant, admin_user, fields):
    customer = customer_create(
        actor=admin_user,
        name="CF",
        custom_fields={
            "wechat": " wx_123 ",
            "height": "172.5",
            "since": "2024/3/7",
            "size": "M",
            "likes": "tea, coffee",
            "vip": "是",
            "member_no": "M-1",
        },
    )
    customer.refresh_from_db()
    assert customer.custom_fields == {
        "wechat": "wx_123",
        "height": 172.5,
        "since": "2024-03-07",
        "size": "M",
        "likes": ["tea", "coffee"],
        "vip": True,
        "member_no": "M-1",
    }


def test_bad_custom_field_values_get_messages_per_field(tenant, admin_user, fields):
    with pytest.raises(ValidationError) as excinfo:
        customer_create(
            actor=admin_user,
            name="CF",
            custom_fields={
                "wechat": "x" * 1001,
                "height": "tall",
                "since": "2024-02-30",
                "size": "XXL",
                "likes": ["tea", "wine"],
                "vip": "maybe",
            },
        )
    fields_errors = error_fields(excinfo)
    assert "1000 characters" in fields_errors["cf_wechat"][0]
    assert fields_errors["cf_height"] == ["“tall” is not a number."]
    assert "valid date" in fields_errors["cf_since"][0]
    assert "S, M, L" in fields_errors["cf_size"][0]
    assert "wine" in fields_errors["cf_likes"][0]
    assert fields_errors["cf_vip"] == ["Enter yes or no."]
    assert fields_errors["cf_member_no"] == ["This field is required."]


def test_partial_custom_field_update_keeps_other_values_and_is_audited(tenant, admin_user, fields):
    customer = customer_create(actor=admin_user, name="CF", custom_fields={"member_no": "1", "size": "S"})
    customer_update(actor=admin_user, customer=customer, data={"custom_fields": {"size": "L", "height": ""}})
    customer.refresh_from_db()
    assert customer.custom_fields == {"member_no": "1", "size": "L"}
    (row,) = audit_rows(customer, "customer.updated")
    assert row.changes == {"custom_fields.size": {"old": "S", "new": "L"}}
    with pytest.raises(ValidationError) as excinfo:
        customer_update(actor=admin_user, customer=customer, data={"custom_fields": {"member_no": ""}})
    assert "cf_member_no" in error_fields(excinfo)


def test_unknown_custom_field_is_refused(tenant, admin_user):
    with pytest.raises(ValidationError) as excinfo:
        customer_create(actor=admin_user, name="X", custom_fields={"nope": "1"})
    assert "not an active custom field" in error_fields(excinfo)["custom_fields"][0]


# --- custom field definitions -------------------------------------------------------------------------


def test_only_admins_define_custom_fields(tenant, manager_user):
    with pytest.raises(PermissionDenied):
        custom_field_create(actor=manager_user, key="x", label="X", field_type="text")


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"key": "1bad"}, "key", "lower-case letters"),
        ({"key": "Has Space"}, "key", "lower-case letters"),
        ({"key": "dup"}, "key", "already exists"),
        ({"field_type": "choice", "choices": " , "}, "choices", "at least one choice"),
        ({"label": ""}, "label", "cannot be blank"),
        ({"field_type": "colour"}, "field_type", "not a valid choice"),
    ],
)
def test_custom_field_definition_validation(tenant, admin_user, kwargs, field, message):
    CustomFieldDefinitionFactory(key="dup")
    arguments = {"key": "good_key", "label": "Good", "field_type": "text", **kwargs}
    with pytest.raises(ValidationError) as excinfo:
        custom_field_create(actor=admin_user, **arguments)
    assert message in " ".join(error_fields(excinfo)[field])


def test_custom_field_crud(tenant, admin_user):
    definition = custom_field_create(
        actor=admin_user, key="shoe_size", label="Shoe", field_type="choice", choices="38\n39, 40\n39"
    )
    assert definition.choices == ["38", "39", "40"]
    definition = custom_field_update(
        actor=admin_user, definition=definition, data={"label": "Shoe size", "required": True}
    )
    assert (definition.label, definition.required) == ("Shoe size", True)
    custom_field_set_active(actor=admin_user, definition=definition, active=False)
    definition.refresh_from_db()
    assert definition.is_active is False
    actions = list(
        AuditEvent.objects.filter(target_type="customers.customfielddefinition").values_list(
            "action", flat=True
        )
    )
    assert sorted(actions) == ["custom_field.created", "custom_field.updated", "custom_field.updated"]
    # an inactive required field no longer blocks customers
    assert customer_create(actor=admin_user, name="Fine").pk


# --- bulk actions -------------------------------------------------------------------------------------


def test_bulk_tag_only_touches_visible_customers(tenant, sales_user, sales_user2):
    mine = CustomerFactory.create_batch(3, owner=sales_user)
    other = CustomerFactory(owner=sales_user2)
    tag = tag_get_or_create(name=" Spring  Promo ")
    assert tag.name == "Spring Promo"
    changed = customers_bulk_tag(actor=sales_user, customer_ids=[c.pk for c in [*mine, other]], tag=tag)
    assert changed == 3
    assert not other.tags.exists()
    assert customers_bulk_tag(actor=sales_user, customer_ids=[mine[0].pk], tag=tag) == 0  # idempotent
    assert customers_bulk_tag(actor=sales_user, customer_ids=[mine[0].pk], tag=tag, remove=True) == 1
    assert [c.pk for c in tag.customers.order_by("pk")] == [mine[1].pk, mine[2].pk]
    assert audit_rows(mine[0], "customer.untagged")[0].changes["tags"] == {"old": "Spring Promo", "new": None}


def test_bulk_assign_and_delete_need_a_manager(tenant, sales_user, sales_user2, manager_user):
    customers = CustomerFactory.create_batch(2, owner=sales_user)
    ids = [c.pk for c in customers]
    with pytest.raises(PermissionDenied):
        customers_bulk_assign_owner(actor=sales_user, customer_ids=ids, owner=sales_user2)
    with pytest.raises(PermissionDenied):
        customers_bulk_delete(actor=sales_user, customer_ids=ids)
    assert customers_bulk_assign_owner(actor=manager_user, customer_ids=ids, owner=sales_user2) == 2
    assert set(Customer.objects.filter(pk__in=ids).values_list("owner", flat=True)) == {sales_user2.pk}
    row = audit_rows(customers[0], "customer.updated")[0]
    assert row.changes["owner"]["new"] == sales_user2.get_full_name()
    assert customers_bulk_delete(actor=manager_user, customer_ids=ids) == 2
    assert Customer.objects.filter(pk__in=ids, deleted_at__isnull=False).count() == 2


def test_share_is_manager_only_and_audited(tenant, sales_user, sales_user2, manager_user):
    customer = CustomerFactory(owner=sales_user)
    with pytest.raises(PermissionDenied):
        customer_share(actor=sales_user, customer=customer, users=[sales_user2])
    customer_share(actor=manager_user, customer=customer, users=[sales_user2, sales_user])
    assert list(customer.shared_with.all()) == [sales_user2]  # the owner is not "shared with"
    assert audit_rows(customer, "customer.shared")[0].changes["shared_with"]["new"] == [
        sales_user2.get_full_name()
    ]


# --- orders, refunds and figures ----------------------------------------------------------------------


def make_order(customer, actor, number, total="100.00", days_ago=5):
    return order_create(
        actor=actor,
        customer=customer,
        number=number,
        placed_at=timezone.now() - timedelta(days=days_ago),
        lines=[{"sku": "A", "product_name": "Tea", "quantity": "2", "unit_price": Decimal(total) / 2}],
    )


def test_order_create_validates_lines_and_total(tenant, admin_user):
    customer = CustomerFactory()
    order = order_create(
        actor=admin_user,
        customer=customer,
        number="N-1",
        placed_at=timezone.now(),
        total=Decimal("59.80"),
        lines=[
            {"product_name": "Tea", "quantity": 2, "unit_price": "19.90"},
            {"product_name": "Cup", "quantity": "1", "unit_price": 20},
        ],
    )
    assert order.total == Decimal("59.80") and order.lines.count() == 2
    assert order.currency == "CNY"
    customer.refresh_from_db()
    assert (customer.orders_count, customer.total_spent) == (1, Decimal("59.80"))

    with pytest.raises(ValidationError) as excinfo:
        order_create(
            actor=admin_user,
            customer=customer,
            number="N-1",
            placed_at=timezone.now(),
            lines=[{"product_name": "", "quantity": 0, "unit_price": "x"}],
        )
    errors = error_fields(excinfo)
    assert "already exists" in errors["number"][0]
    assert any("Line 1, quantity" in m for m in errors["lines"])
    assert any("Line 1, unit_price" in m for m in errors["lines"])
    assert any("Line 1, product_name" in m for m in errors["lines"])

    with pytest.raises(ValidationError) as excinfo:
        order_create(
            actor=admin_user,
            customer=customer,
            number="N-2",
            placed_at=timezone.now(),
            total=Decimal("10"),
            lines=[{"product_name": "Tea", "quantity": 1, "unit_price": "9.99"}],
        )
    assert "does not match" in error_fields(excinfo)["total"][0]
    assert Order.objects.filter(customer=customer).count() == 1


def test_refunds_move_status_and_figures_without_touching_the_total(tenant, admin_user):
    customer = CustomerFactory()
    order = make_order(customer, admin_user, "R-1", total="100.00")
    refund = order_refund(actor=admin_user, order=order, amount=Decimal("30"), reason="Broken cup")
    order.refresh_from_db()
    assert (order.status, order.total, order.refunded_total) == (
        "partially_refunded",
        Decimal("100"),
        Decimal("30"),
    )
    customer.refresh_from_db()
    assert (customer.total_spent, customer.orders_count) == (Decimal("70.00"), 1)

    with pytest.raises(ValidationError) as excinfo:
        order_refund(actor=admin_user, order=order, amount=Decimal("70.01"))
    assert "At most 70.00" in error_fields(excinfo)["amount"][0]
    with pytest.raises(ValidationError):
        order_refund(actor=admin_user, order=order, amount=Decimal("0"))

    order_refund(actor=admin_user, order=order, amount=Decimal("70"))
    order.refresh_from_db()
    assert (order.status, order.refunded_total) == ("refunded", Decimal("100"))
    customer.refresh_from_db()
    assert (customer.total_spent, customer.orders_count) == (Decimal("0"), 0)
    assert customer.first_order_at is None and customer.last_order_at is None
    assert Refund.objects.filter(order=order).count() == 2 and refund.created_by == admin_user
    with pytest.raises(ValidationError) as excinfo:
        order_refund(actor=admin_user, order=order, amount=Decimal("1"))
    assert "cannot be refunded" in error_fields(excinfo)["amount"][0]


def test_refresh_order_stats_matches_a_hand_calculation(tenant):
    now = timezone.now()
    alice, bob, carol = CustomerFactory(), CustomerFactory(), CustomerFactory()
    OrderFactory(stats=False, customer=alice, total=Decimal("100.00"), placed_at=now - timedelta(days=300))
    OrderFactory(
        stats=False,
        customer=alice,
        total=Decimal("50.00"),
        refunded_total=Decimal("20.00"),
        status="partially_refunded",
        placed_at=now - timedelta(days=30),
    )
    OrderFactory(
        stats=False,
        customer=alice,
        total=Decimal("80.00"),
        refunded_total=Decimal("80.00"),
        status="refunded",
        placed_at=now - timedelta(days=1),
    )
    OrderFactory(stats=False, customer=alice, total=Decimal("999.00"), status="cancelled", placed_at=now)
    OrderFactory(stats=False, customer=bob, total=Decimal("12.34"), placed_at=now - timedelta(days=2))
    Customer.objects.filter(pk=carol.pk).update(total_spent=Decimal("5"), orders_count=3, last_order_at=now)

    updated = customer_refresh_order_stats()
    assert updated == 3
    alice.refresh_from_db()
    bob.refresh_from_db()
    carol.refresh_from_db()
    # alice: 100 + (50 - 20) = 130 over two purchases; the refunded and cancelled orders do not count
    assert (alice.total_spent, alice.orders_count) == (Decimal("130.00"), 2)
    assert alice.first_order_at == now - timedelta(days=300)
    assert alice.last_order_at == now - timedelta(days=30)
    assert alice.average_order_value == Decimal("65.00")
    assert (bob.total_spent, bob.orders_count) == (Decimal("12.34"), 1)
    assert (carol.total_spent, carol.orders_count, carol.last_order_at) == (Decimal("0"), 0, None)
    assert customer_refresh_order_stats() == 0  # nothing changed: nothing written
    assert customer_refresh_order_stats(customer_ids=[]) == 0


def test_refresh_order_stats_for_some_customers_only(tenant):
    alice, bob = CustomerFactory(), CustomerFactory()
    OrderFactory(stats=False, customer=alice, total=Decimal("10"))
    OrderFactory(stats=False, customer=bob, total=Decimal("20"))
    assert customer_refresh_order_stats(customer_ids=[alice.pk]) == 1
    bob.refresh_from_db()
    assert bob.orders_count == 0


def test_birthday_is_stored(tenant, admin_user):
    customer = customer_create(actor=admin_user, name="B", birthday=date(1990, 5, 17), country="cn")
    assert customer.birthday == date(1990, 5, 17) and customer.country == "CN"


def test_a_multi_choice_custom_field_keeps_a_list_of_its_choices_only(tenant, admin_user):
    definition = custom_field_create(
        actor=admin_user, key="hobbies", label="Hobbies", field_type="multi_choice", choices=["tea", "golf"]
    )
    assert definition.choices == ["tea", "golf"]
    customer = CustomerFactory()
    customer_update(actor=admin_user, customer=customer, data={"custom_fields": {"hobbies": ["tea", "golf"]}})
    customer.refresh_from_db()
    assert customer.custom_fields["hobbies"] == ["tea", "golf"]
    with pytest.raises(ValidationError):
        customer_update(actor=admin_user, customer=customer, data={"custom_fields": {"hobbies": ["chess"]}})
    customer.refresh_from_db()
    assert customer.custom_fields["hobbies"] == ["tea", "golf"]
