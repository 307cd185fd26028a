"""The import job end to end through its services (the task bodies are called in-process)."""

from datetime import date, datetime
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django_tenants.utils import schema_context

from crm.audit.models import AuditEvent
from crm.jobs.models import BackgroundJob
from customers.imports import services
from customers.models import Customer, CustomFieldDefinition, Order, OrderLine, Tag
from tests.factories import CustomerFactory, CustomFieldDefinitionFactory, TagFactory


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    """Uploaded and generated job files go to a temporary folder, not the shared test media."""
    settings.MEDIA_ROOT = tmp_path


def customer_audit_count() -> int:
    return AuditEvent.objects.filter(target_type="customers.customer").count()


def upload(actor, content, name="customers.csv") -> BackgroundJob:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return services.import_upload(actor=actor, uploaded_file=SimpleUploadedFile(name, data))


def check(
    actor, content, *, name="customers.csv", mapping=None, policy="update", owner_id=None
) -> BackgroundJob:
    """Upload and run the preview (every row checked); returns the job at the preview stage."""
    job = upload(actor, content, name)
    job = services.import_set_mapping(
        actor=actor,
        job=job,
        mapping=mapping if mapping is not None else job.params["mapping"],
        policy=policy,
        default_owner_id=owner_id,
    )
    services.import_validate(job_id=job.pk)
    job.refresh_from_db()
    return job


def run_import(actor, content, *, skip_invalid=False, **kwargs) -> BackgroundJob:
    job = check(actor, content, **kwargs)
    assert job.params["stage"] == "preview", job.message
    services.import_confirm(actor=actor, job=job, skip_invalid=skip_invalid)
    services.import_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def written(job) -> dict:
    return job.result["written"]


GOOD = (
    "姓名,手机,邮箱,城市,生日,性别,来源,外部编号,标签\n"
    "王小明,138 0013 8000,Wang@Example.com,上海,1990-05-01,男,门店,M-1,VIP、老客户\n"
    "Anna Smith,+44 20 7946 0958,anna@example.com,London,1985/12/24,female,website,M-2,VIP\n"
)


def test_a_clean_file_is_previewed_then_imported(tenant, manager_user):
    job = check(manager_user, GOOD)
    preview = job.result["preview"]
    assert preview["errors_total"] == 0 and preview["valid_rows"] == 2
    assert preview["counts"]["customers_created"] == 2
    assert Customer.objects.count() == 0, "the preview writes nothing"

    services.import_confirm(actor=manager_user, job=job, skip_invalid=False)
    services.import_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.SUCCEEDED and job.progress == 100
    assert job.params["stage"] == "done"
    assert written(job)["customers_created"] == 2

    wang = Customer.objects.get(external_id="M-1")
    assert wang.name == "王小明"
    assert wang.phone == "+8613800138000"
    assert wang.email == "wang@example.com"
    assert wang.birthday == date(1990, 5, 1)
    assert wang.gender == "male" and wang.source == "store" and wang.city == "上海"
    assert sorted(wang.tags.values_list("name", flat=True)) == ["VIP", "老客户"]
    assert wang.created_by == manager_user
    assert "wangxiaoming" in wang.search_text and "13800138000" in wang.search_text
    anna = Customer.objects.get(external_id="M-2")
    assert anna.phone == "+442079460958" and anna.birthday == date(1985, 12, 24)
    assert Tag.objects.filter(name="VIP").count() == 1
    # one audit row per customer, plus the job's summary
    assert set(
        AuditEvent.objects.filter(target_type="customers.customer").values_list("action", flat=True)
    ) == {"customer.imported"}
    assert customer_audit_count() == 2
    imported = AuditEvent.objects.get(action="customer.imported", target_id=str(wang.pk))
    assert imported.changes == {
        "import_job": {"old": None, "new": job.pk},
        "import_row": {"old": None, "new": 2},
    }
    assert imported.actor == manager_user and imported.target_label == "王小明"
    summary = AuditEvent.objects.get(action="customers.imported")
    assert summary.changes["customers_created"] == 2


