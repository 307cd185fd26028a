"""Two submissions of one link at the same moment, on two database connections: the invitation's row
lock makes the second wait and then see the first answer, so it is refused cleanly (the "already
answered" page), and there is one response and one detractor follow-up."""

import threading
import time

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from interactions.followups.models import FollowUp
from interactions.surveys import services
from interactions.surveys.models import SurveyResponse, SurveyTemplate
from tests.factories import CustomerFactory

pytestmark = pytest.mark.slow


def test_two_simultaneous_answers_make_one_response_and_one_follow_up(
    committed_tenant, django_db_blocker, monkeypatch
):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        with tenant_context(tenant):
            from crm.accounts.models import User

            owner = User.objects.filter(role="sales").first()
            customer = CustomerFactory(owner=owner, email="race@survey.test")
            invitation = services._invite(
                template=SurveyTemplate.objects.get(kind="nps"),
                customer=customer,
                source="bulk",
                source_key="r:1",
            )
        real = services._agent_and_context

        def slow(inv):  # runs after the lock and the state check: hold the window open
            time.sleep(0.5)
            return real(inv)

        monkeypatch.setattr(services, "_agent_and_context", slow)
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def submit(score: int) -> None:
            connection.set_tenant(tenant)
            try:
                barrier.wait()
                services.response_submit(invitation=invitation, score=score)
                outcomes.append("answered")
            except services.LinkRefused:
                outcomes.append("refused")
            except Exception as error:  # an IntegrityError would mean no lock: a 500 for the customer
                outcomes.append(type(error).__name__)
            finally:
                connection.close()

        threads = [threading.Thread(target=submit, args=(score,)) for score in (2, 3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        with tenant_context(tenant):
            assert sorted(outcomes) == ["answered", "refused"]
            assert SurveyResponse.objects.count() == 1
            response = SurveyResponse.objects.get()
            assert FollowUp.objects.filter(source_key=f"survey:{response.pk}").count() == 1
            assert FollowUp.objects.filter(source_key__startswith="survey:").count() == 1
        connection.set_schema_to_public()
