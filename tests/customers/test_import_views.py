"""The import pages: roles, the whole flow through the browser-facing views, and bad input."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django_tenants.utils import schema_context

from crm.jobs.models import BackgroundJob
from crm.jobs.services import job_create
from customers.imports import parsing, services
from customers.models import Customer
from tests.customers.test_import_parsing import xlsx_bytes
from tests.customers.test_import_services import GOOD, MALFORMED, upload


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    """Uploaded and generated job files go to a temporary folder, not the shared test media."""
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture(autouse=True)
def english_pages(tenant):
    """Tenant alpha defaults to Chinese; these tests read the English texts."""
    from crm.accounts.models import User

    User.objects.update(language="en")


def csv_file(content, name="customers.csv"):
    data = content.encode("utf-8") if isinstance(content, str) else content
    return SimpleUploadedFile(name, data, content_type="text/csv")


def test_sales_staff_cannot_reach_any_import_page(tenant, sales_client, manager_user):
    job = upload(manager_user, GOOD)
    urls = [
        reverse("customers:import_start"),
        reverse("customers:import_template"),
        reverse("customers:import_mapping", args=[job.pk]),
        reverse("customers:import_preview", args=[job.pk]),
        reverse("customers:import_status", args=[job.pk]),
    ]
    for url in urls:
        assert sales_client.get(url).status_code == 403, url
    for name in ("customers:import_confirm", "customers:import_cancel"):
        assert sales_client.post(reverse(name, args=[job.pk])).status_code == 403
    response = sales_client.post(reverse("customers:import_start"), {"file": csv_file(GOOD)})
    assert response.status_code == 403
    assert BackgroundJob.objects.filter(kind="customers.import").count() == 1


def test_anonymous_users_are_sent_to_the_login_page(tenant, anon_client):
    response = anon_client.get(reverse("customers:import_start"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_the_upload_page_states_the_limits(tenant, manager_client):
    page = manager_client.get(reverse("customers:import_start")).content.decode()
    assert "at most 20 MB and 200,000 rows. The first row" in page and "GB18030" in page


def test_the_whole_flow_through_the_pages(tenant, manager_client, manager_user):
    response = manager_client.post(reverse("customers:import_start"), {"file": csv_file(GOOD)})
    assert response.status_code == 302
    job = BackgroundJob.objects.get(kind="customers.import")
    assert response["Location"] == reverse("customers:import_mapping", args=[job.pk])

    page = manager_client.get(response["Location"]).content.decode()
    assert 'value="name" selected' in page and 'value="phone" selected' in page
    assert "王小明" in page  # sample values help the user check the mapping
    assert "customers.csv: 2 rows." in page

    form = {f"col_{i}": key for i, key in enumerate(job.params["mapping"])}
    form["policy"] = "update"
    response = manager_client.post(reverse("customers:import_mapping", args=[job.pk]), form)
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:import_preview", args=[job.pk])
    # While the check runs, the page shows the progress bar, and survives a reload.
    page = manager_client.get(response["Location"]).content.decode()
    assert 'id="import-progress"' in page and "job-progress" in page
    assert manager_client.get(reverse("customers:import_status", args=[job.pk])).get("HX-Refresh") is None

    services.import_validate(job_id=job.pk)  # what the worker does
    assert manager_client.get(reverse("customers:import_status", args=[job.pk]))["HX-Refresh"] == "true"
    page = manager_client.get(reverse("customers:import_preview", args=[job.pk])).content.decode()
    assert 'id="import-no-errors"' in page and "Import 2 rows" in page

    response = manager_client.post(reverse("customers:import_confirm", args=[job.pk]))
    assert response.status_code == 302
    services.import_run(job_id=job.pk)
    page = manager_client.get(reverse("customers:import_preview", args=[job.pk])).content.decode()
    assert 'id="import-done"' in page
    assert Customer.objects.count() == 2


def test_problems_are_listed_on_the_preview_and_downloadable(tenant, manager_client, manager_user):
    job = upload(manager_user, MALFORMED)
    services.import_set_mapping(actor=manager_user, job=job, mapping=job.params["mapping"], policy="update")
    services.import_validate(job_id=job.pk)
    page = manager_client.get(reverse("customers:import_preview", args=[job.pk])).content.decode()
    assert "7 problems found" in page
    assert "is not a valid email address" in page
    assert 'id="download-errors"' in page
    download = manager_client.get(reverse("jobs:download", args=[job.pk]))
    assert download.status_code == 200
    assert b"".join(download.streaming_content).decode("utf-8-sig").startswith("Row,Column,Problem")
    # Confirming without ticking "only the valid rows" imports nothing.
    response = manager_client.post(reverse("customers:import_confirm", args=[job.pk]), follow=True)
    assert "The file has problems" in response.content.decode()
    assert Customer.objects.count() == 0


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.csv", b"", "empty"),
        ("notes.pdf", b"%PDF-1.4 whatever", "Upload a .csv or .xlsx file"),
        ("garbage.csv", bytes(range(256)) * 50, "not UTF-8 or GB18030"),
        ("broken.xlsx", b"PK\x03\x04 definitely not a workbook", "not a valid Excel"),
        ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "Upload a .csv or .xlsx file"),
        ("headers-only.csv", b"name,email\n", "no data rows"),
    ],
)
def test_bad_uploads_get_a_message_not_an_error_page(tenant, manager_client, name, data, message):
    response = manager_client.post(
        reverse("customers:import_start"), {"file": SimpleUploadedFile(name, data)}
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not BackgroundJob.objects.filter(kind="customers.import").exists()


def test_a_too_large_upload_is_refused(tenant, manager_client, monkeypatch):
    monkeypatch.setattr(parsing, "MAX_CSV_UPLOAD_BYTES", 1000)
    response = manager_client.post(
        reverse("customers:import_start"), {"file": csv_file("name\n" + "x\n" * 1000)}
    )
    assert response.status_code == 200 and "larger than" in response.content.decode()
    assert not BackgroundJob.objects.filter(kind="customers.import").exists()


def test_the_upload_page_states_both_bounds(tenant, manager_client):
    page = " ".join(manager_client.get(reverse("customers:import_start")).content.decode().split())
    # the page's own sentence and the form's help text
    assert "CSV file (UTF-8, UTF-8 with BOM, or GB18030 as saved by Chinese Excel) of at most 200 MB" in page
    assert "and 1,000,000 rows, or an Excel .xlsx workbook of at most 20 MB and 200,000 rows" in page
    assert "of at most 200 MB and 1,000,000 rows, or Excel .xlsx of at most 20 MB and 200,000 rows" in page


def test_a_file_with_a_huge_cell_and_a_missing_file_field_do_not_break(tenant, manager_client):
    response = manager_client.post(reverse("customers:import_start"), {})
    assert response.status_code == 200
    content = "name,city\nAnn," + "x" * 200_000 + "\n"
    response = manager_client.post(reverse("customers:import_start"), {"file": csv_file(content)})
    assert response.status_code == 200  # beyond IMPORT_MAX_CELL_CHARS: the file is refused, clearly
    assert "Row 2 has a cell longer than 32,767 characters." in response.content.decode()
    content = "name,city\nAnn," + "x" * 20_000 + "\n"
    response = manager_client.post(reverse("customers:import_start"), {"file": csv_file(content)})
    assert response.status_code == 302  # accepted; the check reports the cell
    job = BackgroundJob.objects.get(kind="customers.import")
    form = {"col_0": "name", "col_1": "city", "policy": "update"}
    manager_client.post(reverse("customers:import_mapping", args=[job.pk]), form)
    services.import_validate(job_id=job.pk)
    page = manager_client.get(reverse("customers:import_preview", args=[job.pk])).content.decode()
    assert "Too long: 20,000 characters (at most 100)." in page


def test_xlsx_uploads_work_through_the_page(tenant, manager_client):
    data = xlsx_bytes([["Name", "Email"], ["Ann", "ann@example.com"]])
    response = manager_client.post(
        reverse("customers:import_start"), {"file": SimpleUploadedFile("c.xlsx", data)}
    )
    job = BackgroundJob.objects.get(kind="customers.import")
    assert response.status_code == 302 and response["Location"] == reverse(
        "customers:import_mapping", args=[job.pk]
    )
    assert job.params["headers"] == ["Name", "Email"] and job.params["mapping"] == ["name", "email"]
    page = manager_client.get(response["Location"]).content.decode()
    assert "ann@example.com" in page  # the sample values come from the workbook


def test_mapping_errors_are_shown_on_the_form(tenant, manager_client, manager_user):
    job = upload(manager_user, GOOD)
    form = {f"col_{i}": "" for i in range(len(job.params["headers"]))}
    form["policy"] = "update"
    response = manager_client.post(reverse("customers:import_mapping", args=[job.pk]), form)
    assert response.status_code == 200
    assert "Choose at least one column to import." in response.content.decode()
    form["col_0"] = "not-a-field"
    response = manager_client.post(reverse("customers:import_mapping", args=[job.pk]), form)
    assert response.status_code == 200


def test_jobs_of_other_kinds_and_other_tenants_are_not_found(tenant, tenant_b, manager_client, manager_user):
    other = job_create(kind="customers.export")
    assert manager_client.get(reverse("customers:import_preview", args=[other.pk])).status_code == 404
    assert manager_client.get(reverse("customers:import_preview", args=[999999])).status_code == 404
    # Both tenants have an import job with the same id: alpha's page shows alpha's, never beta's file.
    local = upload(manager_user, GOOD)
    with schema_context(tenant_b.schema_name):
        foreign = job_create(
            kind="customers.import", params={"stage": "mapping", "filename": "beta-secret.csv"}
        )
        BackgroundJob.objects.filter(pk=foreign.pk).update(id=local.pk)
    page = manager_client.get(reverse("customers:import_mapping", args=[local.pk])).content.decode()
    assert "customers.csv" in page and "beta-secret.csv" not in page


def test_the_template_download_lists_every_importable_column(tenant, manager_client):
    response = manager_client.get(reverse("customers:import_template"))
    text = response.content.decode("utf-8-sig")
    parsed = parsing.parse_csv(("\ufeff" + text + "x\n").encode("utf-8"))
    assert "Name" in parsed.headers and "Order number" in parsed.headers


def test_a_zip_bomb_upload_gets_a_message_not_an_error_page(tenant, manager_client):
    from tests.customers.test_import_bombs import shared_strings_bomb

    response = manager_client.post(
        reverse("customers:import_start"),
        {"file": SimpleUploadedFile("bomb.xlsx", shared_strings_bomb(40 * 1024 * 1024))},
    )
    assert response.status_code == 200
    assert "compressed more than 100 times" in response.content.decode()
    assert not BackgroundJob.objects.filter(kind="customers.import").exists()
