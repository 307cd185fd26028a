"""Import of historical interactions (an import kind of customers.imports.kinds): matching, row errors
with row and column at the preview, a confirm step, nothing half-written, a redelivery writes nothing
twice."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from crm.accounts.models import User
from crm.audit.models import AuditEvent
from crm.jobs.models import BackgroundJob
from customers.imports import kinds
from interactions import imports
from interactions.models import Interaction, InteractionOutcome
from tests.factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _upload(actor, text: str, name: str = "history.csv"):
    return imports.import_upload(actor=actor, uploaded_file=SimpleUploadedFile(name, text.encode("utf-8")))


def _check(actor, job):
    """Map and check: the preview (the task body runs in this process)."""
    job = imports.import_start(actor=actor, job=job, mapping=job.params["mapping"])
    kinds.kind_check(job_id=job.pk)
    job.refresh_from_db()
    return job


def _run(actor, job):
    job = _check(actor, job)
    assert job.params["stage"] == "preview", job.result
    if job.result["preview"]["error_count"]:
        return job
    assert not Interaction.objects.exists()  # the preview writes nothing
    job = imports.import_confirm(actor=actor, job=job)
    kinds.kind_write(job_id=job.pk)
    job.refresh_from_db()
    return job


def test_rows_are_matched_by_crm_id_email_or_phone_and_written(manager_user, sales_user):
    by_id = CustomerFactory(owner=sales_user)
    by_email = CustomerFactory(owner=sales_user, email="mei@example.cn")
    by_phone = CustomerFactory(owner=sales_user, phone="+8613800138000", email="")
    order = OrderFactory(customer=by_id, number="SO-7")
    day = (timezone.localdate() - timedelta(days=30)).isoformat()
    job = _upload(
        manager_user,
        "客户编号,邮箱,手机,日期,渠道,方向,时长,主题,结果,记录人,订单号\n"
        f"{by_id.pk},,,{day} 10:30,phone,out,12,Quarterly call,Interested,{sales_user.email},SO-7\n"
        f",MEI@example.cn,,{day} 11:00,微信,呼入,,问尺码,有兴趣,,\n"
        f",,138 0013 8000,{day},Store visit,in,,'=1+1,,,\n",
    )
    assert job.params["mapping"] == [
        "customer_id",
        "customer_email",
        "customer_phone",
        "occurred_at",
        "channel",
        "direction",
        "duration_minutes",
        "subject",
        "outcome",
        "author",
        "order",
    ]
    job = _run(manager_user, job)
    assert job.params["stage"] == "done", job.result
    rows = {i.customer_id: i for i in Interaction.objects.all()}
    assert set(rows) == {by_id.pk, by_email.pk, by_phone.pk}
    first = rows[by_id.pk]
    assert (first.channel, first.direction, first.duration_minutes, first.author, first.order) == (
        "phone",
        "out",
        12,
        sales_user,
        order,
    )
    zone = ZoneInfo(connection.tenant.time_zone)
    assert first.occurred_at.astimezone(zone).strftime("%H:%M") == "10:30"  # read in the tenant's time zone
    interested = InteractionOutcome.objects.get(key="interested")
    assert rows[by_email.pk].channel == "wechat" and rows[by_email.pk].outcome == interested
    assert rows[by_email.pk].direction == "in" and rows[by_email.pk].author == manager_user
    assert rows[by_phone.pk].subject == "=1+1"  # the export's formula escape is taken off
    assert AuditEvent.objects.filter(action="interactions.imported", target_id=str(job.pk)).exists()


def test_malformed_rows_are_reported_with_row_and_column_and_nothing_is_written(manager_user, sales_user):
    customer = CustomerFactory(owner=sales_user, email="ok@example.com")
    CustomerFactory(email="twice@example.com")
    CustomerFactory(email="twice@example.com")
    future = (timezone.localdate() + timedelta(days=3)).isoformat()
    job = _upload(
        manager_user,
        "email,date,channel,direction,outcome\n"
        "ok@example.com,2025-01-02 09:00,phone,out,\n"  # a good row: not written either
        "ok@example.com,2025-01-02,fax,out,\n"
        f"ok@example.com,{future},phone,out,\n"
        "nobody@example.com,2025-01-02,phone,out,\n"
        "twice@example.com,2025-01-02,phone,out,\n"
        "ok@example.com,yesterday,phone,sideways,Bought a boat\n",
    )
    job = _run(manager_user, job)
    assert job.params["stage"] == "preview"
    with pytest.raises(ValidationError):  # no confirm while a row has a problem
        imports.import_confirm(actor=manager_user, job=job)
    problems = {(e["row"], e["column"]) for e in job.result["preview"]["errors"]}
    assert problems == {
        (3, "channel"),
        (4, "date"),
        (5, "email"),
        (6, "email"),
        (7, "date"),
        (7, "direction"),
        (7, "outcome"),
    }
    assert not Interaction.objects.exists()
    assert customer.interactions.count() == 0


def test_the_mapping_needs_a_customer_column_a_date_and_a_channel(manager_user):
    job = _upload(manager_user, "note,date\nhello,2025-01-01\n")
    with pytest.raises(ValidationError) as raised:
        imports.import_start(actor=manager_user, job=job, mapping=["notes", "occurred_at"])
    messages = " ".join(raised.value.messages)
    assert "Channel" in messages and "CRM id, e-mail or phone" in messages
    assert BackgroundJob.objects.get(pk=job.pk).params["stage"] == "mapping"


def test_unreadable_files_are_refused_at_upload_and_sales_cannot_import(manager_user, sales_user):
    with pytest.raises(ValidationError):
        _upload(manager_user, "")
    with pytest.raises(PermissionDenied):
        _upload(sales_user, "email,date,channel\n")


def test_import_pages(manager_client, manager_user, sales_user):
    CustomerFactory(owner=sales_user, email="page@example.com")
    response = manager_client.post(
        reverse("interactions:import"),
        {"file": SimpleUploadedFile("h.csv", b"email,date,channel\npage@example.com,2025-03-01,sms\n")},
    )
    job = BackgroundJob.objects.get(kind="interactions.import")
    assert response["Location"] == reverse("interactions:import_job", args=[job.pk])
    page = manager_client.get(response["Location"]).content.decode()
    assert 'id="interaction-import-mapping"' in page and "page@example.com" in page
    response = manager_client.post(
        reverse("interactions:import_job", args=[job.pk]),
        {"col_0": "customer_email", "col_1": "occurred_at", "col_2": "channel"},
    )
    assert response.status_code == 302
    kinds.kind_check(job_id=job.pk)
    page = manager_client.get(reverse("interactions:import_job", args=[job.pk])).content.decode()
    assert 'id="interaction-import-preview"' in page and "1 row is ready to import" in page
    assert not Interaction.objects.exists()
    response = manager_client.post(reverse("interactions:import_job", args=[job.pk]))
    assert response.status_code == 302
    kinds.kind_write(job_id=job.pk)
    page = manager_client.get(reverse("interactions:import_job", args=[job.pk])).content.decode()
    assert "1 interactions imported." in page
    assert User.objects.get(pk=manager_user.pk)
    assert Interaction.objects.get().channel == "sms"


def test_an_export_file_maps_back_onto_the_import_fields():
    from interactions.exports import export_header

    mapping = dict(zip(export_header(), imports.guess_mapping(export_header()), strict=True))
    assert mapping == {
        "ID": "",
        "Customer ID": "customer_id",
        "Customer": "",
        "When": "occurred_at",
        "Channel": "channel",
        "Direction": "direction",
        "Duration (minutes)": "duration_minutes",
        "Subject": "subject",
        "Notes": "notes",
        "Outcome": "outcome",
        "Author (user email)": "author",
        "Order": "order",
    }


def test_a_redelivered_write_writes_nothing_twice_and_a_changed_customer_goes_back_to_the_preview(
    manager_user, sales_user
):
    customer = CustomerFactory(owner=sales_user, email="again@example.com")
    job = _run(manager_user, _upload(manager_user, "email,date,channel\nagain@example.com,2025-01-02,sms\n"))
    assert job.params["stage"] == "done" and Interaction.objects.count() == 1
    kinds.kind_write(job_id=job.pk)  # the same message delivered again
    assert Interaction.objects.count() == 1
    # Between the preview and the confirm the customer went to the bin: checked again, nothing written.
    job = _check(
        manager_user, _upload(manager_user, "email,date,channel\nagain@example.com,2025-01-03,sms\n")
    )
    job = imports.import_confirm(actor=manager_user, job=job)
    customer.deleted_at = timezone.now()
    customer.save(update_fields=["deleted_at"])
    kinds.kind_write(job_id=job.pk)
    job.refresh_from_db()
    assert job.params["stage"] == "preview" and job.result["preview"]["error_count"] == 1
    assert Interaction.objects.count() == 1