MALFORMED = (
    "name,email,phone,birthday,gender,city\n"
    "Good Person,good@example.com,13800138000,1990-01-01,female,Shanghai\n"  # row 2: fine
    "Bad Email,not-an-email,,,,\n"  # row 3
    "Bad Phone,,12345,,,\n"  # row 4
    "Bad Date,,,1990-13-45,,\n"  # row 5
    ",nobody@example.com,,,,\n"  # row 6: a new customer needs a name
    "Unknown Choice,,,,robot,\n"  # row 7
    "Huge Cell,,,,," + "x" * 10_000 + "\n"  # row 8
).encode("utf-8") + b"Broken \xff\xfe bytes,,,,,\n"  # row 9: not UTF-8


def test_every_malformed_row_is_reported_with_row_and_column_and_nothing_is_written(tenant, manager_user):
    customers_before = Customer.objects.count()
    audit_before = customer_audit_count()
    job = check(manager_user, MALFORMED)
    preview = job.result["preview"]
    problems = {(row, column): message for row, column, message in preview["errors"]}
    assert set(problems) == {
        (3, "email"),
        (4, "phone"),
        (5, "birthday"),
        (6, "name"),
        (7, "gender"),
        (8, "city"),
        (9, "name"),
    }
    assert "not a valid email" in problems[(3, "email")]
    assert "not a valid phone" in problems[(4, "phone")]
    assert "not a date" in problems[(5, "birthday")] or "not a valid date" in problems[(5, "birthday")]
    assert "name is required" in problems[(6, "name")]
    assert "not one of the allowed values" in problems[(7, "gender")]
    assert "10,000 characters" in problems[(8, "city")]
    assert "wrong encoding" in problems[(9, "name")]
    assert preview["valid_rows"] == 1 and preview["invalid_rows"] == 7

    # The error file lists every problem with the original row.
    with job.output_file.open("rb") as handle:
        text = handle.read().decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Row,Column,Problem,name,email")
    assert "3,email," in text and "Bad Email" in text

    # Without choosing "only the valid rows", nothing can be imported.
    with pytest.raises(ValidationError):
        services.import_confirm(actor=manager_user, job=job, skip_invalid=False)
    assert Customer.objects.count() == customers_before
    assert customer_audit_count() == audit_before


def test_only_the_valid_rows_are_imported_when_the_user_chooses_so(tenant, manager_user):
    job = run_import(manager_user, MALFORMED, skip_invalid=True)
    assert job.params["stage"] == "done"
    assert written(job)["customers_created"] == 1
    assert list(Customer.objects.values_list("name", flat=True)) == ["Good Person"]
    assert job.result["import"]["invalid_rows"] == 7


def test_reimporting_the_same_file_with_update_changes_nothing(tenant, manager_user):
    TagFactory(name="vip")  # an existing tag in another case is reused, not duplicated
    first = run_import(manager_user, GOOD)
    assert written(first)["customers_created"] == 2
    stamps = dict(Customer.objects.values_list("pk", "updated_at"))
    audit_rows = AuditEvent.objects.filter(target_type="customers.customer").count()

    second = run_import(manager_user, GOOD)
    assert written(second)["customers_created"] == 0
    assert written(second)["customers_updated"] == 0
    assert second.result["unchanged"]["customers"] == 2
    assert dict(Customer.objects.values_list("pk", "updated_at")) == stamps
    assert AuditEvent.objects.filter(target_type="customers.customer").count() == audit_rows
    assert Customer.objects.count() == 2 and Tag.objects.count() == 2


