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

from .test_import_services import run_import

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
