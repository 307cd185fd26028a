"""New customers are written in chunks (customers.imports.writing): the next chunk's rows and search
text are made while a thread on the same connection inserts the one before (crm.overlap). Every
row once, with its search text and audit row; a chunk that fails leaves nothing of the others."""

import io

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from crm.audit.models import AuditEvent
from customers.imports import parsing, services, writing
from customers.imports.columns import guess_mapping
from customers.imports.planning import ImportOptions
from customers.models import Customer, Tag
from customers.search import build_search_text
from tests.factories import CustomerFactory

from .test_import_services import check, run_import

NAMES = ["王小明", "陳大文", "Anna Smith", "李雷", "韩梅梅", "张伟", "Ben Brown", "刘洋", "赵敏", "周杰"]


def _file(first: int = 0) -> str:
    lines = ["姓名,手机,邮箱,外部编号,标签"]
    for i, name in enumerate(NAMES):
        tag = "VIP" if i % 3 == 0 else ""
        lines.append(f"{name},139{first + i:08d},C{first + i}@Example.com,C-{first + i},{tag}")
    return "\n".join(lines) + "\n"


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def test_new_customers_written_in_chunks_are_each_row_once_with_search_text_and_audit_row(
    tenant, manager_user, monkeypatch
):
    monkeypatch.setattr(writing, "NEW_CUSTOMERS_CHUNK", 3)  # four chunks, the last one short
    job = run_import(manager_user, _file())
    assert job.result["written"]["customers_created"] == len(NAMES)

    customers = list(Customer.objects.order_by("id"))
    # one row each, in file order (ids come from the sequence in file order)
    assert [c.external_id for c in customers] == [f"C-{i}" for i in range(len(NAMES))]
    for customer in customers:
        assert customer.email == customer.email.lower()
        assert customer.search_text == build_search_text(
            name=customer.name, email=customer.email, phone=customer.phone, external_id=customer.external_id
        )
        assert customer.created_by_id == manager_user.pk
    assert "chendawen" in Customer.objects.get(external_id="C-1").search_text

    audit = {
        int(event.target_id): event.changes["import_row"]["new"]
        for event in AuditEvent.objects.filter(action="customer.imported")
    }
    assert audit == {c.pk: row for row, c in enumerate(customers, start=2)}  # header is row 1
    vip = Tag.objects.get(name="VIP")
    assert sorted(vip.customers.values_list("external_id", flat=True)) == ["C-0", "C-3", "C-6", "C-9"]


def test_a_chunk_that_fails_leaves_no_customer_of_the_chunks_before(tenant, manager_user, monkeypatch):
    """The plan is made, then another writer takes the external id of the file's 8th row: the third
    chunk's INSERT fails in the thread, the error reaches the caller, and its rollback takes the
    first two chunks with it."""
    monkeypatch.setattr(writing, "NEW_CUSTOMERS_CHUNK", 3)
    parsed = parsing.parse_upload(io.BytesIO(_file().encode()), "customers.csv")
    mapping = guess_mapping(parsed.headers, [])
    outcome = services.import_analyse(parsed, mapping=mapping, options=ImportOptions())
    assert not outcome.errors and len(outcome.plan.new_customers) == len(NAMES)
    CustomerFactory(name="Already here", external_id="C-7")

    with pytest.raises(IntegrityError), transaction.atomic():
        writing.write_plan(outcome.plan, actor=manager_user, job_id=None, now=timezone.now())
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["C-7"]
    assert not AuditEvent.objects.filter(action="customer.imported").exists()


# --- a customer list checked, planned and written chunk by chunk (services._write_customer_list) ----

MIXED = (
    "姓名,手机,邮箱,外部编号,生日,标签\n"
    "Old Renamed,13900000001,old1@example.com,,,\n"  # 2: existing, by e-mail: renamed
    "新客甲,13911110001,new1@example.com,N-1,,VIP\n"  # 3: new
    "新客甲又,13911110009,NEW1@example.com,,,\n"  # 4: the customer of row 3 again: error
    "坏日期,13911110002,bad@example.com,N-2,1990-13-45,\n"  # 5: no such date: error
    "新客乙,13911110003,new2@example.com,N-3,1991-02-03,老客户\n"  # 6: new
    "Old Two,13900000002,,,,\n"  # 7: existing, by phone: unchanged
    "Old Three,,,X-3,,newsletter\n"  # 8: existing, by external id: a tag more
    "冒名,13911110004,old1@example.com,X-3,,\n"  # 9: the customer of row 8 again: error
    "Binned Back,13900000004,binned@example.com,,,\n"  # 10: in the recycle bin: error
    "新客丙,13911110005,new3@example.com,N-4,,VIP\n"  # 11: new
)


def _existing():
    CustomerFactory(name="Old One", email="old1@example.com", phone="+8613900000001")
    CustomerFactory(name="Old Two", phone="+8613900000002")
    CustomerFactory(name="Old Three", external_id="X-3")
    CustomerFactory(name="Binned", email="binned@example.com", deleted_at=timezone.now())


