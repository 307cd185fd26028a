"""Merging two customers and undoing it: services (rows, fields, bin, history, undo) and pages."""

from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.audit.models import AuditEvent
from customers.dedupe.fields import default_choices, differing_fields
from customers.dedupe.services import (
    MERGED_ACTION,
    MERGED_IN_ACTION,
    UNDONE_ACTION,
    customer_merge,
    customer_merge_undo,
)
from customers.models import BehaviourEvent, Customer, Order
from customers.registry import MergeHook, registry
from customers.services import customer_refresh_order_stats
from tests.factories import (
    BehaviourEventFactory,
    CustomerFactory,
    CustomFieldDefinitionFactory,
    OrderFactory,
    TagFactory,
)


def _history(customer, action=None):
    qs = AuditEvent.objects.filter(target_type="customers.customer", target_id=str(customer.pk))
    return qs.filter(action=action) if action else qs


@contextmanager
def _refused(code: str):
    """Expect a ValidationError with `code` (codes, not messages: the messages are translated)."""
    with pytest.raises(ValidationError) as raised:
        yield
    assert [error.code for error in raised.value.error_list] == [code]


def _written_state():
    """Everything a refused merge must leave untouched."""
    return (
        sorted(Customer.objects.values_list("pk", "name", "deleted_at", "merged_into_id", "orders_count")),
        sorted(Order.objects.values_list("pk", "customer_id")),
        AuditEvent.objects.count(),
    )


@pytest.fixture
def pair(tenant, sales_user, sales_user2):
    """Two records of the same person, each with orders, events, tags and a share."""
    vip, wholesale, common = TagFactory(name="vip"), TagFactory(name="wholesale"), TagFactory(name="common")
    CustomFieldDefinitionFactory(key="shoe_size", label="Shoe size")
    survivor = CustomerFactory(
        name="张伟",
        email="zhang.wei@example.com",
        phone="+8613800138000",
        city="北京",
        owner=sales_user,
        tags=[vip, common],
        custom_fields={"shoe_size": "42"},
    )
    merged = CustomerFactory(
        name="張偉 (Zhang Wei)",
        email="zw@work.example",
        phone="+8613900139000",
        city="北京",
        birthday=date(1990, 5, 17),
        owner=sales_user2,
        tags=[wholesale, common],
        shared_with=[sales_user],
        email_consent=True,
        email_consent_at=timezone.now() - timedelta(days=3),
        custom_fields={"shoe_size": "43", "nickname": "Wei"},
        external_id="ERP-77",
    )
    survivor_orders = [OrderFactory(customer=survivor, total=Decimal("100.00")) for _ in range(2)]
    merged_orders = [
        OrderFactory(
            customer=merged, total=Decimal("250.50"), placed_at=timezone.now() - timedelta(days=400)
        ),
        OrderFactory(customer=merged, total=Decimal("49.50")),
        OrderFactory(customer=merged, total=Decimal("80.00"), status=Order.Status.CANCELLED),
    ]
    survivor_events = BehaviourEventFactory.create_batch(2, customer=survivor)
    merged_events = BehaviourEventFactory.create_batch(3, customer=merged)
    customer_refresh_order_stats(customer_ids=[survivor.pk, merged.pk])
    survivor.refresh_from_db()
    merged.refresh_from_db()
    return {
        "survivor": survivor,
        "merged": merged,
        "survivor_orders": survivor_orders,
        "merged_orders": merged_orders,
        "survivor_events": survivor_events,
        "merged_events": merged_events,
        "tags": {"vip": vip, "wholesale": wholesale, "common": common},
    }


# --- merge -----------------------------------------------------------------------------------------