def test_update_writes_only_the_cells_that_differ_and_records_them(tenant, manager_user):
    existing = CustomerFactory(
        name="Old Name",
        email="ann@example.com",
        phone="+8613800138000",
        city="Beijing",
        province="Beijing",
        external_id="",
    )
    job = run_import(
        manager_user,
        "email,name,city,province,external id\nANN@example.com,New Name,Shanghai,,EXT-9\n",
        policy="update",
    )
    assert written(job)["customers_updated"] == 1 and written(job)["customers_created"] == 0
    existing.refresh_from_db()
    assert (existing.name, existing.city, existing.external_id) == ("New Name", "Shanghai", "EXT-9")
    assert existing.province == "Beijing", "an empty cell leaves the value as it is"
    event = AuditEvent.objects.get(action="customer.updated_by_import", target_id=str(existing.pk))
    assert event.changes["name"] == {"old": "Old Name", "new": "New Name"}
    assert event.changes["city"] == {"old": "Beijing", "new": "Shanghai"}
    assert "province" not in event.changes and "email" not in event.changes
    assert "newname" in existing.search_text.replace(" ", "")


@pytest.mark.parametrize(
    ("policy", "expected_names", "created", "updated"),
    [
        ("skip", {"Original"}, 0, 0),
        ("update", {"Renamed"}, 0, 1),
        ("create", {"Original", "Renamed"}, 1, 0),
    ],
)
def test_duplicate_policies(tenant, manager_user, policy, expected_names, created, updated):
    CustomerFactory(name="Original", email="dup@example.com", phone="+8613900139000")
    job = run_import(manager_user, "name,phone\nRenamed,139 0013 9000\n", policy=policy)
    assert set(Customer.objects.values_list("name", flat=True)) == expected_names
    assert written(job)["customers_created"] == created
    assert written(job)["customers_updated"] == updated
    if policy == "skip":
        assert job.result["skipped"]["customers"] == 1


def test_matching_prefers_external_id_then_email_then_phone(tenant, manager_user):
    by_external = CustomerFactory(name="By external", email="x@example.com", external_id="E1")
    by_email = CustomerFactory(name="By email", email="ann@example.com", phone="+8613700137000")
    other_system = CustomerFactory(name="Other system", email="bob@example.com", external_id="OTHER")
    content = (
        "external id,email,phone,city\n"
        "E1,ann@example.com,,Xian\n"  # external id wins over the email
        ",ann@example.com,13700137000,Wuhan\n"
        "E2,bob@example.com,,Chengdu\n"  # bob has another external id: a different customer
    )
    job = check(manager_user, content, mapping=["external_id", "email", "phone", "city"], policy="update")
    # bob's row is a new customer (other external id), and a new customer needs a name
    assert job.result["preview"]["errors"] == [[4, "Name", "A name is required to create a new customer."]]
    services.import_confirm(actor=manager_user, job=job, skip_invalid=True)
    services.import_run(job_id=job.pk)
    by_external.refresh_from_db()
    by_email.refresh_from_db()
    other_system.refresh_from_db()
    assert by_external.city == "Xian"
    assert by_email.city == "Wuhan"
    assert other_system.city == "Shanghai"


def test_the_same_customer_twice_in_a_customer_file_is_an_error(tenant, manager_user):
    job = check(manager_user, "name,email\nAnn,ann@example.com\nAnnie,ANN@example.com\n")
    assert job.result["preview"]["errors"] == [[3, "email", "The same customer as row 2."]]


def test_a_customer_in_the_recycle_bin_is_not_silently_updated(tenant, manager_user):
    from django.utils import timezone

    CustomerFactory(name="Binned", email="bin@example.com", deleted_at=timezone.now())
    job = check(manager_user, "name,email\nBack,bin@example.com\n")
    assert job.result["preview"]["errors"][0][:2] == [2, "email"]
    assert "recycle bin" in job.result["preview"]["errors"][0][2]


