"""Personal-data requests (issue 16, item 5): the export holds what every app keeps about the person;
the erasure leaves none of their personal values in any table of the tenant (searched column by
column, audit log and job records included), keeps their orders, is audited, is refused without the
typed confirmation or to non-admins, and touches no other tenant."""

import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.audit.models import AuditEvent
from crm.jobs.services import job_create
from customers.models import BehaviourEvent, Customer, Order, Refund
from customers.privacy.services import customer_erase, customer_personal_data_export
from customers.registry import registry
from customers.services import customer_create, customer_update
from loyalty.models import Member, PointsEntry
from loyalty.services import member_enrol, points_adjust
from segmentation.models import CustomerScore
from tests.factories import BehaviourEventFactory, OrderFactory, OrderLineFactory, RefundFactory

NAME = "Zhuo Erasewen 卓抹文"
EMAIL = "zhuo.erasewen.7731@example.com"
PHONE = "+8613900077310"
OLD_EMAIL = "zhuo.old.7731@example.com"
STREET = "77 Erasure Lane 3101"
EXTERNAL = "EXT-ERASE-7731"
SECOND_PHONE = "+8613900077399"  # kept by a merge as a secondary contact
PERSONAL = (NAME, EMAIL, PHONE, OLD_EMAIL, STREET, EXTERNAL, "13900077310", SECOND_PHONE)


def _person(admin_user) -> Customer:
    customer = customer_create(
        actor=admin_user,
        name=NAME,
        email=OLD_EMAIL,
        phone=PHONE,
        city="Shanghai",
        street=STREET,
        external_id=EXTERNAL,
        occupation="Teacher",
        email_consent=True,
    )
    customer_update(actor=admin_user, customer=customer, data={"email": EMAIL})  # history: old and new
    customer.refresh_from_db()
    from customers.dedupe.services import customer_merge

    twin = customer_create(actor=admin_user, name=NAME, phone=SECOND_PHONE)
    customer_merge(actor=admin_user, survivor=customer, merged=twin, keep_secondary=("phone",))
    Customer.objects.filter(pk=twin.pk).delete()  # (only the survivor is erased here)
    customer.refresh_from_db()
    order = OrderFactory(customer=customer, total=Decimal("250.00"), number="ERASE-ORDER-1")
    OrderLineFactory(order=order, product_name="Tea set")
    RefundFactory(order=order, amount=Decimal("20.00"), reason=f"{NAME} called: cup broken")
    BehaviourEventFactory(customer=customer, properties={"search": EMAIL, "path": "/account"})
    CustomerScore.objects.create(
        customer=customer,
        recency_days=5,
        frequency=1,
        monetary=Decimal("250.00"),
        stage_since=timezone.now(),
        computed_at=timezone.now(),
    )
    # A loyalty member whose number came from the old system (the external id) and an adjustment
    # whose reason a clerk typed with the person's name and phone.
    member = member_enrol(actor=admin_user, customer=customer)
    Member.objects.filter(pk=member.pk).update(number=EXTERNAL)
    points_adjust(actor=admin_user, member=member, points=300, reason=f"{NAME} {PHONE}: goodwill")
    # A survey answer whose comment repeats the name and phone (interactions.surveys).
    from interactions.surveys.models import SurveyTemplate
    from interactions.surveys.services import _invite, response_submit

    invitation = _invite(
        template=SurveyTemplate.objects.get(kind="nps"),
        customer=customer,
        source="bulk",
        source_key="bulk:p:1",
    )
    response_submit(invitation=invitation, score=8, comment=f"I am {NAME}, call me on {PHONE}")
    # An import job that kept the person's row as a sample.
    job_create(kind="customers.import", created_by=admin_user, params={"sample": [[NAME, EMAIL, PHONE]]})
    _interactions_followups_tickets(admin_user, customer)
    return customer


