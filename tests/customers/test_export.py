"""Exports: formula escaping in CSV and XLSX, visibility, background jobs, the tenant zip, and the
round trip through the import."""

import csv
import io
import zipfile
from datetime import date
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from crm.audit.models import AuditEvent
from crm.jobs.models import BackgroundJob
from customers.exports import services as export_services
from customers.exports.formats import escape_formula
from customers.imports import services as import_services
from customers.models import Customer
from tests.factories import (
    BehaviourEventFactory,
    CustomerFactory,
    CustomFieldDefinitionFactory,
    OrderFactory,
    OrderLineFactory,
    TagFactory,
)


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    """Uploaded and generated job files go to a temporary folder, not the shared test media."""
    settings.MEDIA_ROOT = tmp_path


FORMULAS = [
    '=HYPERLINK("http://evil","x")',
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    "\tTabbed",
    "\rReturn",
    "-2+3+cmd|' /C calc'!A0",
    "+A1",
    "-",
]
# a sign followed by a number is a number, never a formula (issue 15: every phone had an apostrophe)
NOT_FORMULAS = ["+8613912345679", "+86 139 1234 5679", "+1 (555) 123-4567", "-12.50", "Normal", "a=b", ""]


@pytest.fixture(autouse=True)
def english_pages(tenant):
    """Tenant alpha defaults to Chinese; these tests read the English headers and texts."""
    from crm.accounts.models import User

    User.objects.update(language="en")


def csv_rows(response) -> list[list[str]]:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    assert content.startswith(b"\xef\xbb\xbf"), "UTF-8 with BOM, so Excel shows Chinese correctly"
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def xlsx_rows(response) -> list[list]:
    workbook = load_workbook(io.BytesIO(response.content), read_only=True)
    return [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]


def export(client, fmt="csv", query=""):
    return client.post(reverse("customers:export") + (f"?{query}" if query else ""), {"format": fmt})


def test_escape_formula():
    for value in FORMULAS:
        assert escape_formula(value) == "'" + value
    for value in NOT_FORMULAS:
        assert escape_formula(value) == value
    assert escape_formula(5) == 5


def test_the_sql_rule_of_the_table_exports_is_the_same_rule(tenant):
    """The COPY exports escape in SQL: the same pattern must decide the same way in PostgreSQL."""
    from django.db import connection

    from crm.spreadsheets import formula_escaped_sql, unescape_formula

    values = FORMULAS + NOT_FORMULAS
    with connection.cursor() as cursor:
        rows = ", ".join(["(%s, %s)"] * len(values))
        params = [p for index, value in enumerate(values) for p in (index, value)]
        cursor.execute(f"SELECT {formula_escaped_sql('v')} FROM (VALUES {rows}) t(i, v) ORDER BY i", params)
        escaped = [row[0] for row in cursor.fetchall()]
    assert escaped == [escape_formula(value) for value in values]
    assert [unescape_formula(value) for value in escaped] == values


def test_formula_cells_are_escaped_in_csv_and_xlsx(tenant, manager_client):
    for index, text in enumerate(FORMULAS):
        CustomerFactory(name=text, city=text, external_id=f"F{index}", phone="", email="")
    rows = csv_rows(export(manager_client, "csv"))
    header = rows[0]
    names = {row[header.index("Name")] for row in rows[1:]}
    assert names == {"'" + text for text in FORMULAS}
    cities = {row[header.index("City")] for row in rows[1:]}
    assert cities == {"'" + text for text in FORMULAS}

    response = export(manager_client, "xlsx")
    workbook = load_workbook(io.BytesIO(response.content))
    cells = [cell for row in workbook.active.iter_rows() for cell in row if cell.value is not None]
    assert all(cell.data_type != "f" for cell in cells), "no formulas"
    sheet = xlsx_rows(response)
    header = sheet[0]
    # XLSX string cells are never run: the text as it is, no apostrophe
    # (XML reads a carriage return back as a line feed)
    assert {row[header.index("Name")] for row in sheet[1:]} == {t.replace("\r", "\n") for t in FORMULAS}
    assert all(isinstance(row[header.index("City")], str) for row in sheet[1:])


def test_phone_numbers_are_not_escaped(tenant, manager_client):
    """Issue 15: an E.164 number is not a formula, in CSV or XLSX."""
    CustomerFactory(name="Ann", phone="+8613800138000", city="+86 Shanghai")
    rows = csv_rows(export(manager_client))
    assert rows[1][rows[0].index("Phone")] == "+8613800138000"
    assert rows[1][rows[0].index("City")] == "'+86 Shanghai"  # a sign then letters may run
    sheet = xlsx_rows(export(manager_client, "xlsx"))
    assert sheet[1][sheet[0].index("Phone")] == "+8613800138000"
    assert sheet[1][sheet[0].index("City")] == "+86 Shanghai"