def test_custom_fields_are_validated_by_type_and_required_ones_are_enforced(tenant, manager_user):
    CustomFieldDefinitionFactory(key="wechat_id", label="微信号", field_type="text", required=True)
    CustomFieldDefinitionFactory(key="level", label="Level", field_type="choice", choices=["gold", "silver"])
    CustomFieldDefinitionFactory(key="visits", label="Visits", field_type="number")
    CustomFieldDefinitionFactory(key="since", label="Member since", field_type="date")
    CustomFieldDefinitionFactory(key="kids", label="Kids", field_type="boolean")
    content = (
        "name,微信号,level,visits,member since,kids\n"
        "Ann,wx_ann,Gold,12,2020-01-02,是\n"
        "Bob,,silver,,,\n"  # required custom field missing
        "Cid,wx_cid,bronze,many,2020-02-30,maybe\n"
    )
    job = check(manager_user, content)
    problems = {(row, column) for row, column, _m in job.result["preview"]["errors"]}
    assert problems == {(3, "微信号"), (4, "level"), (4, "visits"), (4, "member since"), (4, "kids")}
    services.import_confirm(actor=manager_user, job=job, skip_invalid=True)
    services.import_run(job_id=job.pk)
    ann = Customer.objects.get()
    assert ann.custom_fields == {
        "wechat_id": "wx_ann",
        "level": "gold",
        "visits": 12,
        "since": "2020-01-02",
        "kids": True,
    }


def test_an_update_compares_custom_fields_with_the_stored_ones(tenant, manager_user):
    CustomFieldDefinitionFactory(key="level", label="Level", field_type="choice", choices=["gold", "silver"])
    CustomFieldDefinitionFactory(key="visits", label="Visits", field_type="number")
    existing = CustomerFactory(
        name="Ann", email="ann@example.com", external_id="", custom_fields={"level": "gold", "visits": 3}
    )
    same = run_import(manager_user, "email,level,visits\nann@example.com,gold,3\n")
    assert written(same)["customers_updated"] == 0 and same.result["unchanged"]["customers"] == 1

    changed = run_import(manager_user, "email,level,visits\nann@example.com,silver,3\n")
    assert written(changed)["customers_updated"] == 1
    existing.refresh_from_db()
    assert existing.custom_fields == {"level": "silver", "visits": 3}
    event = AuditEvent.objects.get(action="customer.updated_by_import", target_id=str(existing.pk))
    assert event.changes["custom_fields.level"] == {"old": "gold", "new": "silver"}
    assert "custom_fields.visits" not in event.changes


ORDERS = (
    "订单号,下单时间,手机,姓名,商品名称,SKU,数量,单价,金额,渠道\n"
    "SO-1,2024-03-01 10:00,13800138000,王小明,茶叶,T-1,2,50,120,线上\n"
    "SO-1,2024-03-01 10:00,13800138000,王小明,茶杯,C-1,1,20,,线上\n"
    "SO-2,2024-04-01 09:30,13800138000,王小明,茶叶,T-1,1,50,,门店\n"
    "SO-3,2024-04-02,13900139000,李雷,茶壶,P-1,1,300,,\n"
)


def test_orders_with_lines_are_imported_and_customer_figures_refreshed(tenant, manager_user):
    job = run_import(manager_user, ORDERS)
    assert written(job)["orders_created"] == 3
    assert written(job)["lines_created"] == 4
    assert written(job)["customers_created"] == 2
    so1 = Order.objects.get(number="SO-1")
    assert so1.total == Decimal("120.00"), "the given total wins (it may include shipping)"
    assert so1.channel == "online"
    # a time without an offset is the tenant's local time
    assert so1.placed_at == datetime(2024, 3, 1, 10, 0, tzinfo=ZoneInfo(tenant.time_zone))
    assert sorted(so1.lines.values_list("sku", "quantity")) == [
        ("C-1", Decimal("1.00")),
        ("T-1", Decimal("2.00")),
    ]
    assert Order.objects.get(number="SO-2").total == Decimal("50.00"), "no total: the sum of the lines"
    wang = Customer.objects.get(phone="+8613800138000")
    assert wang.orders_count == 2 and wang.total_spent == Decimal("170.00")
    assert wang.first_order_at == so1.placed_at

    again = run_import(manager_user, ORDERS)
    assert written(again) == {
        "customers_created": 0,
        "customers_updated": 0,
        "orders_created": 0,
        "orders_updated": 0,
        "lines_created": 0,
    }
    assert OrderLine.objects.count() == 4