def _interactions_followups_tickets(admin_user, customer) -> None:
    """What the interactions app holds about the person: a call with notes and an attachment, a
    follow-up and its reminder, a ticket with a message and an attachment."""
    from crm.notifications.models import Notification
    from interactions.followups.models import FollowUp
    from interactions.service.models import Ticket, TicketAttachment, TicketMessage
    from interactions.services import interaction_log

    interaction_log(
        actor=admin_user,
        customer=customer,
        channel="phone",
        direction="out",
        occurred_at=timezone.now(),
        subject=f"Call with {NAME}",
        notes=f"Reached at {PHONE}; will write to {EMAIL}. Lives at {STREET}.",
        attachments=[SimpleUploadedFile("contract.pdf", b"%PDF-1.4 " + NAME.encode(), "application/pdf")],
    )
    followup = FollowUp.objects.create(
        customer=customer, assignee=admin_user, due_at=timezone.now(), title=f"Call {NAME} back", notes=EMAIL
    )
    Notification.objects.create(
        recipient=admin_user,
        kind="followup.due",
        key=f"followup:{followup.pk}:{followup.due_at.isoformat()}",
        title=f"Follow-up due: Call {NAME} back",
        body=f"Customer: {NAME}",
    )
    ticket = Ticket.objects.create(
        customer=customer,
        subject=f"Broken cup for {NAME}",
        description=f"Ship to {STREET}",
        requester_email=EMAIL,
        requester_phone=PHONE,
    )
    TicketMessage.objects.create(ticket=ticket, kind="customer", body=f"This is {NAME}, call {PHONE}")
    attachment = TicketAttachment(ticket=ticket, original_name="photo.png", size=3, content_type="image/png")
    attachment.file.save("photo.png", ContentFile(NAME.encode()), save=True)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _files(root) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _personal_values_left(values) -> list[str]:
    """Every (table.column) of the current tenant schema where one of the values still appears."""
    schema = connection.schema_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND data_type IN ('text', 'character varying', 'json', 'jsonb')",
            [schema],
        )
        columns = cursor.fetchall()
        found = []
        for table, column, _type in columns:
            for value in values:
                cursor.execute(
                    f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}"::text ILIKE %s',
                    [f"%{value}%"],
                )
                if cursor.fetchone()[0]:
                    found.append(f"{table}.{column}: {value}")
    return found


def test_every_app_registers_what_it_holds():
    assert {"customers", "segmentation", "loyalty", "interactions", "followups", "service", "surveys"} <= set(
        registry.personal_data
    )


def test_the_export_holds_interactions_follow_ups_and_tickets(admin_user):
    customer = _person(admin_user)
    sections = customer_personal_data_export(actor=admin_user, customer=customer)["sections"]
    json.dumps([sections[key] for key in ("interactions", "followups", "service")])  # JSON-safe
    assert sections["interactions"]["data"][0]["subject"] == f"Call with {NAME}"
    assert sections["interactions"]["data"][0]["attachments"] == ["contract.pdf"]
    assert sections["followups"]["data"][0]["title"] == f"Call {NAME} back"
    ticket = sections["service"]["data"][0]
    assert ticket["requester_email"] == EMAIL and ticket["messages"][0]["body"].startswith(f"This is {NAME}")
    assert ticket["attachments"] == ["photo.png"]


def test_erasure_deletes_attachment_files_job_files_that_name_the_person_and_cached_duplicate_scans(
    admin_user, _media, django_capture_on_commit_callbacks
):
    """Issue 16 "files and caches": files on disk and Redis entries that hold the person go too."""
    import openpyxl

    from customers.dedupe.cache import remember_scan
    from interactions.models import InteractionAttachment
    from interactions.service.models import TicketAttachment

    customer = _person(admin_user)
    upload = job_create(
        kind="customers.import",
        created_by=admin_user,
        input_file=SimpleUploadedFile("people.csv", f"name,phone\n{NAME},{PHONE}\n".encode("gb18030")),
    )
    workbook = openpyxl.Workbook()
    workbook.active.append(["name", "email"])
    workbook.active.append(["Someone", EMAIL])
    buffer = io.BytesIO()
    workbook.save(buffer)
    export = job_create(kind="customers.export", created_by=admin_user)
    export.output_file.save("export.xlsx", ContentFile(buffer.getvalue()), save=True)
    other = job_create(
        kind="customers.import",
        created_by=admin_user,
        input_file=SimpleUploadedFile("others.csv", b"name\nLi Lei\n"),
    )
    remember_scan(f"customers:duplicates:{connection.schema_name}:all:abc", {"pairs": [[NAME, EMAIL]]}, 600)
    remember_scan(f"customers:duplicates:{connection.schema_name}:all:latest", {"pairs": [[NAME]]}, 600)
    person_files = [
        Path(a.file.path) for a in [*InteractionAttachment.objects.all(), *TicketAttachment.objects.all()]
    ]
    person_files += [Path(upload.input_file.path), Path(export.output_file.path)]
    assert all(path.exists() for path in person_files)

    with django_capture_on_commit_callbacks(execute=True):
        summary = customer_erase(actor=admin_user, customer=customer, confirmation="ERASE")
    assert not any(path.exists() for path in person_files), [p for p in person_files if p.exists()]
    assert Path(other.input_file.path).exists()  # a file about someone else stays
    assert summary["job_files_deleted"] == 2 and summary["duplicate_scans_forgotten"] == 2
    assert cache.get(f"customers:duplicates:{connection.schema_name}:all:abc") is None
    assert cache.get(f"customers:duplicates:{connection.schema_name}:all:latest") is None
    upload.refresh_from_db()
    assert not upload.input_file and upload.result["files_erased"]
    assert summary["interactions"]["attachments_deleted"] == 1
    assert summary["service"]["attachments_deleted"] == 1


