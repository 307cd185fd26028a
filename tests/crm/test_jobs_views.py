"""The job progress fragment: polling, and the page reload once a job that asked for it succeeds."""

from django.urls import reverse

from crm.jobs.models import BackgroundJob
from crm.jobs.services import job_create


def poll(client, job, **params):
    return client.get(reverse("jobs:status", args=[job.pk]), params, HTTP_HX_REQUEST="true")


def test_a_running_job_keeps_polling_and_carries_the_reload_wish(tenant, manager_client, manager_user):
    job = job_create(kind="segmentation.recompute", created_by=manager_user)
    BackgroundJob.objects.filter(pk=job.pk).update(status=BackgroundJob.Status.RUNNING, progress=40)
    response = poll(manager_client, job, then="reload")
    body = response.content.decode()
    assert response.status_code == 200 and "HX-Refresh" not in response.headers
    assert f"{reverse('jobs:status', args=[job.pk])}?then=reload" in body and "40%" in body
    assert "{#" not in body and "Include with" not in body  # the template's own comment stays hidden
    plain = poll(manager_client, job).content.decode()
    assert "then=reload" not in plain and 'hx-trigger="every 1s"' in plain


def test_the_poll_that_sees_success_reloads_the_page_only_when_asked(tenant, manager_client, manager_user):
    job = job_create(kind="segmentation.recompute", created_by=manager_user)
    BackgroundJob.objects.filter(pk=job.pk).update(status=BackgroundJob.Status.SUCCEEDED, progress=100)
    assert poll(manager_client, job, then="reload").headers.get("HX-Refresh") == "true"
    finished = poll(manager_client, job)
    assert "HX-Refresh" not in finished.headers and "hx-trigger" not in finished.content.decode()
    BackgroundJob.objects.filter(pk=job.pk).update(status=BackgroundJob.Status.FAILED)
    assert "HX-Refresh" not in poll(manager_client, job, then="reload").headers  # the error stays in view
