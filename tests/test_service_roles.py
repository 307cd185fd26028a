"""The role checks inside the services, behind the views' own: a service called by a user whose role
may not do it refuses (PermissionDenied, or the field error) and writes nothing."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from customers import services as customers
from customers.dedupe import services as dedupe
from customers.exports import services as exports
from customers.imports import services as imports
from customers.models import Customer, CustomFieldDefinition
from segmentation import services as segmentation
from segmentation.models import ChurnAlert, Segment
from tests.factories import CustomerFactory, OrderFactory
from tests.test_audit_fault import _state

RULES = {"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Shanghai"}]}


@pytest.fixture
def w(tenant, users, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    own = CustomerFactory(owner=users["sales"])
    shared = CustomerFactory(owner=users["sales2"], shared_with=[users["sales"]])
    binned_shared = CustomerFactory(owner=users["sales2"], shared_with=[users["sales"]])
    Customer.objects.filter(pk=binned_shared.pk).update(deleted_at=own.created_at)
    binned_shared.refresh_from_db()
    # another rep's customers, merged by the manager
    survivor, merged = CustomerFactory.create_batch(2, owner=users["sales2"], name="Twin Other")
    dedupe.customer_merge(actor=users["manager"], survivor=survivor, merged=merged)
    merged.refresh_from_db()
    return {
        "others_merged": merged,
        "others_pair": CustomerFactory.create_batch(2, owner=users["sales2"], name="Pair Other"),
        **users,
        "own": own,
        "shared": shared,
        "binned_shared": binned_shared,
        "order": OrderFactory(customer=own, total=Decimal("50.00")),
        "field": CustomFieldDefinition.objects.create(key="tier", label="Tier", field_type="text"),
        "segment": Segment.objects.create(name="Team list", rules=RULES, created_by=users["sales"]),
        "alert": ChurnAlert.objects.create(customer=own, owner=users["sales"], reason="entered_at_risk"),
    }


def _csv():
    return SimpleUploadedFile("c.csv", b"name\nAnn\n", content_type="text/csv")


def _deactivated(user):
    user.is_active = False  # as a session or task still holding the account would see it
    return user


REFUSED = {
    "customer_share by sales": lambda w: customers.customer_share(
        actor=w["sales"], customer=w["own"], users=[]
    ),
    "bulk assign by sales": lambda w: customers.customers_bulk_assign_owner(
        actor=w["sales"], customer_ids=[w["own"].pk], owner=w["sales2"]
    ),
    "bulk delete by sales": lambda w: customers.customers_bulk_delete(
        actor=w["sales"], customer_ids=[w["own"].pk]
    ),
    "delete a shared customer": lambda w: customers.customer_delete(actor=w["sales"], customer=w["shared"]),
    "restore a shared customer": lambda w: customers.customer_restore(
        actor=w["sales"], customer=w["binned_shared"]
    ),
    "custom field by a manager": lambda w: customers.custom_field_create(
        actor=w["manager"], key="size", label="Size", field_type="text"
    ),
    "custom field move by a manager": lambda w: customers.custom_field_move(
        actor=w["manager"], definition=w["field"], direction="up"
    ),
    # roles are read with the account's state: a deactivated owner no longer deletes
    "delete by a deactivated owner": lambda w: customers.customer_delete(
        actor=_deactivated(w["sales"]), customer=w["own"]
    ),
    "custom field change by a manager": lambda w: customers.custom_field_update(
        actor=w["manager"], definition=w["field"], data={"label": "Level"}
    ),
    "owner change by sales": lambda w: customers.customer_update(
        actor=w["sales"], customer=w["own"], data={"owner": w["sales2"]}
    ),
    "export of all data by sales": lambda w: exports.export_all_start(actor=w["sales"]),
    "import by sales": lambda w: imports.import_upload(actor=w["sales"], uploaded_file=_csv()),
    "segment change by another rep": lambda w: segmentation.segment_update(
        actor=w["sales2"], segment=w["segment"], name="Mine now", rules=RULES
    ),
    "segment delete by another rep": lambda w: segmentation.segment_delete(
        actor=w["sales2"], segment=w["segment"]
    ),
    "alerts given to someone by sales": lambda w: segmentation.alert_assign_many(
        actor=w["sales"], alerts=[w["alert"]], owner=w["sales2"]
    ),
    "alert handled by another rep": lambda w: segmentation.alert_dismiss(actor=w["sales2"], alert=w["alert"]),
    "merge of another rep's customers by sales": lambda w: dedupe.customer_merge(
        actor=w["sales"], survivor=w["others_pair"][0], merged=w["others_pair"][1]
    ),
    "undo of another rep's merge by sales": lambda w: dedupe.customer_merge_undo(
        actor=w["sales"], merged=w["others_merged"]
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_service_refuses_a_role_that_may_not_use_it(case, w):
    before = _state()
    with pytest.raises((PermissionDenied, ValidationError)):
        REFUSED[case](w)
    assert _state() == before


def test_another_reps_alerts_are_left_alone_in_a_bulk_acknowledge(w):
    before = _state()
    assert segmentation.alert_acknowledge_many(actor=w["sales2"], alerts=[w["alert"]]) == 0
    assert _state() == before
    assert segmentation.alert_acknowledge_many(actor=w["manager"], alerts=[w["alert"]]) == 1


def test_a_customer_created_by_sales_is_theirs_whatever_owner_they_name(w):
    customer = customers.customer_create(actor=w["sales"], name="Walk-in", owner=w["sales2"])
    assert customer.owner == w["sales"]
    assert (
        customers.customer_create(actor=w["manager"], name="Assigned", owner=w["sales2"]).owner == w["sales2"]
    )
