"""Job messages are stored as a key and parameters and translated when shown (issue 15): a user reads
a job's progress in their own language, not in the language the worker wrote it in."""

import re
from pathlib import Path

import pytest
from django.utils import translation
from django.utils.translation import gettext_noop

from crm.jobs.messages import JobMessage, shown
from crm.jobs.models import BackgroundJob
from crm.jobs.runner import run_job
from crm.jobs.services import job_create

REPO = Path(__file__).resolve().parents[2]


def test_progress_written_by_a_chinese_worker_reads_in_the_viewers_language(tenant):
    job = job_create(kind="test.messages", params={"language": "zh-hans"})

    def body(run):
        run.progress(40, JobMessage(gettext_noop("Writing scores")))
        job_now = BackgroundJob.objects.get(pk=run.job_id)
        assert job_now.message == "Writing scores"  # the key, not the worker's Chinese
        run.succeed(message=JobMessage(gettext_noop("%(count)d customers"), count=200000))

    run_job(job.pk, body, failure_message=gettext_noop("The export failed. Please try again."))
    job.refresh_from_db()
    assert (job.message, job.message_params) == ("%(count)d customers", {"count": 200000})
    with translation.override("en"):
        assert job.shown_message == "200,000 customers"
    with translation.override("zh-hans"):
        assert job.shown_message == "200,000 位客户"


def test_a_failure_message_is_stored_as_its_key(tenant):
    job = job_create(kind="test.messages", params={"language": "zh-hans"})

    def body(run):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_job(job.pk, body, failure_message=gettext_noop("The export failed. Please try again."))
    job.refresh_from_db()
    assert job.message == "The export failed. Please try again."
    with translation.override("zh-hans"):
        assert job.shown_message != job.message and "导出" in job.shown_message


def test_the_job_page_shows_the_viewers_language(client_for, sales_user, tenant):
    job = job_create(kind="customers.export", created_by=sales_user, params={"language": "zh-hans"})
    BackgroundJob.objects.filter(pk=job.pk).update(
        status=BackgroundJob.Status.RUNNING, message="Writing rows", message_params={}
    )
    sales_user.language = "en"
    sales_user.save(update_fields=["language"])
    page = client_for(sales_user).get(f"/jobs/{job.pk}/").content.decode()
    assert "Writing rows" in page and "正在" not in page and "写入" not in page


def test_plain_text_and_bad_parameters_show_as_stored():
    assert shown("已导入", None) == "已导入"
    assert shown("%(count)d customers", {"other": 1}) == "%(count)d customers"
    assert shown("", {}) == ""


def test_job_bodies_report_keys_not_translated_text():
    """run.progress/succeed messages are JobMessage(gettext_noop(...)), never _("...") in the worker."""
    offenders = []
    pattern = re.compile(r"(?:\.progress\(|report_progress\(|run\.fail\(|(?<![a-z_])message=)[^\n]*\b_t?\(\"")
    for path in REPO.rglob("*.py"):
        parts = path.relative_to(REPO).parts
        if parts[0] in {".venv", "tests"} or "migrations" in parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []


def test_a_lazy_failure_message_is_stored_as_its_key_too(tenant):
    from django.utils.translation import gettext_lazy

    job = job_create(kind="test.messages", params={"language": "zh-hans"})

    def body(run):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_job(job.pk, body, failure_message=gettext_lazy("The export failed. Please try again."))
    job.refresh_from_db()
    assert job.message == "The export failed. Please try again."


def test_a_text_parameter_is_translated_too():
    with translation.override("zh-hans"):
        text = shown("%(count)d %(noun)s imported.", {"count": 1200, "noun__msgid": "interactions"})
    assert "1,200" in text and "interactions" not in text
