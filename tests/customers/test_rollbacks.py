"""All-or-nothing operations of the customers app, with a failure injected part-way: an import whose
row fails when written (a PostgreSQL trigger refuses it), an import whose data changed since its
preview, and a merge / undo merge whose registered hook raises after other hooks already moved rows.
Each must leave nothing written."""

import time

import pytest
from django.db import DatabaseError, connection
from django.urls import reverse

from crm.audit.models import AuditEvent
from crm.jobs.models import BackgroundJob
from customers.imports import services as import_services
from customers.models import Customer, Order, Tag
from customers.registry import MergeHook, registry
from tests.customers.test_import_services import check
from tests.factories import CustomerFactory, OrderFactory

ROWS = (
    "姓名,邮箱,标签\n"
    "Alice First,alice@first.test,VIP\n"
    "Bob Second,bob@second.test,新客\n"
    "Boom,boom@third.test,VIP\n"
    "Dora Fourth,dora@fourth.test,\n"
)


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _state():
    return (
        sorted(
            Customer.objects.values_list(
                "pk", "name", "email", "deleted_at", "merged_into_id", "orders_count"
            )
        ),
        sorted(Order.objects.values_list("pk", "customer_id")),
        sorted(Customer.tags.through.objects.values_list("customer_id", "tag_id")),
        sorted(Tag.objects.values_list("name", flat=True)),
        AuditEvent.objects.count(),
    )


@pytest.fixture
def refuse_row_named_boom(tenant):
    """A real write-time failure: the database refuses one row of the batch (COPY or INSERT alike)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.name = 'Boom' THEN RAISE EXCEPTION 'row refused by the test trigger'; END IF; "
            "RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON customers_customer "
            "FOR EACH ROW EXECUTE FUNCTION refuse_boom()"
        )
    yield  # dropped with the test's transaction


def _confirmed(actor, content, **kwargs) -> BackgroundJob:
    job = check(actor, content, **kwargs)
    assert job.params["stage"] == "preview" and not job.result["preview"]["errors"], job.result
    return import_services.import_confirm(actor=actor, job=job, skip_invalid=False)


def test_an_import_whose_row_fails_at_write_time_writes_nothing(tenant, manager_user, refuse_row_named_boom):
    CustomerFactory(name="Already Here", email="here@already.test")
    job = _confirmed(manager_user, ROWS)
    before = _state()
    with pytest.raises(DatabaseError):
        import_services.import_run(job_id=job.pk)
    assert _state() == before  # not Alice or Bob (written before Boom), no tag, no audit row
    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.FAILED
    assert job.message == "The import failed and nothing was written. Please try again."


def test_an_import_whose_data_changed_since_the_preview_writes_nothing(tenant, manager_user):
    existing = CustomerFactory(name="Bob Second", email="bob@second.test")
    job = _confirmed(manager_user, ROWS.replace("Boom", "Carl Third"), policy="update")
    # Between the preview and the run, the customer the file updates goes to the recycle bin.
    Customer.objects.filter(pk=existing.pk).update(deleted_at=existing.created_at)
    before = _state()
    assert import_services.import_run(job_id=job.pk) is None
    assert _state() == before
    job.refresh_from_db()
    assert job.params["stage"] == "preview"
    assert job.message == "Problems were found when importing; nothing was written."
    assert job.result["preview"]["errors"], "the new problem is listed for the user"


# --- merge and undo ---------------------------------------------------------------------------------


@pytest.fixture
def pair(tenant, users):
    survivor = CustomerFactory(owner=users["sales"], name="Same Person", email="same@person.test")
    merged = CustomerFactory(owner=users["sales"], name="Same Person", email="other@person.test")
    for customer in (survivor, merged):
        OrderFactory.create_batch(2, customer=customer)
    merged.tags.add(Tag.objects.create(name="from-merged"))
    return survivor, merged


def _hooks(monkeypatch, *, fail_on: str):
    """A hook of another app that writes and then raises (on "move" or on "undo"). It is registered
    after the customers app's own hooks, so on a merge those have already moved orders and tags."""

    def move(survivor, merged):
        Customer.objects.filter(pk=survivor.pk).update(name="Touched by a hook")
        if fail_on == "move":
            raise RuntimeError("hook failed part-way")
        return {"ok": True}

    def undo(survivor, merged, info):
        Customer.objects.filter(pk=survivor.pk).update(name="Touched by a hook's undo")
        raise RuntimeError("hook failed part-way")

    monkeypatch.setitem(registry.merge_hooks, "zz.fails", MergeHook(key="zz.fails", move=move, undo=undo))


def test_a_merge_whose_last_hook_fails_changes_nothing(pair, monkeypatch, client_for, users):
    survivor, merged = pair
    _hooks(monkeypatch, fail_on="move")
    before = _state()
    with pytest.raises(RuntimeError):
        client_for(users["manager"]).post(
            reverse("customers:merge", args=[survivor.pk, merged.pk]), {"choice__email": "merged"}
        )
    assert _state() == before


