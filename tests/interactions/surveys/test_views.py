"""Survey pages: the reports drill down to the answers and their customers (in the user's scope), the
responses list is keyset-paged at a fixed query count, templates are edited by admins, the service
figures show CSAT per agent, and the ticket recycle bin lists and restores deleted tickets."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.audit.models import AuditEvent
from interactions.service import services as service
from interactions.service.models import Ticket
from interactions.surveys import services
from interactions.surveys.models import SurveyTemplate
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def _answered(owner, template, score, n, comment=""):
    made = []
    for i in range(n):
        customer = CustomerFactory(owner=owner, email=f"v{owner.pk}-{score}-{i}-{template.pk}@survey.test")
        invitation = services._invite(
            template=template,
            customer=customer,
            source="bulk",
            source_key=f"bulk:v:{owner.pk}:{score}:{i}:{template.pk}",
        )
        made.append(services.response_submit(invitation=invitation, score=score, comment=comment))
    return made


def test_reports_link_each_figure_to_its_answers_and_customers(client_for, users, nps):
    _answered(users["sales"], nps, 10, 2, comment="Lovely <b>tea</b>")
    _answered(users["sales2"], nps, 2, 1, comment="Slow")
    page = client_for(users["manager"]).get(reverse("surveys:reports")).content.decode()
    assert 'data-testid="nps-total"' in page and ">33<" in page  # (2 - 1) / 3
    assert "Lovely &lt;b&gt;tea&lt;/b&gt;" in page  # a comment is shown escaped
    links = re.findall(r'href="(/surveys/responses/\?[^"]+)"', page)
    assert any("group=detractors" in link for link in links)
    detractors = client_for(users["manager"]).get(
        reverse("surveys:responses") + "?group=detractors&months=12"
    )
    rows = detractors.content.decode().count('data-testid="response-row"')
    assert rows == 1 and "Slow" in detractors.content.decode()
    # sales see only their own customers' answers, on the report and in the list
    own = client_for(users["sales"]).get(reverse("surveys:reports")).content.decode()
    assert "Slow" not in own
    listed = client_for(users["sales"]).get(reverse("surveys:responses")).content.decode()
    assert listed.count('data-testid="response-row"') == 2


def test_the_responses_list_is_keyset_paged_at_a_fixed_query_count(client_for, users, nps):
    client = client_for(users["manager"])
    _answered(users["sales"], nps, 9, 3)
    client.get(reverse("surveys:responses"))
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("surveys:responses"))
    _answered(users["sales"], nps, 8, 60)
    with CaptureQueriesContext(connection) as many:
        first = client.get(reverse("surveys:responses"))
    assert len(many) == len(few)
    body = first.content.decode()
    assert body.count('data-testid="response-row"') == 50
    cursor = re.search(r'cursor=([^"&]+)"', body).group(1)
    second = client.get(reverse("surveys:responses") + f"?cursor={cursor}")
    assert second.content.decode().count('data-testid="response-row"') == 13


def test_bad_filters_are_ignored_not_an_error_page(client_for, users):
    client = client_for(users["manager"])
    for query in (
        "?month=2026-13",
        "?agent=abc",
        "?customer=99999999999999999999999",
        "?cursor=%%%",
        "?months=7",
    ):
        assert client.get(reverse("surveys:responses") + query).status_code == 200
    assert client.get(reverse("surveys:reports") + "?months=abc").status_code == 200


def test_admins_add_and_edit_templates_and_bad_input_writes_nothing(client_for, users):
    client = client_for(users["admin"])
    before = SurveyTemplate.objects.count()
    bad = client.post(
        reverse("surveys:settings"),
        {"name": "x", "kind": "nps", "question_en": "", "question_zh": "", "expires_days": "900"},
    )
    assert bad.status_code == 200 and bad.context["form"].errors
    assert SurveyTemplate.objects.count() == before
    ok = client.post(
        reverse("surveys:settings"),
        {
            "name": "After visits",
            "kind": "csat",
            "question_en": "Happy?",
            "question_zh": "满意吗？",
            "expires_days": "7",
            "is_active": "on",
        },
    )
    assert ok.status_code == 302
    template = SurveyTemplate.objects.get(name="After visits")
    assert AuditEvent.objects.filter(action="surveys.template_created", target_id=str(template.pk)).exists()


def test_service_figures_show_csat_per_agent(client_for, users, resolved_ticket):
    resolved_ticket()
    from interactions.surveys.models import SurveyInvitation

    services.response_submit(invitation=SurveyInvitation.objects.get(), score=4)
    page = client_for(users["manager"]).get(reverse("service:figures")).content.decode()
    assert re.search(r'data-testid="agent-csat">4[.,]00', page)
    from interactions.service.selectors import service_figures

    agents = service_figures(user=users["manager"])["agents"]
    assert [(a["csat"], a["csat_answers"]) for a in agents if a["csat"] is not None] == [(4.0, 1)]


def test_the_ticket_bin_lists_deleted_tickets_and_restores_them(client_for, users):
    customer = CustomerFactory(owner=users["sales"])
    ticket = service.ticket_open(actor=users["sales"], customer=customer, subject="Binned ticket")
    service.ticket_delete(actor=users["manager"], ticket=ticket)
    client = client_for(users["manager"])
    page = client.get(reverse("service:bin")).content.decode()
    assert "Binned ticket" in page
    assert client.get(reverse("service:bin")).status_code == 200
    response = client.post(reverse("service:ticket_restore", args=[ticket.pk]))
    assert response.status_code == 302
    assert Ticket.objects.get(pk=ticket.pk).deleted_at is None
    assert "Binned ticket" not in client.get(reverse("service:bin")).content.decode()
    # restoring a live ticket is not found
    assert client.post(reverse("service:ticket_restore", args=[ticket.pk])).status_code == 404


def test_segment_rules_list_filters_panel_and_timeline_use_the_last_scores(client_for, users, nps, csat):
    from segmentation.selectors import segment_customers

    low = _answered(users["sales"], nps, 3, 1)[0].customer
    high = _answered(users["sales"], nps, 10, 1)[0].customer
    happy = _answered(users["sales"], csat, 5, 1)[0].customer
    rules = {"op": "and", "rules": [{"op": "and", "rules": [{"field": "last_nps", "op": "lte", "value": 6}]}]}
    assert list(segment_customers(user=users["manager"], rules=rules)) == [low]
    rules = {"op": "and", "rules": [{"field": "last_csat", "op": "gte", "value": 4}]}
    assert list(segment_customers(user=users["manager"], rules={"op": "and", "rules": [rules]})) == [happy]
    client = client_for(users["manager"])
    listed = client.get(reverse("customers:list") + "?nps_min=9").content.decode()
    assert high.name in listed and low.name not in listed
    assert client.get(reverse("customers:list") + "?nps_min=11").status_code == 200  # out of range: ignored
    detail = client.get(reverse("customers:detail", args=[low.pk])).content.decode()
    assert 'data-testid="surveys-panel"' in detail
    timeline = client.get(reverse("customers:timeline", args=[low.pk])).content.decode()
    assert "NPS 3" in timeline


def test_the_bulk_send_page_starts_a_job_and_shows_its_progress(
    client_for, users, nps, django_capture_on_commit_callbacks
):
    from crm.jobs.models import BackgroundJob
    from segmentation.models import Segment

    rules = {
        "op": "and",
        "rules": [{"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Pagetown"}]}],
    }
    segment = Segment.objects.create(
        name="Page town", rules=rules, is_shared=True, created_by=users["manager"]
    )
    client = client_for(users["manager"])
    empty = client.post(reverse("surveys:bulk_send"), {"template": nps.pk, "segment": segment.pk})
    assert empty.status_code == 200 and "segment" in empty.context["form"].errors  # nobody to invite
    assert not BackgroundJob.objects.filter(kind=services.BULK_KIND).exists()
    CustomerFactory(city="Pagetown", email="page@survey.test", email_consent=True)
    started = client.post(reverse("surveys:bulk_send"), {"template": nps.pk, "segment": segment.pk})
    assert started.status_code == 302 and "?job=" in started["Location"]
    page = client.get(started["Location"]).content.decode()
    assert 'data-testid="bulk-job"' in page and "job-progress" in page


def test_an_admin_chooses_the_outcomes_that_send_a_survey(client_for, users, csat):
    from interactions.models import InteractionOutcome

    outcome = InteractionOutcome.objects.get(key="no_answer")
    response = client_for(users["admin"]).post(
        reverse("surveys:template_edit", args=[csat.pk]),
        {
            "name": csat.name,
            "kind": "csat",
            "question_en": csat.question_en,
            "question_zh": csat.question_zh,
            "expires_days": "10",
            "is_active": "on",
            "after_outcomes": [outcome.pk],
        },
    )
    assert response.status_code == 302
    csat.refresh_from_db()
    assert (
        list(csat.after_outcomes.all()) == [outcome]
        and not csat.on_ticket_resolved
        and csat.expires_days == 10
    )


def test_the_ticket_bin_and_the_reports_page_cost_the_same_queries_for_few_or_many_rows(
    client_for, users, nps
):
    client = client_for(users["manager"])

    def bin_tickets(n, tag):
        for i in range(n):
            customer = CustomerFactory(owner=users["sales"])
            ticket = service.ticket_open(actor=users["sales"], customer=customer, subject=f"{tag} {i}")
            service.ticket_delete(actor=users["manager"], ticket=ticket)

    bin_tickets(1, "few")
    _answered(users["sales"], nps, 9, 1, comment="few")
    client.get(reverse("service:bin"))
    client.get(reverse("surveys:reports"))
    with CaptureQueriesContext(connection) as bin_few:
        client.get(reverse("service:bin"))
    with CaptureQueriesContext(connection) as reports_few:
        client.get(reverse("surveys:reports"))
    bin_tickets(12, "many")
    _answered(users["sales2"], nps, 3, 12, comment="many")
    with CaptureQueriesContext(connection) as bin_many:
        page = client.get(reverse("service:bin")).content.decode()
    with CaptureQueriesContext(connection) as reports_many:
        client.get(reverse("surveys:reports"))
    assert page.count('data-testid="bin-row"') == 13
    assert len(bin_many) == len(bin_few)
    assert len(reports_many) == len(reports_few)