def test_merge_moves_orders_events_tags_and_shares_and_sums_the_stats(pair, manager_user, sales_user2):
    survivor, merged = pair["survivor"], pair["merged"]
    before_total = survivor.total_spent + merged.total_spent
    before_count = survivor.orders_count + merged.orders_count
    assert (survivor.orders_count, merged.orders_count) == (2, 2)  # the cancelled order does not count

    result = customer_merge(actor=manager_user, survivor=survivor, merged=merged, field_choices={})

    assert set(Order.objects.filter(customer=survivor).values_list("pk", flat=True)) == {
        o.pk for o in pair["survivor_orders"] + pair["merged_orders"]
    }
    assert not Order.objects.filter(customer=merged).exists()
    assert BehaviourEvent.objects.filter(customer=survivor).count() == 5
    assert not BehaviourEvent.objects.filter(customer=merged).exists()
    assert set(survivor.tags.values_list("name", flat=True)) == {"vip", "wholesale", "common"}
    # The merged record's owner and shares keep seeing the customer's orders on the survivor.
    assert set(survivor.shared_with.all()) == {sales_user2}
    survivor.refresh_from_db()
    assert survivor.total_spent == before_total == Decimal("500.00")
    assert survivor.orders_count == before_count == 4
    assert survivor.first_order_at == pair["merged_orders"][0].placed_at
    assert result.moved["customers.orders"]["ids"] == sorted(o.pk for o in pair["merged_orders"])
    assert result.moved["customers.tags"]["ids"] == [pair["tags"]["wholesale"].pk]


def test_field_choices_are_applied(pair, manager_user, sales_user2):
    survivor, merged = pair["survivor"], pair["merged"]
    choices = {
        "name": "merged",
        "email": "survivor",
        "phone": "merged",
        "birthday": "merged",
        "owner": "merged",
        "email_consent": "merged",
        "custom:shoe_size": "merged",
        "custom:nickname": "merged",
        "external_id": "merged",
    }
    customer_merge(actor=manager_user, survivor=survivor, merged=merged, field_choices=choices)
    survivor.refresh_from_db()
    merged.refresh_from_db()
    assert survivor.name == "張偉 (Zhang Wei)"
    assert survivor.email == "zhang.wei@example.com"
    assert survivor.phone == "+8613900139000"
    assert survivor.birthday == date(1990, 5, 17)
    assert survivor.owner == sales_user2
    assert survivor.email_consent is True and survivor.email_consent_at is not None
    assert survivor.custom_fields == {"shoe_size": "43", "nickname": "Wei"}
    assert survivor.external_id == "ERP-77" and merged.external_id == ""
    assert "13900139000" in survivor.search_text and "zhang wei" in survivor.search_text


def test_fields_not_chosen_keep_the_survivors_value(pair, manager_user):
    survivor, merged = pair["survivor"], pair["merged"]
    customer_merge(
        actor=manager_user, survivor=survivor, merged=merged, field_choices={"birthday": "survivor"}
    )
    survivor.refresh_from_db()
    assert (survivor.name, survivor.phone, survivor.birthday) == ("张伟", "+8613800138000", None)
    assert survivor.custom_fields == {"shoe_size": "42"}


def test_default_choices_fill_empty_fields_from_the_merged_record(pair):
    survivor, merged = pair["survivor"], pair["merged"]
    defaults = default_choices(survivor, merged)
    assert defaults["birthday"] == "merged" and defaults["email_consent"] == "merged"
    assert defaults["name"] == "survivor" and defaults["custom:shoe_size"] == "survivor"
    assert defaults["custom:nickname"] == "merged"
    assert "city" not in differing_fields(survivor, merged)


def test_merged_customer_goes_to_the_bin_pointing_at_the_survivor(pair, manager_user):
    survivor, merged = pair["survivor"], pair["merged"]
    customer_merge(actor=manager_user, survivor=survivor, merged=merged)
    merged.refresh_from_db()
    assert merged.deleted_at is not None
    assert merged.merged_into == survivor
    assert merged.deleted_by == manager_user
    assert merged.orders_count == 0 and merged.total_spent == 0


def test_history_records_the_merge_on_both_customers(pair, manager_user):
    survivor, merged = pair["survivor"], pair["merged"]
    customer_merge(actor=manager_user, survivor=survivor, merged=merged, field_choices={"phone": "merged"})
    loser_event = _history(merged, MERGED_ACTION).get()
    assert loser_event.actor == manager_user
    assert loser_event.changes["survivor_id"] == survivor.pk
    assert loser_event.changes["survivor_before"] == {"phone": "+8613800138000"}
    assert set(loser_event.changes["moved"]) >= {
        "customers.orders",
        "customers.events",
        "customers.tags",
        "customers.shares",
    }
    survivor_event = _history(survivor, MERGED_IN_ACTION).get()
    assert survivor_event.changes["merged_id"] == merged.pk
    assert survivor_event.changes["merged_label"] == "張偉 (Zhang Wei)"
    assert survivor_event.changes["phone"] == {"old": "+8613800138000", "new": "+8613900139000"}
    assert survivor_event.changes["moved_counts"]["customers.orders"] == 3
    # Rows the History card shows: "merged X into this customer", tags gained; "merged into Y".
    assert survivor_event.changes["merged_customer"] == {
        "old": None,
        "new": f"張偉 (Zhang Wei) (#{merged.pk})",
    }
    assert survivor_event.changes["tags"] == {"old": ["common", "vip"], "new": ["common", "vip", "wholesale"]}
    assert loser_event.changes["merged_into"] == {"old": None, "new": f"张伟 (#{survivor.pk})"}