def test_the_export_has_custom_fields_tags_and_owner_columns(tenant, manager_client, sales_user):
    CustomFieldDefinitionFactory(key="wechat_id", label="WeChat ID", field_type="text")
    CustomFieldDefinitionFactory(
        key="hobbies", label="Hobbies", field_type="multi_choice", choices=["tea", "golf"]
    )
    customer = CustomerFactory(
        name="王小明",
        owner=sales_user,
        custom_fields={"wechat_id": "wx1", "hobbies": ["tea", "golf"]},
        tags=[TagFactory(name="VIP"), TagFactory(name="老客户")],
    )
    rows = csv_rows(export(manager_client))
    header, row = rows[0], rows[1]
    assert row[header.index("CRM ID")] == str(customer.pk)
    assert row[header.index("Name")] == "王小明"
    assert row[header.index("WeChat ID")] == "wx1"
    assert row[header.index("Hobbies")] == "tea, golf"
    assert row[header.index("Tags")] == "VIP, 老客户"
    assert row[header.index("Owner")] == sales_user.email


def test_sales_staff_export_only_their_own_customers(tenant, sales_client, sales_user, sales_user2):
    mine = {CustomerFactory(owner=sales_user).name for _ in range(2)}
    shared = CustomerFactory(owner=sales_user2, shared_with=[sales_user])
    CustomerFactory(owner=sales_user2)
    CustomerFactory(owner=None)
    rows = csv_rows(export(sales_client))
    names = {row[rows[0].index("Name")] for row in rows[1:]}
    assert names == mine | {shared.name}
    sheet = xlsx_rows(export(sales_client, "xlsx"))
    assert len(sheet) == 1 + 3


def test_the_list_filters_apply_to_the_export(tenant, manager_client):
    CustomerFactory(name="Shanghai one", city="Shanghai")
    CustomerFactory(name="Beijing one", city="Beijing")
    CustomerFactory(name="Deleted", city="Shanghai", deleted_at=timezone.now())
    rows = csv_rows(export(manager_client, query="city=Shanghai"))
    assert [row[rows[0].index("Name")] for row in rows[1:]] == ["Shanghai one"]
    page = manager_client.get(reverse("customers:export") + "?city=Shanghai").content.decode()
    assert "1 customer matches" in page


def test_export_queries_do_not_grow_with_rows(tenant, manager_client, django_assert_num_queries):
    tag = TagFactory(name="t")
    CustomerFactory(tags=[tag])
    with django_assert_num_queries(13):
        csv_rows(export(manager_client))
    for _ in range(60):
        CustomerFactory(tags=[tag])
    with django_assert_num_queries(13):  # the same with 60 more rows
        rows = csv_rows(export(manager_client))
    assert len(rows) == 62


def test_large_exports_run_in_the_background(tenant, manager_client, manager_user, monkeypatch):
    monkeypatch.setattr(export_services, "STREAM_LIMIT", 2)
    for _ in range(3):
        CustomerFactory()
    response = export(manager_client, "xlsx")
    assert response.status_code == 302
    job = BackgroundJob.objects.get(kind="customers.export")
    assert response["Location"] == reverse("customers:export_job", args=[job.pk])
    page = manager_client.get(response["Location"]).content.decode()
    assert "job-progress" in page
    export_services.export_run(job_id=job.pk)  # what the worker does
    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.SUCCEEDED and job.progress == 100
    assert job.result["rows"] == 3
    download = manager_client.get(reverse("jobs:download", args=[job.pk]))
    workbook = load_workbook(io.BytesIO(b"".join(download.streaming_content)), read_only=True)
    assert len(list(workbook.worksheets[0].iter_rows())) == 4
    export_services.export_run(job_id=job.pk)  # a redelivered message changes nothing
    job.refresh_from_db()
    assert job.result["rows"] == 3


def test_sales_background_export_is_scoped_to_the_sales_user(tenant, sales_client, sales_user, monkeypatch):
    monkeypatch.setattr(export_services, "STREAM_LIMIT", 1)
    CustomerFactory(owner=sales_user, name="Mine 1")
    CustomerFactory(owner=sales_user, name="Mine 2")
    CustomerFactory(owner=None, name="Not mine")
    response = export(sales_client, "csv")
    job = BackgroundJob.objects.get(kind="customers.export")
    export_services.export_run(job_id=job.pk)
    download = sales_client.get(reverse("jobs:download", args=[job.pk]))
    text = b"".join(download.streaming_content).decode("utf-8-sig")
    assert "Mine 1" in text and "Mine 2" in text and "Not mine" not in text
    assert response.status_code == 302


def test_export_all_is_for_managers_only(tenant, sales_client, manager_client):
    assert sales_client.get(reverse("customers:export_all")).status_code == 403
    assert sales_client.post(reverse("customers:export_all")).status_code == 403
    assert manager_client.get(reverse("customers:export_all")).status_code == 200
    assert not BackgroundJob.objects.filter(kind="customers.export_all").exists()


