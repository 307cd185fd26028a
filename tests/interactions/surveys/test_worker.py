"""Through a real Celery worker and a real SMTP server (aiosmtpd): resolving a ticket e-mails exactly
one survey invitation, with its stable Message-ID and a link that opens the answer page; resolving the
ticket again sends nothing more."""

import time

import pytest
from django.db import connection
from django.test import Client
from django_tenants.utils import tenant_context

from crm.accounts.models import User
from interactions.service import services as service
from interactions.surveys.models import SurveyInvitation
from tests.conftest import tenant_host
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]


def _sent(tenant) -> list[tuple[int, bool]]:
    with tenant_context(tenant):
        return list(SurveyInvitation.objects.values_list("pk", "sent_at"))


def test_resolving_a_ticket_emails_one_invitation_through_a_worker(
    committed_tenant, celery_worker_factory, smtp_server, django_db_blocker
):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        celery_worker_factory(extra_env=smtp_server.worker_env)
        with tenant_context(tenant):
            agent = User.objects.filter(is_active=True, role="sales").first()
            customer = CustomerFactory(owner=agent, email="worker-buyer@survey.test", name="Worker Buyer")
            ticket = service.ticket_open(actor=agent, customer=customer, subject="Late", assignee=agent)
            # committed: ticket_resolved fires on commit, the invitation is made and its send queued
            service.ticket_resolve(actor=agent, ticket=ticket)
        messages = smtp_server.wait_for(1, seconds=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(sent for _pk, sent in _sent(tenant)):
            time.sleep(0.2)
        with tenant_context(tenant):
            invitation = SurveyInvitation.objects.get()
            assert invitation.sent_at is not None and invitation.ticket_id == ticket.pk
            service.ticket_reopen(actor=agent, ticket=ticket)
            service.ticket_resolve(actor=agent, ticket=ticket)
            assert SurveyInvitation.objects.count() == 1
            message_id = invitation.message_id
        time.sleep(3)  # anything the second resolution might have sent would be here by now
        connection.set_schema_to_public()

    assert len(smtp_server.messages) == 1
    message = messages[0]
    assert message["To"] == "worker-buyer@survey.test"
    assert message["Message-ID"] == message_id
    body = message.get_body(preferencelist=("plain",)).get_content()
    link = next(word for word in body.split() if "/surveys/answer/" in word)
    path = link.split(tenant_host(tenant), 1)[1]
    with django_db_blocker.unblock():
        page = Client(HTTP_HOST=tenant_host(tenant)).get(path)
    assert page.status_code == 200 and b'data-testid="survey-form"' in page.content