def test_changed_order_lines_are_replaced_on_update(tenant, manager_user):
    run_import(manager_user, ORDERS)
    changed = ORDERS.replace(
        "SO-3,2024-04-02,13900139000,李雷,茶壶,P-1,1,300", "SO-3,2024-04-02,13900139000,李雷,茶壶,P-1,2,300"
    )
    job = run_import(manager_user, changed)
    assert written(job)["orders_updated"] == 1
    so3 = Order.objects.get(number="SO-3")
    assert list(so3.lines.values_list("quantity", flat=True)) == [Decimal("2.00")]
    # The total was not given: updating lines leaves it (an order total is the system's record).
    assert so3.total == Decimal("300.00")


def test_an_order_with_a_bad_row_is_left_out_entirely(tenant, manager_user):
    content = ORDERS.replace(
        "SO-1,2024-03-01 10:00,13800138000,王小明,茶杯,C-1,1,20",
        "SO-1,2024-03-01 10:00,13800138000,王小明,茶杯,C-1,-1,20",
    )
    job = run_import(manager_user, content, skip_invalid=True)
    assert not Order.objects.filter(number="SO-1").exists()
    assert set(Order.objects.values_list("number", flat=True)) == {"SO-2", "SO-3"}
    assert job.result["import"]["invalid_rows"] == 2


def test_a_new_order_needs_a_date(tenant, manager_user):
    job = check(manager_user, "order number,name,phone,total\nX-1,Ann,13800138000,10\n")
    assert job.result["preview"]["errors"] == [[2, "Placed at", "The order date is missing."]]


def test_a_redelivered_import_message_does_not_import_twice(tenant, manager_user):
    job = check(manager_user, GOOD)
    services.import_confirm(actor=manager_user, job=job, skip_invalid=False)
    assert services.import_run(job_id=job.pk) is not None
    assert services.import_run(job_id=job.pk) is None
    assert Customer.objects.count() == 2
    assert AuditEvent.objects.filter(action="customers.imported").count() == 1


def test_sales_staff_cannot_import(tenant, sales_user):
    with pytest.raises(PermissionDenied):
        upload(sales_user, GOOD)


def test_an_import_in_one_tenant_writes_nothing_in_another(tenant_a, tenant_b, manager_user):
    connection.set_tenant(tenant_a)
    run_import(manager_user, GOOD)
    assert Customer.objects.count() == 2
    with schema_context(tenant_b.schema_name):
        assert Customer.objects.count() == 0
        assert Tag.objects.count() == 0
        assert not BackgroundJob.objects.filter(kind="customers.import").exists()
    connection.set_tenant(tenant_a)


def test_xlsx_and_gb18030_files_import_the_same_way(tenant, manager_user):
    from tests.customers.test_import_parsing import xlsx_bytes

    data = xlsx_bytes([["姓名", "手机号", "生日"], ["韩梅梅", 13700137000, date(1992, 2, 2)]])
    job = run_import(manager_user, data, name="客户.xlsx")
    assert written(job)["customers_created"] == 1
    job = run_import(manager_user, "姓名,手机号\n李雷,13600136000\n".encode("gb18030"), name="gb.csv")
    assert written(job)["customers_created"] == 1
    assert set(Customer.objects.values_list("name", "phone")) == {
        ("韩梅梅", "+8613700137000"),
        ("李雷", "+8613600136000"),
    }
    assert Customer.objects.get(name="韩梅梅").birthday == date(1992, 2, 2)