def test_merge_is_all_or_nothing_when_a_hook_fails(pair, manager_user, monkeypatch):
    def broken(survivor, merged):
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(registry.merge_hooks, "zz.broken", MergeHook(key="zz.broken", move=broken, undo=None))
    state = _written_state()
    with pytest.raises(RuntimeError):
        customer_merge(
            actor=manager_user,
            survivor=pair["survivor"],
            merged=pair["merged"],
            field_choices={"name": "merged"},
        )
    assert _written_state() == state


# --- refused merges --------------------------------------------------------------------------------


def test_merging_a_customer_with_itself_is_refused(pair, manager_user):
    state = _written_state()
    with _refused("same_customer"):
        customer_merge(actor=manager_user, survivor=pair["survivor"], merged=pair["survivor"])
    assert _written_state() == state


@pytest.mark.parametrize("which", ["survivor", "merged"])
def test_merging_a_deleted_customer_is_refused(pair, manager_user, which):
    Customer.objects.filter(pk=pair[which].pk).update(deleted_at=timezone.now())
    state = _written_state()
    with _refused("deleted"):
        customer_merge(actor=manager_user, survivor=pair["survivor"], merged=pair["merged"])
    assert _written_state() == state


def test_merging_a_customer_the_user_cannot_see_is_refused(pair, sales_user):
    # sales_user owns the survivor and the merged record is shared with them; a third is not.
    stranger = CustomerFactory(name="Not mine", owner=None)
    state = _written_state()
    with _refused("not_found"):
        customer_merge(actor=sales_user, survivor=pair["survivor"], merged=stranger)
    assert _written_state() == state


def test_sales_can_merge_customers_they_can_see(pair, sales_user):
    customer_merge(actor=sales_user, survivor=pair["survivor"], merged=pair["merged"])
    assert Customer.objects.get(pk=pair["merged"].pk).merged_into_id == pair["survivor"].pk


def test_an_unknown_field_choice_is_refused(pair, manager_user):
    state = _written_state()
    with _refused("bad_choice"):
        customer_merge(
            actor=manager_user,
            survivor=pair["survivor"],
            merged=pair["merged"],
            field_choices={"total_spent": "merged"},
        )
    with _refused("bad_choice"):
        customer_merge(
            actor=manager_user,
            survivor=pair["survivor"],
            merged=pair["merged"],
            field_choices={"name": "both"},
        )
    assert _written_state() == state


# --- undo ------------------------------------------------------------------------------------------


def test_undo_restores_everything(pair, manager_user, sales_user2):
    survivor, merged = pair["survivor"], pair["merged"]
    before = {
        "survivor": Customer.objects.filter(pk=survivor.pk).values().get(),
        "merged": Customer.objects.filter(pk=merged.pk).values().get(),
    }
    customer_merge(
        actor=manager_user,
        survivor=survivor,
        merged=merged,
        field_choices={
            "name": "merged",
            "phone": "merged",
            "owner": "merged",
            "email_consent": "merged",
            "custom:shoe_size": "merged",
            "custom:nickname": "merged",
            "external_id": "merged",
        },
    )

    result = customer_merge_undo(actor=manager_user, merged=Customer.objects.get(pk=merged.pk))

    assert result.kept_fields == []
    assert set(Order.objects.filter(customer=merged).values_list("pk", flat=True)) == {
        o.pk for o in pair["merged_orders"]
    }
    assert set(Order.objects.filter(customer=survivor).values_list("pk", flat=True)) == {
        o.pk for o in pair["survivor_orders"]
    }
    assert set(BehaviourEvent.objects.filter(customer=merged).values_list("pk", flat=True)) == {
        e.pk for e in pair["merged_events"]
    }
    assert set(survivor.tags.values_list("name", flat=True)) == {"vip", "common"}
    assert set(merged.tags.values_list("name", flat=True)) == {"wholesale", "common"}
    assert list(survivor.shared_with.all()) == []
    after = {
        "survivor": Customer.objects.filter(pk=survivor.pk).values().get(),
        "merged": Customer.objects.filter(pk=merged.pk).values().get(),
    }
    for key in ("survivor", "merged"):
        for row in (before[key], after[key]):
            row.pop("updated_at")
            # Stored as JSON in the audit log: restored to the millisecond.
            if row["email_consent_at"]:
                row["email_consent_at"] = row["email_consent_at"].replace(microsecond=0)
        assert after[key] == before[key], key
    assert _history(merged, UNDONE_ACTION).count() == 1
    undone = _history(survivor, UNDONE_ACTION).get()
    assert undone.changes["merged_id"] == merged.pk
    assert undone.changes["name"] == {"old": "張偉 (Zhang Wei)", "new": "张伟"}