def _plan_facts(plan) -> dict:
    return {
        "errors": [(e.row, e.column, e.message) for e in plan.errors],
        "invalid": sorted(plan.invalid_rows),
        "counts": plan.counts,
        "new": [(n.row, n.fields, n.custom, n.tags) for n in plan.new_customers],
        "changes": [
            (c.id, c.row, c.fields, c.custom_patch, c.tags_add, c.diff) for c in plan.customer_changes
        ],
    }


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 2, then 3 rows, and inserts of 2 customers: MIXED spans four chunks."""
    monkeypatch.setattr(services, "FIRST_CHUNK_ROWS", 2)
    monkeypatch.setattr(services, "CHUNK_ROWS", 3)
    monkeypatch.setattr(writing, "NEW_CUSTOMERS_CHUNK", 2)


def test_a_customer_list_planned_in_chunks_gets_the_plan_of_the_whole_file(
    tenant, manager_user, small_chunks
):
    _existing()
    parsed = parsing.parse_upload(io.BytesIO(MIXED.encode()), "customers.csv")
    mapping = guess_mapping(parsed.headers, [])
    whole = services.import_analyse(parsed, mapping=mapping, options=ImportOptions())
    assert len(whole.errors) == 4 and len(whole.plan.new_customers) == 3

    with transaction.atomic():
        chunked = services.import_rows(
            parsed, actor=manager_user, mapping=mapping, options=ImportOptions(), skip_invalid=True
        )
        assert _plan_facts(chunked.plan) == _plan_facts(whole.plan)
        transaction.set_rollback(True)


def test_a_customer_list_written_in_chunks_writes_the_valid_rows(tenant, manager_user, small_chunks):
    _existing()
    before = set(Customer._base_manager.values_list("id", flat=True))
    job = run_import(manager_user, MIXED, skip_invalid=True)
    assert job.params["stage"] == "done", job.message
    assert job.result["written"] == {
        "customers_created": 3,
        "customers_updated": 2,
        "orders_created": 0,
        "orders_updated": 0,
        "lines_created": 0,
    }
    created = list(Customer.objects.exclude(id__in=before).order_by("id"))
    assert [(c.external_id, c.name) for c in created] == [
        ("N-1", "新客甲"),
        ("N-3", "新客乙"),
        ("N-4", "新客丙"),
    ]
    assert created[1].birthday.isoformat() == "1991-02-03"
    for customer in created:
        assert customer.search_text == build_search_text(
            name=customer.name, email=customer.email, phone=customer.phone, external_id=customer.external_id
        )
    assert Customer.objects.get(email="old1@example.com").name == "Old Renamed"
    assert list(Customer.objects.get(external_id="X-3").tags.values_list("name", flat=True)) == ["newsletter"]
    assert sorted(Tag.objects.get(name="VIP").customers.values_list("external_id", flat=True)) == [
        "N-1",
        "N-4",
    ]
    audit = AuditEvent.objects.filter(action="customer.imported")
    assert sorted(int(e.target_id) for e in audit) == [c.pk for c in created]
    assert sorted(e.changes["import_row"]["new"] for e in audit) == [3, 6, 11]


def test_a_problem_found_after_chunks_were_written_leaves_nothing_written(tenant, manager_user, small_chunks):
    """The preview was clean; before the import runs, the customer the file's last row matches is
    moved to the recycle bin. By the time the import meets that row, the chunks before it have been
    inserted: all of it is rolled back, the rows after it are still checked, and the job goes back
    to its preview with the problem."""
    rows = ["姓名,手机,邮箱,外部编号"]
    rows += [f"客户{i},139{i:08d},c{i}@example.com,C-{i}" for i in range(9)]
    rows.append("Old One,13900000001,old1@example.com,")  # row 11: the customer binned meanwhile
    rows.append("最后,13988888888,last@example.com,C-last")
    old = CustomerFactory(name="Old One", email="old1@example.com")
    job = check(manager_user, "\n".join(rows) + "\n")
    assert job.result["preview"]["errors_total"] == 0, job.result["preview"]
    Customer.objects.filter(pk=old.pk).update(deleted_at=timezone.now())
    tags_before = Tag.objects.count()

    # import_rows itself writes nothing, within the caller's transaction
    parsed = parsing.parse_upload(io.BytesIO(("\n".join(rows) + "\n").encode()), "customers.csv")
    with transaction.atomic():
        outcome = services.import_rows(
            parsed,
            actor=manager_user,
            mapping=job.params["mapping"],
            options=ImportOptions(),
            skip_invalid=False,
        )
        assert [e.row for e in outcome.errors] == [11]
        assert list(Customer._base_manager.values_list("pk", flat=True)) == [old.pk]
        assert not AuditEvent.objects.filter(action="customer.imported").exists()

    services.import_confirm(actor=manager_user, job=job, skip_invalid=False)
    services.import_run(job_id=job.pk)
    job.refresh_from_db()

    assert job.params["stage"] == "preview"
    assert [e[:2] for e in job.result["preview"]["errors"]] == [[11, "邮箱"]]
    assert list(Customer._base_manager.values_list("pk", flat=True)) == [old.pk]
    assert not AuditEvent.objects.filter(action="customer.imported").exists()
    assert Tag.objects.count() == tags_before


def test_a_new_customer_column_the_writer_was_not_told_of_is_refused(tenant, manager_user):
    """The writer stages the columns the planner says a new customer may set; a customer setting
    another one would lose that value, so it is refused instead."""
    plan = services.import_analyse(
        parsing.parse_upload(io.BytesIO(_file().encode()), "customers.csv"),
        mapping=guess_mapping(["姓名", "手机", "邮箱", "外部编号", "标签"], []),
        options=ImportOptions(),
    ).plan
    with (
        pytest.raises(ValueError, match="city"),
        transaction.atomic(),
        writing.NewCustomerWriter(
            given={"name", "phone", "email", "external_id"},
            actor=None,
            job_id=None,
            now=timezone.now(),
            timings={},
        ) as writer,
    ):
        plan.new_customers[0].fields["city"] = "上海"
        writer.add(plan.new_customers)
