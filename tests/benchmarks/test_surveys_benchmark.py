"""Survey invitations at scale against a real local SMTP server (aiosmtpd) and a real Celery worker:
a bulk send of one survey to a saved segment of 10,000 consenting customers (plus 1,000 without
consent, who must get nothing), from the job's start to the last invitation marked sent (target: under
60 s). Also reported: how long the job took to make the invitations, and resends.

Run with `make bench ARGS="-k surveys"`; results go to bench-results.json.
"""

import os
import time

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from crm.accounts.models import User
from crm.jobs.models import BackgroundJob
from customers.models import Customer
from interactions.surveys import services
from interactions.surveys.models import SurveyInvitation, SurveyTemplate
from segmentation.models import Segment

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]

INVITATIONS = int(os.environ.get("SURVEYS_BENCH_INVITATIONS", "10000"))


def test_10000_survey_invitations_emailed(
    committed_tenant, celery_worker_factory, smtp_server, django_db_blocker, record_benchmark
):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        celery_worker_factory(extra_env=smtp_server.worker_env)
        with tenant_context(tenant):
            Customer.objects.bulk_create(
                [
                    Customer(
                        name=f"Bench {i}", email=f"s{i}@bench.test", city="Benchville", email_consent=True
                    )
                    for i in range(INVITATIONS)
                ]
                + [
                    Customer(name=f"No {i}", email=f"n{i}@bench.test", city="Benchville", email_consent=False)
                    for i in range(1000)
                ],
                batch_size=5000,
            )
            manager = User.objects.get(email=f"manager@{tenant.slug}.test")
            rules = {
                "op": "and",
                "rules": [{"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Benchville"}]}],
            }
            segment = Segment.objects.create(name="Bench", rules=rules, is_shared=True, created_by=manager)
            template = SurveyTemplate.objects.get(kind="nps")
            started = time.monotonic()
            job = services.bulk_send_start(
                actor=manager, template=template, segment=segment
            )  # queued on commit
            job_seconds = None
            deadline = started + 240
            while time.monotonic() < deadline:
                if job_seconds is None:
                    job.refresh_from_db()
                    if job.status == BackgroundJob.Status.SUCCEEDED:
                        job_seconds = time.monotonic() - started
                    assert job.status != BackgroundJob.Status.FAILED, job.message
                elif not SurveyInvitation.objects.filter(sent_at__isnull=True).exists():
                    break
                time.sleep(0.25)
            total_seconds = time.monotonic() - started
            invited = SurveyInvitation.objects.count()
            sent = SurveyInvitation.objects.filter(sent_at__isnull=False).count()
            resends = SurveyInvitation.objects.filter(attempts__gt=1).count()
            without_consent = SurveyInvitation.objects.filter(customer__email_consent=False).count()
        connection.set_schema_to_public()
    received = len(smtp_server.wait_for(INVITATIONS, seconds=10))
    load = os.getloadavg()
    figures = record_benchmark(
        f"surveys_{INVITATIONS}_invitations",
        invitations_made_seconds=round(job_seconds or -1, 2),
        all_sent_seconds=round(total_seconds, 2),
        invited=invited,
        sent=sent,
        received_by_smtp=received,
        resends=resends,
        load_average=[round(x, 1) for x in load],
    )
    print(figures)
    assert without_consent == 0
    assert invited == sent == received == INVITATIONS
    assert total_seconds < 60