def test_undo_keeps_a_field_edited_since_the_merge_and_reports_it(pair, manager_user):
    survivor, merged = pair["survivor"], pair["merged"]
    customer_merge(
        actor=manager_user,
        survivor=survivor,
        merged=merged,
        field_choices={"name": "merged", "phone": "merged"},
    )
    Customer.objects.filter(pk=survivor.pk).update(phone="+8613700137000")  # someone edits afterwards
    result = customer_merge_undo(actor=manager_user, merged=Customer.objects.get(pk=merged.pk))
    survivor.refresh_from_db()
    assert result.kept_fields == ["phone"]
    assert result.restored_fields == ["name"]
    assert survivor.phone == "+8613700137000"
    assert survivor.name == "张伟"


def test_undo_refreshes_the_stats_of_both(pair, manager_user):
    survivor, merged = pair["survivor"], pair["merged"]
    figures = {c.pk: (c.total_spent, c.orders_count, c.last_order_at) for c in (survivor, merged)}
    customer_merge(actor=manager_user, survivor=survivor, merged=merged)
    customer_merge_undo(actor=manager_user, merged=Customer.objects.get(pk=merged.pk))
    for customer in Customer.objects.filter(pk__in=figures):
        assert (customer.total_spent, customer.orders_count, customer.last_order_at) == figures[customer.pk]


def test_undo_twice_or_of_an_ordinary_deleted_customer_is_refused(pair, manager_user):
    survivor, merged = pair["survivor"], pair["merged"]
    customer_merge(actor=manager_user, survivor=survivor, merged=merged)
    customer_merge_undo(actor=manager_user, merged=Customer.objects.get(pk=merged.pk))
    with _refused("not_merged"):
        customer_merge_undo(actor=manager_user, merged=Customer.objects.get(pk=merged.pk))
    Customer.objects.filter(pk=merged.pk).update(deleted_at=timezone.now())  # an ordinary deletion
    with _refused("not_merged"):
        customer_merge_undo(actor=manager_user, merged=Customer.objects.get(pk=merged.pk))


def test_undo_still_works_after_the_merged_record_was_restored_by_hand(pair, manager_user):
    survivor, merged = pair["survivor"], pair["merged"]
    customer_merge(actor=manager_user, survivor=survivor, merged=merged)
    Customer.objects.filter(pk=merged.pk).update(deleted_at=None)  # "Restore" instead of "Undo merge"
    customer_merge_undo(actor=manager_user, merged=Customer.objects.get(pk=merged.pk))
    merged.refresh_from_db()
    assert merged.merged_into_id is None and merged.orders_count == 2
    assert Order.objects.filter(customer=merged).count() == 3


def test_undo_waits_for_a_later_merge_of_the_survivor_to_be_undone_first(pair, manager_user):
    survivor, merged = pair["survivor"], pair["merged"]
    third = CustomerFactory(name="Third")
    customer_merge(actor=manager_user, survivor=survivor, merged=merged)
    customer_merge(actor=manager_user, survivor=third, merged=Customer.objects.get(pk=survivor.pk))
    with _refused("survivor_merged"):
        customer_merge_undo(actor=manager_user, merged=Customer.objects.get(pk=merged.pk))
    customer_merge_undo(actor=manager_user, merged=Customer.objects.get(pk=survivor.pk))
    customer_merge_undo(actor=manager_user, merged=Customer.objects.get(pk=merged.pk))
    assert set(Order.objects.filter(customer=merged).values_list("pk", flat=True)) == {
        o.pk for o in pair["merged_orders"]
    }
    assert not Order.objects.filter(customer=third).exists()