def test_an_unreadable_upload_is_refused_before_a_job_exists(tenant, manager_user):
    for name, data in (("a.csv", b""), ("a.xlsx", b"PK\x03\x04junk"), ("a.csv", b"\x80\x81\xff\xfe\x00")):
        with pytest.raises(ValidationError):
            upload(manager_user, data, name)
    assert not BackgroundJob.objects.filter(kind="customers.import").exists()


def test_mapping_problems_are_refused(tenant, manager_user):
    job = upload(manager_user, "a,b\n1,2\n")
    assert job.params["mapping"] == ["", ""]
    with pytest.raises(ValidationError, match="at least one column"):
        services.import_set_mapping(actor=manager_user, job=job, mapping=["", ""], policy="update")
    with pytest.raises(ValidationError, match="more than one column"):
        services.import_set_mapping(actor=manager_user, job=job, mapping=["name", "name"], policy="update")
    with pytest.raises(ValidationError, match="Order number"):
        services.import_set_mapping(actor=manager_user, job=job, mapping=["name", "total"], policy="update")


def test_owner_column_and_default_owner(tenant, manager_user, sales_user, sales_user2):
    job = run_import(
        manager_user,
        f"name,owner\nAnn,{sales_user2.email.upper()}\nBob,\n",
        owner_id=sales_user.pk,
    )
    assert written(job)["customers_created"] == 2
    assert Customer.objects.get(name="Ann").owner == sales_user2
    assert Customer.objects.get(name="Bob").owner == sales_user
    job = check(manager_user, "name,owner\nCid,nobody@nowhere.test\n")
    assert "No active user" in job.result["preview"]["errors"][0][2]


def test_cancel_and_reupload_writes_nothing(tenant, manager_user):
    job = check(manager_user, MALFORMED)
    services.import_cancel(actor=manager_user, job=job)
    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.CANCELLED and job.params["stage"] == "cancelled"
    with pytest.raises(ValidationError):
        services.import_confirm(actor=manager_user, job=job, skip_invalid=True)
    assert Customer.objects.count() == 0
    assert CustomFieldDefinition.objects.count() == 0


def test_every_import_writes_the_full_search_text_with_the_rows_and_sends_no_follow_up(
    tenant, manager_user, monkeypatch, django_capture_on_commit_callbacks
):
    """The pinyin of Chinese names is computed by the import itself (by the same function as every
    other write path), so nothing rewrites the rows after a big import."""
    from celery.app.task import Task

    from customers.search import build_search_text

    sent = []

    def record(task, args=None, kwargs=None, **options):
        sent.append(task.name)
        return SimpleNamespace(id="")

    monkeypatch.setattr(Task, "apply_async", record)  # nothing reaches a broker
    with django_capture_on_commit_callbacks(execute=True):
        job = run_import(manager_user, GOOD)
    assert written(job)["customers_created"] == 2
    for customer in Customer.objects.all():
        assert customer.search_text == build_search_text(
            name=customer.name, email=customer.email, phone=customer.phone, external_id=customer.external_id
        )
    wang = Customer.objects.get(external_id="M-1")
    assert "wangxiaoming" in wang.search_text and "wxm" in wang.search_text
    assert "customers.imports.tasks.search_text_refresh_task" not in sent

    # A changed name gets its new text in the same write.
    with django_capture_on_commit_callbacks(execute=True):
        run_import(manager_user, "外部编号,姓名\nM-1,陳大文\n")
    wang.refresh_from_db()
    assert wang.name == "陳大文" and "chendawen" in wang.search_text and "陈大文" in wang.search_text
    assert "customers.imports.tasks.search_text_refresh_task" not in sent


