import pytest

from interactions.service import services as service
from interactions.surveys.models import SurveyKind, SurveyTemplate
from tests.factories import CustomerFactory


@pytest.fixture
def csat(tenant):
    return SurveyTemplate.objects.get(kind=SurveyKind.CSAT, on_ticket_resolved=True)


@pytest.fixture
def nps(tenant):
    return SurveyTemplate.objects.get(kind=SurveyKind.NPS)


@pytest.fixture
def resolved_ticket(tenant, users, django_capture_on_commit_callbacks):
    """A ticket of the sales user's customer, assigned to them and resolved (the trigger has run)."""

    def make(customer=None, email="buyer@survey.test"):
        customer = customer or CustomerFactory(owner=users["sales"], email=email)
        ticket = service.ticket_open(
            actor=users["sales"], customer=customer, subject="Parcel late", assignee=users["sales"]
        )
        with django_capture_on_commit_callbacks(execute=True):
            service.ticket_resolve(actor=users["sales"], ticket=ticket)
        return ticket

    return make