def test_the_export_holds_the_person_from_every_app_and_is_audited(admin_user):
    customer = _person(admin_user)
    document = customer_personal_data_export(actor=admin_user, customer=customer)
    sections = document["sections"]
    profile = sections["customers"]["data"]["profile"]
    assert (profile["name"], profile["email"], profile["phone"], profile["street"]) == (
        NAME,
        EMAIL,
        PHONE,
        STREET,
    )
    orders = sections["customers"]["data"]["orders"]
    assert orders[0]["number"] == "ERASE-ORDER-1" and orders[0]["lines"][0]["product"] == "Tea set"
    assert sections["customers"]["data"]["events"][0]["properties"]["search"] == EMAIL
    assert sections["segmentation"]["data"]["score"]["recency_days"] == 5
    loyalty = sections["loyalty"]["data"]
    assert loyalty["member"]["number"] == EXTERNAL and loyalty["member"]["balance"] == 300
    assert loyalty["entries"][-1]["reason"] == f"{NAME} {PHONE}: goodwill"
    assert sections["surveys"]["data"]["responses"][0]["comment"] == f"I am {NAME}, call me on {PHONE}"
    assert AuditEvent.objects.filter(
        action="customer.personal_data_exported", target_id=str(customer.pk)
    ).exists()


def test_the_export_downloads_as_json_for_admins(admin_client, admin_user):
    customer = _person(admin_user)
    response = admin_client.post(f"/customers/{customer.pk}/privacy/export/")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith(
        f'attachment; filename="customer-{customer.pk}-personal-data-'
    )
    document = json.loads(response.content.decode("utf-8"))
    assert document["sections"]["customers"]["data"]["profile"]["name"] == NAME


def test_erasure_leaves_no_personal_value_in_any_table_and_keeps_the_orders(admin_user, tenant_b):
    customer = _person(admin_user)
    assert len(_personal_values_left(PERSONAL)) >= 8  # the scan finds them before (it can fail)
    with schema_context(tenant_b.schema_name):
        twin = Customer.objects.create(name=NAME, email=EMAIL, phone=PHONE)
    summary = customer_erase(actor=admin_user, customer=customer, confirmation="ERASE")
    assert _personal_values_left(PERSONAL) == []
    customer.refresh_from_db()
    assert customer.name == f"Erased customer {customer.pk}" and customer.email == "" and customer.phone == ""
    assert not customer.email_consent and customer.custom_fields == {}
    order = Order.objects.get(customer=customer)
    assert order.total == Decimal("250.00") and order.lines.count() == 1
    assert Refund.objects.get(order=order).amount == Decimal("20.00")
    assert not BehaviourEvent.objects.filter(customer=customer).exists()
    assert summary["customers"]["orders_kept"] == 1 and summary["audit_events_redacted"] >= 2
    assert summary["jobs_redacted"] == 1
    # Loyalty keeps the points and the ledger, not the typed reason nor the imported number.
    member = Member.objects.get(customer=customer)
    assert member.balance == 300 and member.number == f"M{customer.pk:08d}"
    assert PointsEntry.objects.get(member=member, kind="adjust").points == 300
    assert summary["loyalty"]["reasons_blanked"] == 1 and summary["loyalty"]["number_reset"]
    erased = AuditEvent.objects.get(action="customer.erased", target_id=str(customer.pk))
    assert NAME not in json.dumps(erased.changes, ensure_ascii=False)
    # The other tenant's customer of the same name is theirs, untouched.
    with schema_context(tenant_b.schema_name):
        twin.refresh_from_db()
        assert (twin.name, twin.email, twin.phone) == (NAME, EMAIL, PHONE)


def test_erasure_needs_the_typed_word_and_an_admin_and_writes_nothing_otherwise(admin_user, manager_user):
    customer = _person(admin_user)
    with pytest.raises(ValidationError):
        customer_erase(actor=admin_user, customer=customer, confirmation="erase please")
    with pytest.raises(PermissionDenied):
        customer_erase(actor=manager_user, customer=customer, confirmation="ERASE")
    customer.refresh_from_db()
    assert customer.name == NAME and customer.email == EMAIL
    assert not AuditEvent.objects.filter(action="customer.erased").exists()


def test_the_erase_form_says_what_to_type_and_erases_once_confirmed(admin_client, admin_user):
    customer = _person(admin_user)
    response = admin_client.post(f"/customers/{customer.pk}/privacy/erase/", {"confirmation": "yes"})
    assert response.status_code == 200
    assert "Type ERASE to confirm the erasure." in response.content.decode()
    customer.refresh_from_db()
    assert customer.name == NAME
    response = admin_client.post(f"/customers/{customer.pk}/privacy/erase/", {"confirmation": "ERASE"})
    assert response.status_code == 302 and response["Location"] == f"/customers/{customer.pk}/"
    customer.refresh_from_db()
    assert customer.name == f"Erased customer {customer.pk}"
    page = admin_client.get(f"/customers/{customer.pk}/").content.decode()
    assert NAME not in page and EMAIL not in page
