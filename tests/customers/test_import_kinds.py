"""The generic import-kind seam (customers/imports/kinds.py): an app plugs in its fields, mapping
rule, row checks and write, and gets upload, mapping guess, the checking job, the preview, confirm,
one-transaction write, role checks and redelivery safety without copying the job code. Shown with a
toy kind that imports tags; the customer import itself is untouched (its own tests)."""

import dataclasses

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from crm.audit.models import AuditEvent
from customers.imports import kinds
from customers.models import Tag

pytestmark = pytest.mark.django_db
COLOURS = {"red", "green", "blue"}


def _check_rows(rows, labels):
    checked = kinds.CheckedRows(rows=[])
    for number, values in rows:
        name, colour = values.get("name", "").strip(), values.get("colour", "").strip() or "blue"
        if not name:
            checked.problems.append(kinds.RowProblem(number, labels["name"], "A tag needs a name."))
        elif colour not in COLOURS:
            checked.problems.append(kinds.RowProblem(number, labels.get("colour", ""), "Unknown colour."))
        else:
            checked.rows.append({"name": name, "color": colour})
            checked.preview.append({"name": name, "colour": colour})
    return checked


PALETTE = {"red": "danger", "green": "success", "blue": "primary"}  # the colours a tag may have


def _write(actor, rows, job):
    Tag.objects.bulk_create([Tag(name=row["name"], color=PALETTE[row["color"]]) for row in rows])
    return len(rows)


TAGS = kinds.ImportKind(
    key="tests.tags",
    noun="tags",
    targets=(kinds.Target("name", "Name", ("标签",)), kinds.Target("colour", "Colour", ("color",))),
    check_mapping=lambda mapping: [] if "name" in mapping else ["Choose the column for the name."],
    check_rows=_check_rows,
    write=_write,
)


@pytest.fixture(autouse=True)
def _kind(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    kinds.register_import_kind(TAGS)


def _upload(actor, text):
    return kinds.kind_upload(kind=TAGS, actor=actor, uploaded_file=SimpleUploadedFile("t.csv", text.encode()))


def test_a_kind_goes_upload_mapping_check_preview_confirm_write(manager_user):
    job = _upload(manager_user, "标签,color\nVIP,red\nNew,\n")
    assert job.params["stage"] == "mapping" and job.params["mapping"] == ["name", "colour"]
    job = kinds.kind_set_mapping(kind=TAGS, actor=manager_user, job=job, mapping=job.params["mapping"])
    kinds.kind_check(job_id=job.pk)
    job.refresh_from_db()
    preview = job.result["preview"]
    assert job.params["stage"] == "preview" and (preview["valid_rows"], preview["error_count"]) == (2, 0)
    assert preview["columns"] == [["name", "Name"], ["colour", "Colour"]]
    assert preview["sample"] == [["VIP", "red"], ["New", "blue"]]
    assert not Tag.objects.exists()
    job = kinds.kind_confirm(kind=TAGS, actor=manager_user, job=job)
    kinds.kind_write(job_id=job.pk)
    kinds.kind_write(job_id=job.pk)  # redelivered: nothing more
    job.refresh_from_db()
    assert job.params["stage"] == "done" and job.shown_message == "2 tags imported."
    assert sorted(Tag.objects.values_list("name", "color")) == [("New", "primary"), ("VIP", "danger")]
    assert AuditEvent.objects.filter(action="tests.tags.written", target_id=str(job.pk)).exists()


def test_problems_stop_at_the_preview_and_nothing_is_written(manager_user):
    job = _upload(manager_user, "name,colour\nVIP,red\n,red\nOdd,purple\n")
    job = kinds.kind_set_mapping(kind=TAGS, actor=manager_user, job=job, mapping=["name", "colour"])
    kinds.kind_check(job_id=job.pk)
    job.refresh_from_db()
    errors = job.result["preview"]["errors"]
    assert [(e["row"], e["column"]) for e in errors] == [(3, "name"), (4, "colour")]
    with pytest.raises(ValidationError):
        kinds.kind_confirm(kind=TAGS, actor=manager_user, job=job)
    assert not Tag.objects.exists()


def test_the_mapping_rule_and_the_role_are_the_kinds(manager_user, sales_user):
    job = _upload(manager_user, "name,colour\nVIP,red\n")
    with pytest.raises(ValidationError) as refused:
        kinds.kind_set_mapping(kind=TAGS, actor=manager_user, job=job, mapping=["", "colour"])
    assert "Choose the column for the name." in refused.value.messages
    with pytest.raises(ValidationError):
        kinds.kind_set_mapping(kind=TAGS, actor=manager_user, job=job, mapping=["colour", "colour"])
    with pytest.raises(PermissionDenied):
        _upload(sales_user, "name\nx\n")
    with pytest.raises(PermissionDenied):
        kinds.kind_set_mapping(kind=TAGS, actor=sales_user, job=job, mapping=["name", "colour"])


def _demote(user):
    from crm.accounts.models import User

    User.objects.filter(pk=user.pk).update(role="sales")


def test_an_importer_who_lost_the_role_before_the_check_gets_a_failed_job(manager_user):
    job = _upload(manager_user, "name,colour\nVIP,red\n")
    job = kinds.kind_set_mapping(kind=TAGS, actor=manager_user, job=job, mapping=["name", "colour"])
    _demote(manager_user)
    kinds.kind_check(job_id=job.pk)
    job.refresh_from_db()
    assert job.params["stage"] == "failed" and "preview" not in (job.result or {})
    assert job.shown_message == "The user who started this import may no longer import."


def test_an_importer_who_lost_the_role_before_the_write_writes_nothing(manager_user):
    job = _upload(manager_user, "name,colour\nVIP,red\n")
    job = kinds.kind_set_mapping(kind=TAGS, actor=manager_user, job=job, mapping=["name", "colour"])
    kinds.kind_check(job_id=job.pk)
    job.refresh_from_db()
    job = kinds.kind_confirm(kind=TAGS, actor=manager_user, job=job)
    _demote(manager_user)
    kinds.kind_write(job_id=job.pk)
    job.refresh_from_db()
    assert job.params["stage"] == "failed" and not Tag.objects.exists()


def test_a_write_that_fails_part_way_writes_nothing(manager_user):
    """The kind's write raises after its first rows are in: the job fails and no row stays."""

    def write_then_fail(actor, rows, job):
        _write(actor, rows[:1], job)
        raise RuntimeError("the disk is full")

    failing = dataclasses.replace(TAGS, write=write_then_fail)
    kinds.register_import_kind(failing)
    job = _upload(manager_user, "name,colour\nVIP,red\nNew,green\n")
    job = kinds.kind_set_mapping(kind=failing, actor=manager_user, job=job, mapping=["name", "colour"])
    kinds.kind_check(job_id=job.pk)
    job.refresh_from_db()
    job = kinds.kind_confirm(kind=failing, actor=manager_user, job=job)
    with pytest.raises(RuntimeError):  # raised on to the task (logged), after the job is marked failed
        kinds.kind_write(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and not Tag.objects.exists()
    assert job.shown_message == "The import failed. Nothing was written. Please try again."
