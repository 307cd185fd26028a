"""`customers.signals.customers_changed`: sent once a change commits (never for a rolled-back one),
with the reason and the customers concerned; segmentation follows it to queue its recompute after an
import, as it did when the import called segmentation itself."""

from types import SimpleNamespace

import pytest
from django.db import transaction

from crm.jobs.models import BackgroundJob
from customers.dedupe.services import customer_merge, customer_merge_undo
from customers.models import Customer
from customers.services import customer_delete, customer_restore, order_refund
from customers.signals import customers_changed
from segmentation.services import RECOMPUTE_JOB_KIND
from tests.customers.test_import_services import GOOD, run_import
from tests.factories import CustomerFactory, OrderFactory


@pytest.fixture
def received():
    calls = []

    def receiver(sender, **kwargs):
        calls.append(kwargs)

    customers_changed.connect(receiver, dispatch_uid="tests.received")
    yield calls
    customers_changed.disconnect(dispatch_uid="tests.received")


@pytest.fixture
def sent_tasks(monkeypatch):
    from celery.app.task import Task

    sent = []

    def record(task, args=None, kwargs=None, **options):
        sent.append((task.name, kwargs))
        return SimpleNamespace(id="")

    monkeypatch.setattr(Task, "apply_async", record)  # nothing reaches a broker
    return sent


def test_an_import_that_wrote_rows_queues_the_segment_recompute(
    tenant, manager_user, received, sent_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = run_import(manager_user, GOOD)
    assert job.status == BackgroundJob.Status.SUCCEEDED
    assert [c["reason"] for c in received] == ["import"]
    assert received[0]["actor"] == manager_user
    # The customers the import wrote travel with the signal (loyalty earns for them only).
    assert received[0]["customer_ids"] == sorted(Customer.objects.values_list("pk", flat=True))
    recompute = BackgroundJob.objects.get(kind=RECOMPUTE_JOB_KIND)
    assert recompute.params == {"trigger": "import"} and recompute.created_by == manager_user
    assert ("segmentation.tasks.recompute_task", {"job_id": recompute.pk, "trigger": "import"}) in sent_tasks


def test_nothing_is_sent_before_the_change_commits(tenant, manager_user, received):
    customer = CustomerFactory(owner=manager_user)
    customer_delete(actor=manager_user, customer=customer)  # the test's transaction never commits
    assert received == []


def test_merge_undo_orders_and_the_bin_are_announced_but_wait_for_the_nightly_recompute(
    tenant, manager_user, received, sent_tasks, django_capture_on_commit_callbacks
):
    survivor, merged = CustomerFactory(owner=manager_user), CustomerFactory(owner=manager_user)
    order = OrderFactory(customer=survivor)
    with django_capture_on_commit_callbacks(execute=True):
        customer_merge(actor=manager_user, survivor=survivor, merged=merged)
        merged.refresh_from_db()
        customer_merge_undo(actor=manager_user, merged=merged)
        order_refund(actor=manager_user, order=order, amount=order.total)
        customer_delete(actor=manager_user, customer=survivor)
        customer_restore(actor=manager_user, customer=survivor)
    pair = sorted([survivor.pk, merged.pk])
    assert [(c["reason"], c["customer_ids"]) for c in received] == [
        ("merge", pair),
        ("merge_undone", pair),
        ("orders", [survivor.pk]),
        ("deleted", [survivor.pk]),
        ("restored", [survivor.pk]),
    ]
    assert not BackgroundJob.objects.filter(kind=RECOMPUTE_JOB_KIND).exists()


def test_a_failing_receiver_neither_undoes_nor_fails_the_change(
    tenant, manager_user, received, django_capture_on_commit_callbacks, caplog
):
    def broken(sender, **kwargs):
        raise RuntimeError("receiver broke")

    customers_changed.connect(broken, dispatch_uid="tests.broken")
    try:
        customer = CustomerFactory(owner=manager_user)
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            customer_delete(actor=manager_user, customer=customer)
    finally:
        customers_changed.disconnect(dispatch_uid="tests.broken")
    customer.refresh_from_db()
    assert customer.deleted_at is not None and [c["reason"] for c in received] == ["deleted"]
    assert "receiver broke" in caplog.text