def test_an_undo_whose_hook_fails_changes_nothing(pair, monkeypatch, client_for, users):
    survivor, merged = pair
    manager = client_for(users["manager"])
    _hooks(monkeypatch, fail_on="undo")
    response = manager.post(
        reverse("customers:merge", args=[survivor.pk, merged.pk]), {"choice__email": "merged"}
    )
    assert response.status_code == 302
    assert Order.objects.filter(customer=survivor).count() == 4
    before = _state()
    with pytest.raises(RuntimeError):
        manager.post(reverse("customers:merge_undo", args=[merged.pk]))
    assert _state() == before
    assert Customer.objects.get(pk=merged.pk).merged_into_id == survivor.pk


@pytest.fixture
def trio(pair, users):
    third = CustomerFactory(owner=users["sales"], name="Same Person", email="third@person.test")
    OrderFactory.create_batch(2, customer=third)
    return (*pair, third)


def _hook_failing_for(monkeypatch, *, step: str, customer_pk: int):
    """Another app's hook that fails for one customer of a group only, so the group's first merge (or
    undo) has been written when its second one fails."""

    def move(survivor, merged):
        if step == "move" and merged.pk == customer_pk:
            raise RuntimeError("hook failed on the group's second customer")
        return {"ok": True}

    def undo(survivor, merged, info):
        if step == "undo" and merged.pk == customer_pk:
            raise RuntimeError("hook failed on the group's second customer")

    monkeypatch.setitem(registry.merge_hooks, "zz.fails", MergeHook(key="zz.fails", move=move, undo=undo))


def test_a_group_merge_whose_second_merge_fails_changes_nothing(trio, monkeypatch, users):
    from customers.dedupe.services import customer_merge_group

    survivor, first, second = trio
    _hook_failing_for(monkeypatch, step="move", customer_pk=second.pk)
    before = _state()
    with pytest.raises(RuntimeError):
        customer_merge_group(actor=users["manager"], survivor=survivor, others=[first, second])
    assert _state() == before


def test_a_group_undo_whose_second_undo_fails_changes_nothing(trio, monkeypatch, users):
    from customers.dedupe.services import customer_merge_group, customer_merge_group_undo

    survivor, first, second = trio
    # undone last first: `second` is undone, then `first` fails
    _hook_failing_for(monkeypatch, step="undo", customer_pk=first.pk)
    customer_merge_group(actor=users["manager"], survivor=survivor, others=[first, second])
    assert Order.objects.filter(customer=survivor).count() == 6
    before = _state()
    with pytest.raises(RuntimeError):
        customer_merge_group_undo(actor=users["manager"], survivor=survivor)
    assert _state() == before
    assert Customer.objects.get(pk=second.pk).merged_into_id == survivor.pk


# --- demo data ---------------------------------------------------------------------------------------


def test_demo_seeding_that_fails_part_way_writes_nothing(tenant, users):
    """The orders are loaded after the customers: refusing them leaves no customers behind."""
    import io
    import random

    import psycopg

    from customers import demo

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_orders() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'orders refused by the test trigger'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_orders BEFORE INSERT ON customers_order "
            "FOR EACH ROW EXECUTE FUNCTION refuse_orders()"
        )
    before = _state()
    with pytest.raises((DatabaseError, psycopg.Error)):  # COPY runs on psycopg's own cursor
        demo.seed(users=list(users.values()), customers=20, rng=random.Random(1), stdout=io.StringIO())
    assert _state() == before


# --- a tag created meanwhile ------------------------------------------------------------------------


def test_a_tag_created_meanwhile_by_another_request_is_used_and_the_caller_goes_on(
    committed_tenant, django_db_blocker
):
    """Another request creates the tag between this one's look-up and its insert: the insert waits for
    the other to commit, fails on the unique name, and the tag is read again; the caller's transaction
    is still usable (a savepoint held the failed insert)."""
    import threading

    from django.db import transaction
    from django_tenants.utils import tenant_context

    from customers.services import tag_get_or_create
    from tests.worker_kill import raw_connection, waiting_on_lock

    tenant = committed_tenant()
    with django_db_blocker.unblock():
        other = raw_connection()
        try:
            other.execute(f'SET search_path TO "{tenant.schema_name}"')
            other.execute(
                "INSERT INTO customers_tag (name, color, created_at) VALUES ('VIP', 'secondary', now())"
            )

            def commit_once_waited_on():
                deadline = time.monotonic() + 30
                while not waiting_on_lock('INSERT INTO "customers_tag"%') and time.monotonic() < deadline:
                    time.sleep(0.05)
                other.commit()

            committer = threading.Thread(target=commit_once_waited_on)
            committer.start()
            with tenant_context(tenant), transaction.atomic():
                tag = tag_get_or_create(name="vip")
                customer = Customer.objects.create(name="Goes on after the tag")
                customer.tags.add(tag)
            committer.join()
            with tenant_context(tenant):
                assert list(Tag.objects.values_list("name", flat=True)) == ["VIP"]
                assert list(Customer.objects.get(pk=customer.pk).tags.all()) == [tag]
        finally:
            other.close()
            connection.set_schema_to_public()