# --- the registry contract: another app's hook -------------------------------------------------------


def test_a_registered_hook_is_called_with_the_right_customers_and_its_info_comes_back(
    pair, manager_user, monkeypatch
):
    calls = []

    def move(survivor, merged):
        calls.append(("move", survivor.pk, merged.pk))
        return {"ids": [7, 8], "note": "points"}

    def undo(survivor, merged, info):
        calls.append(("undo", survivor.pk, merged.pk, info))

    def move_after(survivor, merged):
        calls.append(("move after", Order.objects.filter(customer=survivor).count()))
        return {}

    def undo_after(survivor, merged, info):
        calls.append(("undo after", Order.objects.filter(customer=survivor).count()))

    # Registered before the customers app's own hooks would be in a real start-up order; "a.after"
    # sorts first by key, so neither key order nor registration order decides what runs first.
    monkeypatch.setitem(
        registry.merge_hooks, "loyalty.test", MergeHook(key="loyalty.test", move=move, undo=undo)
    )
    monkeypatch.setitem(
        registry.merge_hooks, "a.after", MergeHook(key="a.after", move=move_after, undo=undo_after)
    )
    survivor, merged = pair["survivor"], pair["merged"]
    customer_merge(actor=manager_user, survivor=survivor, merged=merged)
    # Other apps' hooks run after the customers app's own (the orders are already on the survivor),
    # in the order they registered; undo runs in exactly the reverse order.
    assert calls == [("move", survivor.pk, merged.pk), ("move after", 5)]
    assert _history(merged, MERGED_ACTION).get().changes["moved"]["loyalty.test"] == {
        "ids": [7, 8],
        "note": "points",
    }
    customer_merge_undo(actor=manager_user, merged=Customer.objects.get(pk=merged.pk))
    assert calls[2:] == [
        ("undo after", 5),
        ("undo", survivor.pk, merged.pk, {"ids": [7, 8], "note": "points"}),
    ]


def test_undo_is_refused_when_a_hook_that_moved_rows_is_gone(pair, manager_user, monkeypatch):
    monkeypatch.setitem(
        registry.merge_hooks,
        "gone.app",
        MergeHook(key="gone.app", move=lambda s, m: {}, undo=lambda s, m, i: None),
    )
    customer_merge(actor=manager_user, survivor=pair["survivor"], merged=pair["merged"])
    monkeypatch.delitem(registry.merge_hooks, "gone.app")
    with _refused("hook_missing"):
        customer_merge_undo(actor=manager_user, merged=Customer.objects.get(pk=pair["merged"].pk))
    assert Customer.objects.get(pk=pair["merged"].pk).merged_into_id == pair["survivor"].pk


# --- pages -----------------------------------------------------------------------------------------