def test_the_search_text_follow_up_left_from_earlier_versions_still_runs_once(tenant, manager_user):
    """Messages queued by an earlier version (which left the pinyin to a follow-up) still complete."""
    from customers.search import build_search_text

    run_import(manager_user, GOOD)
    wang = Customer.objects.get(external_id="M-1")
    Customer.objects.filter(pk=wang.pk).update(search_text="王小明 | m-1")  # as the old import left it
    runs = services.id_runs([wang.pk])
    assert services.search_text_refresh(runs=runs) == 1
    wang.refresh_from_db()
    assert wang.search_text == build_search_text(
        name=wang.name, email=wang.email, phone=wang.phone, external_id=wang.external_id
    )
    assert services.search_text_refresh(runs=runs) == 0, "a re-run changes nothing"


def test_id_runs():
    assert services.id_runs([5, 1, 2, 3, 9, 10]) == [[1, 3], [5, 5], [9, 10]]
    assert services.id_runs([]) == []


def test_a_birthday_in_the_future_is_refused(tenant, manager_user):
    job = check(manager_user, "name,birthday\nAnn,2999-01-01\nBob,2000-01-01\n")
    assert job.result["preview"]["errors"] == [[2, "birthday", "A birthday cannot be in the future."]]


def test_two_customers_cannot_be_given_the_same_external_id(tenant, manager_user):
    CustomerFactory(name="Ann", email="ann@example.com", external_id="")
    CustomerFactory(name="Bob", email="bob@example.com", phone="+8613900139000", external_id="")
    job = check(manager_user, "email,external id\nann@example.com,X-1\nbob@example.com,X-1\n")
    assert job.result["preview"]["errors"] == [
        [3, "external id", "Row 2 gives this external id to another customer."]
    ]
    services.import_confirm(actor=manager_user, job=job, skip_invalid=True)
    services.import_run(job_id=job.pk)
    assert dict(Customer.objects.values_list("name", "external_id")) == {"Ann": "X-1", "Bob": ""}


def test_the_preview_speaks_the_language_of_the_user_who_started_it(tenant, manager_user):
    from django.utils import translation

    with translation.override("zh-hans"):
        job = upload(manager_user, "name,email\nAnn,not-an-email\n")
        services.import_set_mapping(
            actor=manager_user, job=job, mapping=job.params["mapping"], policy="update"
        )
    assert job.params["language"] == "zh-hans"
    with translation.override("en"):
        services.import_validate(job_id=job.pk)  # the worker runs without a language of its own
    job.refresh_from_db()
    with translation.override("zh-hans"):
        expected = translation.gettext("“%(value)s” is not a valid email address.") % {
            "value": "not-an-email"
        }
    assert job.result["preview"]["errors"][0][2] == expected


def test_rows_with_the_wrong_number_of_columns_are_row_errors_and_nothing_is_written(tenant, manager_user):
    customers_before = Customer.objects.count()
    content = (
        "name,email,city\n"
        "Good Person,good@example.com,Shanghai\n"  # row 2: fine
        "Short Row,short@example.com\n"  # row 3: one column missing (would be padded)
        "Long Row,long@example.com,Beijing,extra\n"  # row 4: one column too many (would be cut)
        "Padded Row,padded@example.com,Paris,,\n"  # row 5: trailing empty cells are fine
    )
    job = check(manager_user, content)
    preview = job.result["preview"]
    problems = {(row, column): message for row, column, message in preview["errors"]}
    assert problems == {(3, ""): "Expected 3 columns, found 2.", (4, ""): "Expected 3 columns, found 4."}
    assert preview["valid_rows"] == 2 and preview["invalid_rows"] == 2
    with pytest.raises(ValidationError):
        services.import_confirm(actor=manager_user, job=job, skip_invalid=False)
    assert Customer.objects.count() == customers_before


