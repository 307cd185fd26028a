"""Opening balances imported from another loyalty system (issue 12): matched by member number or by the
customer's normalised e-mail or phone, checked into a preview, written all or nothing after the
confirmation, never twice for the same file, refused with row and column for bad rows; the ledger
still sums to every balance and the reports keep opening balances apart from points earned."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.audit.models import AuditEvent
from crm.jobs.models import BackgroundJob
from loyalty import imports, reports
from loyalty.models import Member, PointsEntry, Tier, TierChange
from loyalty.services import member_balances_check, member_enrol
from tests.factories import CustomerFactory

from .conftest import member_with_balance


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _upload(actor, text: str, name: str = "opening.csv"):
    return imports.import_upload(actor=actor, uploaded_file=SimpleUploadedFile(name, text.encode("utf-8")))


def _check(actor, job):
    job = imports.import_start(actor=actor, job=job, mapping=job.params["mapping"])
    imports.import_run(job_id=job.pk)  # the task body, in this process
    job.refresh_from_db()
    return job


def _confirm(actor, job):
    job = imports.import_confirm(actor=actor, job=job)
    imports.import_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def _in_a_year() -> str:
    return (timezone.localdate() + timedelta(days=365)).isoformat()


@pytest.fixture
def people(programme, sales_user):
    by_number = member_with_balance(50, owner=sales_user, name="By Number")
    by_email = CustomerFactory(email="li.na@example.com", name="By Email")
    by_phone = CustomerFactory(phone="+8613900003333", name="By Phone")
    return {"number": by_number, "email": by_email, "phone": by_phone}


def _file(people) -> str:
    return (
        "会员号,邮箱,手机,积分,到期日,会员等级,新会员号\n"
        f"{people['number'].number.lower()},,,1200,{_in_a_year()},金卡,\n"
        ",LI.NA@Example.com ,,300,,,OLD-0042\n"
        ",,139 0000 3333,0,,银卡,\n"
    )


def test_rows_are_matched_previewed_then_written_and_the_ledger_balances(people, manager_user):
    job = _upload(manager_user, _file(people))
    assert job.params["mapping"] == [
        "member_number", "customer_email", "customer_phone", "points", "expires_on", "tier", "new_number",
    ]  # fmt: skip
    job = _check(manager_user, job)
    assert job.params["stage"] == "preview", job.result
    preview = job.result["preview"]
    assert (preview["new_members"], preview["existing_members"], preview["points"]) == (2, 1, 1500)
    assert (preview["tiers"], preview["numbers"], preview["already_imported"]) == (2, 1, 0)
    assert not PointsEntry.objects.filter(kind="opening").exists()  # the preview writes nothing

    job = _confirm(manager_user, job)
    assert job.params["stage"] == "done" and job.result["written"]["entries"] == 2
    number = Member.objects.get(pk=people["number"].pk)
    assert number.balance == 1250 and number.tier.name == "金卡"
    lot = PointsEntry.objects.get(member=number, kind="opening")
    assert (lot.points, lot.remaining, lot.source, lot.expires_on.isoformat()) == (
        1200,
        1200,
        "import",
        _in_a_year(),
    )
    assert TierChange.objects.filter(member=number, reason="import", to_tier__name="金卡").exists()
    emailed = Member.objects.get(customer=people["email"])
    assert (emailed.number, emailed.balance) == ("OLD-0042", 300)
    assert PointsEntry.objects.get(member=emailed).expires_on is not None  # the programme's rule
    phoned = Member.objects.get(customer=people["phone"])
    assert phoned.balance == 0 and phoned.tier.name == "银卡"  # enrolled, tier set, no zero entry
    assert not PointsEntry.objects.filter(member=phoned).exists()  # and no sign-up bonus either
    assert member_balances_check() == []
    assert AuditEvent.objects.filter(action="loyalty.opening_imported").exists()
    # The reports show them apart: not earned, not in the redemption rate.
    report = reports.loyalty_report(user=manager_user)
    assert report.flows[-1].opening == 1500 and report.earned == 0


def test_the_same_file_again_writes_nothing_twice(people, manager_user):
    _confirm(manager_user, _check(manager_user, _upload(manager_user, _file(people))))
    before = list(PointsEntry.objects.order_by("pk").values_list("pk", "points"))
    again = _check(manager_user, _upload(manager_user, _file(people), name="again.csv"))
    # Two rows wrote entries; the zero-point row wrote none and finds nothing left to do.
    assert again.result["preview"]["already_imported"] == 2 and again.result["preview"]["points"] == 0
    again = _confirm(manager_user, again)
    assert again.params["stage"] == "done" and again.result["written"]["entries"] == 0
    assert "Nothing new to import" in again.message
    assert list(PointsEntry.objects.order_by("pk").values_list("pk", "points")) == before
    assert Member.objects.get(pk=people["number"].pk).balance == 1250
    # A different file for a member who already has an opening balance is refused at the row.
    other = _check(manager_user, _upload(manager_user, f"会员号,积分\n{people['number'].number},999\n"))
    assert other.params["stage"] == "refused"
    assert (
        other.result["errors"][0]["message"]
        == "This member already has an opening balance from another file."
    )


def test_bad_rows_are_refused_with_row_and_column_and_nothing_is_written(people, manager_user, sales_user):
    hidden = CustomerFactory(email="gone@example.com")
    hidden.deleted_at = timezone.now()
    hidden.save(update_fields=["deleted_at"])
    taken = member_with_balance(0, owner=sales_user)
    Member.objects.filter(pk=taken.pk).update(number="TAKEN-1")
    text = (
        "member number,email,phone,points,expires,tier,new member number\n"
        "M99999999,,,10,,,\n"  # 2: unknown member number
        ",nobody@example.com,,10,,,\n"  # 3: unknown e-mail
        ",gone@example.com,,10,,,\n"  # 4: a customer in the recycle bin
        ",,12345,10,,,\n"  # 5: not a phone number
        ",li.na@example.com,,-5,,,\n"  # 6: negative points
        ",,13900003333,1234567890123,,,\n"  # 7: too many digits
        f"{people['number'].number},,,1.5,,,\n"  # 8: not whole
        ",li.na@example.com,,10,2020-01-01,,\n"  # 9: expiry passed (and the same member as row 6)
        ",,13900003333,10,2026-02-30,,\n"  # 10: not a date (and the same member as row 7)
        f"{people['number'].number},,,10,,Platinum,\n"  # 11: unknown tier (and the member of row 8)
        ",,,10,,,\n"  # 12: nobody named
        f"{people['number'].number},,,10,,,TAKEN-1\n"  # 13: number of another member
        f"{people['number'].number},,,10,,,M00000000\n"  # 14: the CRM's own kind of number
    )
    job = _check(manager_user, _upload(manager_user, text))
    assert job.params["stage"] == "refused"
    errors = {(e["row"], e["column"]): e["message"] for e in job.result["errors"]}
    assert errors[(2, "member number")] == "No member has the number “M99999999”."
    assert errors[(3, "email")] == "No customer has this e-mail."
    assert errors[(4, "email")] == "No customer has this e-mail."
    assert errors[(5, "phone")] == "“12345” is not a valid phone number."
    assert errors[(6, "points")] == "Points cannot be negative."
    assert errors[(7, "points")] == "Enter a whole number of points."  # more than 12 digits
    assert errors[(8, "points")] == "Enter a whole number of points."
    assert errors[(9, "expires")] == "This date has passed; the points would expire at once."
    assert errors[(9, "email")] == "This member is already in row 6 of the file."
    assert errors[(10, "expires")] == "“2026-02-30” is not a valid date."
    assert errors[(11, "tier")] == "“Platinum” is not one of the tiers."
    assert errors[(12, "member number")] == "Give the member number, or the customer's e-mail or phone."
    assert errors[(13, "new member number")] == "Another member has the number “TAKEN-1”."
    assert errors[(14, "new member number")] == "Numbers like M00001234 are the CRM's own; choose another."
    assert "nothing was imported" in job.message
    assert not PointsEntry.objects.filter(kind="opening").exists()
    assert not Member.objects.filter(customer=people["email"]).exists()
    oversize = _check(
        manager_user, _upload(manager_user, f"会员号,积分\n{people['number'].number},10000001\n")
    )
    assert oversize.result["errors"][0]["message"] == "At most 10,000,000 points."


def test_all_or_nothing_when_the_data_changed_between_preview_and_confirm(people, manager_user):
    job = _check(manager_user, _upload(manager_user, _file(people)))
    assert job.params["stage"] == "preview"
    Tier.objects.filter(name="金卡").update(name="Gold")  # row 2's tier is gone by the confirmation
    job = _confirm(manager_user, job)
    assert job.params["stage"] == "refused" and job.result["errors"][0]["row"] == 2
    assert not PointsEntry.objects.filter(kind="opening").exists()
    assert not Member.objects.filter(customer__in=[people["email"], people["phone"]]).exists()
    assert Member.objects.get(pk=people["number"].pk).balance == 50


def test_the_mapping_needs_points_and_a_member_column_and_sales_cannot_import(
    people, manager_user, sales_user
):
    job = _upload(manager_user, _file(people))
    with pytest.raises(ValidationError):
        imports.import_start(actor=manager_user, job=job, mapping=["member_number", "", "", "", "", "", ""])
    with pytest.raises(ValidationError):
        imports.import_start(actor=manager_user, job=job, mapping=["", "", "", "points", "", "", ""])
    with pytest.raises(PermissionDenied):
        _upload(sales_user, _file(people))
    with pytest.raises(ValidationError):
        _upload(manager_user, "")
    with pytest.raises(ValidationError):  # the preview comes first
        imports.import_confirm(actor=manager_user, job=job)


def test_import_pages_preview_and_confirm(people, manager_client, manager_user, sales_client):
    assert sales_client.get(reverse("loyalty:opening_import")).status_code == 403
    response = manager_client.post(
        reverse("loyalty:opening_import"), {"file": SimpleUploadedFile("o.csv", _file(people).encode())}
    )
    job = BackgroundJob.objects.get(kind=imports.JOB_KIND)
    url = reverse("loyalty:opening_import_job", args=[job.pk])
    assert response["Location"] == url
    assert 'id="opening-import-mapping"' in manager_client.get(url).content.decode()
    mapping = {f"col_{i}": key for i, key in enumerate(job.params["mapping"])}
    assert manager_client.post(url, mapping).status_code == 302
    imports.import_run(job_id=job.pk)
    page = manager_client.get(url).content.decode()
    assert 'data-testid="opening-preview"' in page and "1,500" in page
    assert manager_client.post(url, {"confirm": "1"}).status_code == 302
    imports.import_run(job_id=job.pk)
    page = manager_client.get(url).content.decode()
    assert "2 opening balances imported (1,500 points)." in page
    assert Member.objects.get(pk=people["number"].pk).balance == 1250


def test_an_import_touches_no_other_tenant(people, manager_user, tenant_b):
    with schema_context(tenant_b.schema_name):
        twin = CustomerFactory(email="li.na@example.com")
        member_enrol(actor=None, customer=twin)
    _confirm(manager_user, _check(manager_user, _upload(manager_user, _file(people))))
    with schema_context(tenant_b.schema_name):
        assert Member.objects.get(customer=twin).balance == 0
        assert not PointsEntry.objects.filter(kind="opening").exists()
