"""Signed single-use survey links on the public page: a forged or changed link, a replayed one, an
expired one and another tenant's link each get their clear page and write nothing; input is bounded."""

from datetime import timedelta

import pytest
from django.core import signing
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.audit.models import AuditEvent
from interactions.surveys import services
from interactions.surveys.models import SurveyInvitation, SurveyResponse
from tests.conftest import tenant_host
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def invitation(tenant, users, nps):
    customer = CustomerFactory(owner=users["sales"], email="link@survey.test")
    return services._invite(template=nps, customer=customer, source="bulk", source_key="bulk:test:1")


def _url(token: str) -> str:
    return reverse("surveys:answer", kwargs={"token": token})


def _nothing_written(invitation) -> None:
    invitation.refresh_from_db()
    assert invitation.answered_at is None
    assert not SurveyResponse.objects.exists()
    assert not AuditEvent.objects.filter(action="surveys.answered").exists()


def test_a_good_link_answers_once_then_says_already_answered(invitation, anon_client):
    url = _url(services.invitation_token(invitation))
    page = anon_client.get(url)
    assert page.status_code == 200
    assert "How likely are you to recommend us" in page.content.decode()
    done = anon_client.post(url, {"score": "9", "comment": "Great"})
    assert done.status_code == 302 and done["Location"].endswith("?done=1")
    assert anon_client.get(done["Location"]).status_code == 200
    response = SurveyResponse.objects.get()
    assert (response.score, response.comment, response.customer_id) == (9, "Great", invitation.customer_id)
    # replay: the same link again, by GET and by POST, changes nothing
    again = anon_client.get(url)
    assert again.status_code == 409 and 'data-testid="survey-answered"' in again.content.decode()
    replay = anon_client.post(url, {"score": "0", "comment": "changed my mind"})
    assert replay.status_code == 409
    assert SurveyResponse.objects.get().score == 9


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
        lambda t: "x" + t,  # payload changed
        lambda t: t.split(":")[0],  # signature cut off
        lambda t: "not-a-token",
        lambda t: "a" * 2000,  # oversized: read up to a bound
    ],
)
def test_a_changed_link_gets_the_not_valid_page_and_writes_nothing(invitation, anon_client, change):
    url = _url(change(services.invitation_token(invitation)))
    assert anon_client.get(url).status_code == 400
    response = anon_client.post(url, {"score": "3"})
    assert response.status_code == 400 and 'data-testid="survey-tampered"' in response.content.decode()
    _nothing_written(invitation)


def test_a_link_signed_with_another_key_is_refused(invitation, anon_client):
    forged = signing.dumps(
        {"t": invitation.token.hex, "s": connection.schema_name},
        salt="surveys.invitation:other",
        key="x" * 50,
    )
    assert anon_client.post(_url(forged), {"score": "3"}).status_code == 400
    _nothing_written(invitation)


def test_an_expired_link_gets_the_expired_page_and_writes_nothing(invitation, anon_client):
    SurveyInvitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    url = _url(services.invitation_token(invitation))
    assert anon_client.get(url).status_code == 410
    response = anon_client.post(url, {"score": "10"})
    assert response.status_code == 410 and 'data-testid="survey-expired"' in response.content.decode()
    _nothing_written(invitation)


def test_another_tenants_link_is_not_found_here_and_writes_nothing_anywhere(tenant_a, tenant_b, nps):
    with schema_context(tenant_b.schema_name):
        from interactions.surveys.models import SurveyTemplate

        template_b = SurveyTemplate.objects.get(kind="nps")
        customer_b = CustomerFactory(email="beta@survey.test")
        invitation_b = services._invite(
            template=template_b, customer=customer_b, source="bulk", source_key="bulk:beta:1"
        )
        token_b = services.invitation_token(invitation_b)
    connection.set_tenant(tenant_a)
    # same invitation id and token value planted in alpha: the link still names beta's schema
    customer_a = CustomerFactory(email="alpha@survey.test")
    twin = services._invite(template=nps, customer=customer_a, source="bulk", source_key="bulk:alpha:1")
    SurveyInvitation.objects.filter(pk=twin.pk).update(token=invitation_b.token)
    alpha = Client(HTTP_HOST=tenant_host(tenant_a))
    assert alpha.get(_url(token_b)).status_code == 404
    assert alpha.post(_url(token_b), {"score": "2"}).status_code == 404
    assert not SurveyResponse.objects.exists()
    with schema_context(tenant_b.schema_name):
        assert not SurveyResponse.objects.exists()
        beta = Client(HTTP_HOST=tenant_host(tenant_b))
        assert beta.get(_url(token_b)).status_code == 200  # on its own site it works
    connection.set_tenant(tenant_a)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"score": "11"}, "score"),
        ({"score": "-1"}, "score"),
        ({"score": "1" * 50}, "score"),
        ({"score": ""}, "score"),
        ({"score": "5", "comment": "x" * 2001}, "comment"),
    ],
)
def test_out_of_range_input_gets_a_field_error_and_writes_nothing(invitation, anon_client, data, field):
    response = anon_client.post(_url(services.invitation_token(invitation)), data)
    assert response.status_code == 400
    assert field in response.context["form"].errors
    _nothing_written(invitation)


def test_the_service_bounds_the_score_itself(invitation):
    from django.core.exceptions import ValidationError

    for bad in ("11", "1e3", " 5 5", None, "٣"):
        with pytest.raises(ValidationError):
            services.response_submit(invitation=invitation, score=bad)
    _nothing_written(invitation)


def test_the_honeypot_answers_thanks_and_writes_nothing(invitation, anon_client):
    response = anon_client.post(
        _url(services.invitation_token(invitation)), {"score": "4", "website": "spam"}
    )
    assert response.status_code == 200
    _nothing_written(invitation)


def test_the_page_needs_its_csrf_token(invitation, tenant):
    client = Client(HTTP_HOST=tenant_host(tenant), enforce_csrf_checks=True)
    assert client.post(_url(services.invitation_token(invitation)), {"score": "4"}).status_code == 403
    _nothing_written(invitation)


def test_the_page_is_in_the_invitations_language(invitation, anon_client):
    SurveyInvitation.objects.filter(pk=invitation.pk).update(language="zh-hans")
    page = anon_client.get(_url(services.invitation_token(invitation))).content.decode()
    assert "您有多大可能向朋友或同事推荐我们" in page
    assert "发送" in page or "提交" in page