@pytest.mark.parametrize("value", ["1e400000", "1e10000000", "9" * 10_000, "nan", "inf", "1_000"])
def test_abusive_numbers_in_cells_are_row_errors(tenant, manager_user, value):
    import time

    CustomFieldDefinitionFactory(key="visits", label="Visits", field_type="number")
    content = (
        "name,email,order_number,placed_at,total,visits\n"
        "Ann,ann@example.com,A-1,2024-01-02 10:00,12.50,3\n"
        f"Bob,bob@example.com,B-1,2024-01-02 10:00,{value},{value}\n"
    )
    started = time.perf_counter()
    job = check(manager_user, content)
    assert time.perf_counter() - started < 10
    problems = {(row, column) for row, column, _message in job.result["preview"]["errors"]}
    assert problems == {(3, "total"), (3, "visits")}, job.result["preview"]["errors"]
    assert not Customer.objects.filter(name="Bob").exists()


def test_minus_zero_and_spaces_in_number_cells(tenant, manager_user):
    CustomFieldDefinitionFactory(key="visits", label="Visits", field_type="number")
    job = run_import(manager_user, "name,email,visits\nAnn,ann@example.com, -0 \n")
    assert job.params["stage"] == "done", job.message
    assert Customer.objects.get(name="Ann").custom_fields == {"visits": 0}


def test_a_language_column_is_read_in_either_language_and_refused_when_unknown(
    tenant, manager_user, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    job = run_import(
        manager_user,
        "姓名,邮箱,语言\n王芳,wf@example.com,中文\nAnn,ann@example.com,English\nBo,bo@example.com,\n",
    )
    assert written(job)["customers_created"] == 3
    assert dict(Customer.objects.values_list("name", "language")) == {
        "王芳": "zh-hans",
        "Ann": "en",
        "Bo": "",
    }
    bad = check(manager_user, "姓名,邮箱,语言\nCy,cy@example.com,Klingon\n")
    problems = bad.result["preview"]["errors"]
    assert problems and "Klingon" in str(problems) and "语言" in str(problems)


def test_a_csv_past_the_other_imports_row_bound_is_imported_and_one_past_its_own_is_refused(
    tenant, manager_user, settings
):
    settings.IMPORT_MAX_ROWS = 2  # XLSX and the other imports
    settings.IMPORT_MAX_CSV_ROWS = 5
    rows = "".join(f"C-{n},Customer {n},c{n}@example.com\n" for n in range(5))
    job = run_import(manager_user, "外部编号,姓名,邮箱\n" + rows)
    assert written(job)["customers_created"] == 5

    jobs = BackgroundJob.objects.count()
    audit = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as refused:
        upload(manager_user, "外部编号,姓名,邮箱\n" + rows + "C-9,One too many,c9@example.com\n")
    assert "more than 5 data rows" in " ".join(refused.value.messages)
    assert Customer.objects.count() == 5 and BackgroundJob.objects.count() == jobs
    assert AuditEvent.objects.count() == audit


def test_a_file_that_grew_past_the_bound_after_the_upload_writes_nothing(tenant, manager_user, settings):
    """The worker reads the stored file with the same bounds: refused with the message, nothing written."""
    settings.IMPORT_MAX_CSV_ROWS = 3
    job = check(manager_user, "姓名,邮箱\nAnn,ann@example.com\nBob,bob@example.com\n")
    services.import_confirm(actor=manager_user, job=job, skip_invalid=False)
    settings.IMPORT_MAX_CSV_ROWS = 1
    services.import_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.params["stage"] == "failed" and "more than 1 data rows" in job.message
    assert Customer.objects.count() == 0


def test_a_big_import_tells_the_planner_the_customer_tables_new_size(tenant, manager_user, monkeypatch):
    """Inside the import's transaction (autovacuum cannot see the rows yet), so the queries that follow
    and the list's total estimate do not plan for the table as it was."""
    monkeypatch.setattr(services, "ANALYZE_AFTER_ROWS", 2)
    run_import(manager_user, GOOD)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [Customer._meta.db_table])
        assert cursor.fetchone()[0] == 2