def test_merge_page_shows_both_records_with_a_choice_per_differing_field(pair, manager_client):
    survivor, merged = pair["survivor"], pair["merged"]
    response = manager_client.get(reverse("customers:merge", args=[survivor.pk, merged.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="choice__phone"' in body and 'name="choice__custom:shoe_size"' in body
    assert 'name="choice__email_consent"' in body
    assert 'name="choice__city"' not in body  # equal on both
    assert "+86 138" in body or "138 0013 8000" in body


def test_merge_through_the_page_then_undo_from_the_result_page(pair, manager_client):
    survivor, merged = pair["survivor"], pair["merged"]
    url = reverse("customers:merge", args=[survivor.pk, merged.pk])
    response = manager_client.post(url, {"choice__name": "merged", "choice__phone": "survivor"})
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:merge_result", args=[merged.pk])
    survivor.refresh_from_db()
    assert survivor.name == "張偉 (Zhang Wei)" and survivor.phone == "+8613800138000"
    assert Order.objects.filter(customer=survivor).count() == 5

    result_page = manager_client.get(response["Location"])
    assert result_page.status_code == 200
    undo_url = reverse("customers:merge_undo", args=[merged.pk])
    assert undo_url in result_page.content.decode()
    moved = {item["key"]: item["count"] for item in result_page.context["moved"]}
    assert moved["customers.orders"] == 3 and moved["customers.events"] == 3
    assert list(moved)[:4] == ["customers.orders", "customers.events", "customers.tags", "customers.shares"]

    undone = manager_client.post(undo_url)
    assert undone.status_code == 302
    assert undone["Location"] == reverse("customers:detail", args=[merged.pk])
    assert Order.objects.filter(customer=merged).count() == 3
    assert Customer.objects.get(pk=merged.pk).deleted_at is None


def test_merge_page_of_a_binned_customer_is_not_found(pair, manager_client):
    Customer.objects.filter(pk=pair["merged"].pk).update(deleted_at=timezone.now())
    url = reverse("customers:merge", args=[pair["survivor"].pk, pair["merged"].pk])
    assert manager_client.get(url).status_code == 404  # a binned customer is not offered


def test_merge_page_shows_bad_input_at_the_field_and_writes_nothing(pair, manager_client):
    state = _written_state()
    url = reverse("customers:merge", args=[pair["survivor"].pk, pair["merged"].pk])
    response = manager_client.post(url, {"choice__name": "both"})
    assert response.status_code == 200
    assert response.context["form"].errors["choice__name"]
    assert 'class="text-danger small"' in response.content.decode()
    assert _written_state() == state


def test_merging_a_customer_with_itself_through_the_page_is_refused(pair, manager_client):
    state = _written_state()
    url = reverse("customers:merge", args=[pair["survivor"].pk, pair["survivor"].pk])
    response = manager_client.post(url, {})
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:detail", args=[pair["survivor"].pk])
    assert _written_state() == state


def test_sales_cannot_merge_customers_they_cannot_see(pair, client_for, sales_user2):
    mine = CustomerFactory(name="Sales2 own", owner=sales_user2)
    survivor = pair["survivor"]  # owned by sales_user, not shared with sales_user2
    client = client_for(sales_user2)
    state = _written_state()
    url = reverse("customers:merge", args=[mine.pk, survivor.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {}).status_code == 404
    assert client.get(reverse("customers:merge", args=[survivor.pk, mine.pk])).status_code == 404
    assert _written_state() == state


def test_sales_cannot_undo_a_merge_they_cannot_see(pair, manager_user, client_for, sales_user2):
    survivor, merged = pair["survivor"], pair["merged"]
    Customer.objects.filter(pk=merged.pk).update(owner=None)
    Customer.objects.get(pk=merged.pk).shared_with.clear()
    customer_merge(actor=manager_user, survivor=survivor, merged=Customer.objects.get(pk=merged.pk))
    client = client_for(sales_user2)
    assert client.get(reverse("customers:merge_result", args=[merged.pk])).status_code == 404
    assert client.post(reverse("customers:merge_undo", args=[merged.pk])).status_code == 404
    assert Customer.objects.get(pk=merged.pk).merged_into_id == survivor.pk


def test_a_customer_of_another_tenant_cannot_be_merged(tenant, tenant_b, manager_client):
    local = CustomerFactory(name="Alpha customer")
    foreign_pk = local.pk + 100_000  # ids are per schema: make sure alpha has no customer with it
    with schema_context(tenant_b.schema_name):
        CustomerFactory(pk=foreign_pk, name="Beta customer")
    connection.set_tenant(tenant)
    assert not Customer.objects.filter(pk=foreign_pk).exists()
    url = reverse("customers:merge", args=[local.pk, foreign_pk])
    response = manager_client.post(url, {})
    assert response.status_code == 404
    with schema_context(tenant_b.schema_name):
        assert Customer.objects.get(pk=foreign_pk).deleted_at is None
    connection.set_tenant(tenant)
    assert Customer.objects.get(pk=local.pk).deleted_at is None


def test_undo_page_confirms_before_undoing(pair, manager_user, manager_client):
    customer_merge(actor=manager_user, survivor=pair["survivor"], merged=pair["merged"])
    response = manager_client.get(reverse("customers:merge_undo", args=[pair["merged"].pk]))
    assert response.status_code == 200
    assert Customer.objects.get(pk=pair["merged"].pk).merged_into_id == pair["survivor"].pk


def test_the_survivors_page_shows_the_merge_in_its_history(pair, manager_user, manager_client):
    survivor, merged = pair["survivor"], pair["merged"]
    customer_merge(actor=manager_user, survivor=survivor, merged=merged, field_choices={"phone": "merged"})
    history = manager_client.get(reverse("customers:history", args=[survivor.pk])).content.decode()
    assert f"張偉 (Zhang Wei) (#{merged.pk})" in history
    body = manager_client.get(reverse("customers:detail", args=[survivor.pk])).content.decode()
    assert "wholesale" in body


def test_taking_the_merged_records_owner_keeps_the_former_owner_in_the_loop(
    tenant, manager_user, sales_user, sales_user2
):
    from crm.accounts.permissions import visible_to

    survivor = CustomerFactory(name="Li Na", email="li.na@example.com", owner=sales_user)
    merged = CustomerFactory(name="Li Na", email="lina@work.example", owner=sales_user2)
    customer_merge(actor=manager_user, survivor=survivor, merged=merged, field_choices={"owner": "merged"})
    survivor.refresh_from_db()
    assert survivor.owner == sales_user2
    # The former owner still sees the customer they looked after (shared with them) ...
    assert visible_to(Customer.objects.filter(pk=survivor.pk), sales_user).exists()
    assert set(survivor.shared_with.all()) == {sales_user}
    # ... and undoing the merge gives the customer back to them alone.
    customer_merge_undo(actor=manager_user, merged=Customer.objects.get(pk=merged.pk))
    survivor.refresh_from_db()
    assert survivor.owner == sales_user and not survivor.shared_with.exists()


# --- secondary contacts (issue 15) -----------------------------------------------------------------


def test_merge_keeps_the_losing_email_and_phone_as_secondary_contacts_and_undo_removes_them(
    pair, manager_user, manager_client
):
    from customers.models import SecondaryContact
    from customers.selectors import customer_list

    survivor, merged = pair["survivor"], pair["merged"]
    url = reverse("customers:merge", args=[survivor.pk, merged.pk])
    page = manager_client.get(url).content.decode()
    assert 'name="keep_secondary" value="email"' in page and 'name="keep_secondary" value="phone"' in page
    response = manager_client.post(
        url, {"choice__email": "merged", "choice__phone": "survivor", "keep_secondary": ["email", "phone"]}
    )
    assert response.status_code == 302
    survivor.refresh_from_db()
    assert survivor.email == "zw@work.example"
    # the losing values: the survivor's own e-mail (the merged one was taken) and the merged phone
    contacts = set(SecondaryContact.objects.filter(customer=survivor).values_list("kind", "value"))
    assert contacts == {("email", "zhang.wei@example.com"), ("phone", "+8613900139000")}

    detail = manager_client.get(reverse("customers:detail", args=[survivor.pk])).content.decode()
    assert "zhang.wei@example.com" in detail and 'data-field="secondary-contacts"' in detail
    for query in ("zhang.wei@example", "139 0013 9000", "+8613900139000"):
        found = customer_list(user=manager_user, filters={"q": query})
        assert list(found.values_list("pk", flat=True)) == [survivor.pk], query

    manager_client.post(reverse("customers:merge_undo", args=[merged.pk]))
    assert not SecondaryContact.objects.exists()
    assert (
        not customer_list(user=manager_user, filters={"q": "139 0013 9000"}).filter(pk=survivor.pk).exists()
    )


def test_unticked_contacts_are_not_kept(pair, manager_user):
    from customers.models import SecondaryContact

    customer_merge(actor=manager_user, survivor=pair["survivor"], merged=pair["merged"], keep_secondary=())
    assert not SecondaryContact.objects.exists()


def test_a_merged_records_secondary_contacts_follow_it_and_come_back_on_undo(pair, manager_user):
    from customers.models import SecondaryContact

    survivor, merged = pair["survivor"], pair["merged"]
    third = CustomerFactory(name="張偉", email="old@example.com", owner=merged.owner)
    customer_merge(actor=manager_user, survivor=merged, merged=third, keep_secondary=("email",))
    assert list(merged.secondary_contacts.values_list("value", flat=True)) == ["old@example.com"]
    customer_merge(actor=manager_user, survivor=survivor, merged=merged, keep_secondary=("email",))
    assert set(survivor.secondary_contacts.values_list("value", flat=True)) == {
        "old@example.com",
        "zw@work.example",
    }
    customer_merge_undo(actor=manager_user, merged=Customer.objects.get(pk=merged.pk))
    assert list(SecondaryContact.objects.values_list("customer_id", "value")) == [
        (merged.pk, "old@example.com")
    ]


# --- merging a group (issue 15: three-way duplicates took three merges) --------------------------


@pytest.fixture
def trio(tenant, sales_user):
    customers = [
        CustomerFactory(
            name="欧阳思远", email=f"siyuan{i}@example.com", phone="", city="北京", owner=sales_user
        )
        for i in range(3)
    ]
    customers[0].phone = "+8613800000001"
    customers[0].save()
    for index, customer in enumerate(customers):
        for _ in range(index + 1):
            OrderFactory(customer=customer, total=Decimal("10.00"))
    customer_refresh_order_stats(customer_ids=[c.pk for c in customers])
    return [Customer.objects.get(pk=c.pk) for c in customers]


def test_a_group_merges_in_one_step_and_undoes_in_one_step(trio, manager_user):
    from customers.dedupe.services import customer_merge_group, customer_merge_group_undo
    from customers.models import SecondaryContact

    survivor, *others = trio
    result = customer_merge_group(
        actor=manager_user, survivor=survivor, others=others, keep_secondary=("email", "phone")
    )
    assert [c.pk for c in result.merged] == [c.pk for c in others]
    assert Order.objects.filter(customer=survivor).count() == 6
    assert set(Customer.objects.filter(merged_into=survivor).values_list("pk", flat=True)) == {
        c.pk for c in others
    }
    assert set(survivor.secondary_contacts.values_list("value", flat=True)) == {
        "siyuan1@example.com",
        "siyuan2@example.com",
    }
    survivor.refresh_from_db()
    assert survivor.orders_count == 6 and survivor.email == "siyuan0@example.com"

    undone = customer_merge_group_undo(actor=manager_user, survivor=survivor)
    assert len(undone) == 2
    assert [Order.objects.filter(customer=c).count() for c in trio] == [1, 2, 3]
    assert not Customer.objects.filter(pk__in=[c.pk for c in trio], deleted_at__isnull=False).exists()
    assert not SecondaryContact.objects.exists()
    with _refused("no_group"):
        customer_merge_group_undo(actor=manager_user, survivor=survivor)


def test_a_group_with_a_customer_the_user_cannot_see_writes_nothing(trio, sales_user2):
    from customers.dedupe.services import customer_merge_group

    before = _written_state()
    with _refused("not_found"):
        customer_merge_group(actor=sales_user2, survivor=trio[0], others=trio[1:])
    assert _written_state() == before


def test_the_duplicates_page_offers_the_group_and_the_pages_merge_and_undo_it(trio, manager_client):
    page = manager_client.get(reverse("customers:duplicates")).content.decode()
    ids = ",".join(str(c.pk) for c in sorted(trio, key=lambda c: c.pk))
    group_url = reverse("customers:merge_group") + f"?ids={ids}"
    assert group_url in page
    form = manager_client.get(group_url)
    assert form.status_code == 200
    # the one with most orders is offered to stay
    assert form.context["form"]["survivor"].value() == trio[2].pk
    response = manager_client.post(
        reverse("customers:merge_group"), {"ids": ids, "survivor": trio[2].pk, "keep_secondary": ["email"]}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:merge_group_undo", args=[trio[2].pk])
    result = manager_client.get(response["Location"])
    assert result.status_code == 200 and len(result.context["merged"]) == 2
    assert Order.objects.filter(customer=trio[2]).count() == 6
    manager_client.post(response["Location"])
    assert [Order.objects.filter(customer=c).count() for c in trio] == [1, 2, 3]
    assert manager_client.get(response["Location"]).status_code == 404  # nothing left to undo


def test_the_group_page_refuses_bad_or_foreign_ids_with_404(trio, client_for, sales_user2, manager_client):
    ids = ",".join(str(c.pk) for c in trio)
    other = client_for(sales_user2)
    assert other.get(reverse("customers:merge_group") + f"?ids={ids}").status_code == 404
    before = _written_state()
    response = other.post(reverse("customers:merge_group"), {"ids": ids, "survivor": trio[0].pk})
    assert response.status_code == 404 and _written_state() == before
    for bad in ("1", "x,y", "1," * 20 + "2", "9" * 40):
        assert manager_client.get(reverse("customers:merge_group") + f"?ids={bad}").status_code == 404
    response = manager_client.post(reverse("customers:merge_group"), {"ids": ids, "survivor": "999999"})
    assert response.status_code == 200 and response.context["form"].errors["survivor"]
    assert _written_state() == before