def test_export_all_writes_a_zip_of_every_table(tenant, manager_client):
    alive = CustomerFactory(name="Alive", custom_fields={}, phone="+8613912345679")
    binned = CustomerFactory(name="In the bin", deleted_at=timezone.now())
    order = OrderFactory(customer=alive, number="=NUM-1", total=Decimal("30.00"))
    OrderLineFactory(order=order, product_name="@product", unit_price=Decimal("30.00"))
    BehaviourEventFactory(customer=alive, properties={"path": "/tea"})
    response = manager_client.post(reverse("customers:export_all"))
    job = BackgroundJob.objects.get(kind="customers.export_all")
    assert response["Location"] == reverse("customers:export_job", args=[job.pk])
    export_services.export_all_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.SUCCEEDED
    download = manager_client.get(reverse("jobs:download", args=[job.pk]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert set(archive.namelist()) == {
        "customers.csv",
        "orders.csv",
        "order_lines.csv",
        "refunds.csv",
        "events.csv",
        "tags.csv",
        "customer_tags.csv",
        "custom_fields.csv",
    }

    def read(name):
        raw = archive.read(name)
        assert raw.startswith(b"\xef\xbb\xbf")
        return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))

    customers = read("customers.csv")
    assert {c["Name"] for c in customers} == {"Alive", "In the bin"}
    assert [c["Deleted at"] != "" for c in customers if c["Name"] == "In the bin"] == [True]
    assert [c["Phone"] for c in customers if c["Name"] == "Alive"] == ["+8613912345679"]
    orders = read("orders.csv")
    assert orders[0]["number"] == "'=NUM-1" and orders[0]["customer_id"] == str(alive.pk)
    assert read("order_lines.csv")[0]["product_name"] == "'@product"
    assert '"path": "/tea"' in read("events.csv")[0]["properties"]
    assert binned.pk


def test_an_export_round_trips_through_the_import_unchanged(tenant, manager_client, manager_user, sales_user):
    CustomFieldDefinitionFactory(key="wechat_id", label="WeChat ID", field_type="text")
    CustomFieldDefinitionFactory(key="visits", label="Visits", field_type="number")
    CustomFieldDefinitionFactory(key="since", label="Member since", field_type="date")
    CustomFieldDefinitionFactory(key="kids", label="Has kids", field_type="boolean")
    CustomFieldDefinitionFactory(key="level", label="Level", field_type="choice", choices=["gold", "silver"])
    CustomFieldDefinitionFactory(
        key="hobbies", label="Hobbies", field_type="multi_choice", choices=["tea", "golf"]
    )
    vip = TagFactory(name="VIP")
    CustomerFactory(
        name="王小明",
        email="wang@example.com",
        phone="+8613800138000",
        owner=sales_user,
        tags=[vip],
        birthday=date(1990, 5, 1),
        gender="male",
        email_consent=True,
        email_consent_at=timezone.now(),
        custom_fields={
            "wechat_id": "wx",
            "visits": 12,
            "since": "2020-01-02",
            "kids": False,
            "level": "gold",
            "hobbies": ["tea", "golf"],
        },
        external_id="-EXT-1",
    )
    CustomerFactory(
        name="=Formula Ltd",
        kind="company",
        email="",
        phone="+442079460958",
        city="@London",
        custom_fields={"visits": 1.5, "kids": True},
    )
    CustomerFactory(name="Plain", email="plain@example.com", phone="", country="", province="", city="")
    stamps = dict(Customer.objects.values_list("pk", "updated_at"))
    audit_before = AuditEvent.objects.filter(target_type="customers.customer").count()

    for fmt, name in (("csv", "export.csv"), ("xlsx", "export.xlsx")):
        response = export(manager_client, fmt)
        data = b"".join(response.streaming_content) if response.streaming else response.content
        job = import_services.import_upload(actor=manager_user, uploaded_file=SimpleUploadedFile(name, data))
        mapped = [key for key in job.params["mapping"] if key]
        assert {"id", "name", "email", "phone", "tags", "owner", "cf:visits", "cf:hobbies"} <= set(mapped)
        import_services.import_set_mapping(
            actor=manager_user, job=job, mapping=job.params["mapping"], policy="update"
        )
        import_services.import_validate(job_id=job.pk)
        job.refresh_from_db()
        assert job.result["preview"]["errors"] == [], fmt
        import_services.import_confirm(actor=manager_user, job=job, skip_invalid=False)
        import_services.import_run(job_id=job.pk)
        job.refresh_from_db()
        assert job.result["written"] == {
            "customers_created": 0,
            "customers_updated": 0,
            "orders_created": 0,
            "orders_updated": 0,
            "lines_created": 0,
        }, fmt
        assert job.result["unchanged"]["customers"] == 3, fmt

    assert dict(Customer.objects.values_list("pk", "updated_at")) == stamps
    assert AuditEvent.objects.filter(target_type="customers.customer").count() == audit_before
