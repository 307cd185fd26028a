"""The surveys' writes are all or nothing (the pattern of tests/test_audit_fault.py): when the database
refuses the audit row, or a later row of the same change (the second template's invitation, a last
score, ...), nothing of the change stays. Each service is called by its public name with real
arguments; the cases and tests are named after it.

Also here: the claim of invitations to send works outside a test's transaction (as a worker runs it),
and the services' own role checks."""

import io
import random
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from crm.accounts.models import User
from crm.jobs.models import BackgroundJob
from crm.notifications.models import Notification
from interactions import services as interaction_services
from interactions.followups.models import FollowUp
from interactions.models import InteractionOutcome
from interactions.service import services as service
from interactions.surveys import demo, services
from interactions.surveys.models import CustomerSurveyScore, SurveyInvitation, SurveyResponse, SurveyTemplate
from segmentation.models import Segment
from tests.factories import CustomerFactory
from tests.interactions.test_audit_fault_interactions import refuse_rows
from tests.test_audit_fault import _refuse_audit_rows, _state

MODELS = (
    SurveyTemplate,
    SurveyTemplate.after_outcomes.through,
    SurveyInvitation,
    SurveyResponse,
    CustomerSurveyScore,
    BackgroundJob,
    FollowUp,
    Notification,
    User,
)


def _template(**values):
    """A second template of a kind, saved as an admin would (before any fault is planted)."""
    return SurveyTemplate.objects.create(
        name=values.pop("name", "Second"),
        question_en="How did we do?",
        question_zh="我们做得怎么样？",
        **values,
    )


@pytest.fixture
def w(tenant, users, nps, csat):
    customer = CustomerFactory(
        owner=users["sales"], email="buyer@survey.test", email_consent=True, city="Here"
    )
    other = CustomerFactory(owner=users["sales"], email="other@survey.test")
    invitation = services._invite(template=nps, customer=customer, source="bulk", source_key="bulk:w:1")
    answered = services._invite(template=csat, customer=other, source="bulk", source_key="bulk:w:2")
    services.response_submit(invitation=answered, score=4)
    segment = Segment.objects.create(
        name="Here",
        rules={"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Here"}]},
        is_shared=True,
        created_by=users["manager"],
    )
    return {
        **users,
        "tenant": tenant,
        "nps": nps,
        "csat": csat,
        "customer": customer,
        "other": other,
        "invitation": invitation,
        "segment": segment,
        "outcome": InteractionOutcome.objects.order_by("position", "pk").first(),
    }


TEMPLATE = {"question_en": "Would you recommend us?", "question_zh": "您会推荐我们吗？"}

AUDITED = {
    "template_save-new": lambda w: services.template_save(
        actor=w["admin"], name="Quarterly NPS", kind="nps", after_outcomes=[w["outcome"]], **TEMPLATE
    ),
    # the template and its outcomes saved, then the audit row
    "template_save-edit": lambda w: services.template_save(
        actor=w["admin"],
        template=w["nps"],
        name="Renamed NPS",
        kind="nps",
        expires_days=30,
        after_outcomes=[w["outcome"]],
        **TEMPLATE,
    ),
    # the job is made, then the audit row: no job may be left to run
    "bulk_send_start": lambda w: services.bulk_send_start(
        actor=w["manager"], template=w["nps"], segment=w["segment"]
    ),
    # the response, the answered mark and the last score, then the audit row
    "response_submit": lambda w: services.response_submit(
        invitation=w["invitation"], score=3, comment="Slow"
    ),
}


@pytest.mark.parametrize("case", sorted(AUDITED))
def test_a_refused_audit_row_undoes_the_survey_change(case, w):
    before = _state(MODELS)
    _refuse_audit_rows()
    with pytest.raises(DatabaseError):
        AUDITED[case](w)
    connection.set_tenant(w["tenant"])
    assert _state(MODELS) == before


# --- the triggers: every template's invitation, or none ------------------------------------------------


def test_invitations_for_ticket_are_all_or_none(w):
    second = _template(kind="csat", on_ticket_resolved=True)
    ticket = service.ticket_open(actor=w["sales"], customer=w["customer"], subject="Parcel late")
    before = _state(MODELS)
    refuse_rows(SurveyInvitation, when=f"NEW.template_id = {second.pk}")
    with pytest.raises(DatabaseError):
        services.invitations_for_ticket(ticket_id=ticket.pk)
    assert _state(MODELS) == before


def test_invitations_for_interaction_are_all_or_none(w):
    w["nps"].after_outcomes.set([w["outcome"]])
    second = _template(kind="nps")
    second.after_outcomes.set([w["outcome"]])
    interaction = interaction_services.interaction_log(
        actor=w["sales"],
        customer=w["customer"],
        channel="phone",
        direction="out",
        occurred_at=timezone.now() - timedelta(minutes=5),
        outcome=w["outcome"],
    )
    before = _state(MODELS)
    refuse_rows(SurveyInvitation, when=f"NEW.template_id = {second.pk}")
    with pytest.raises(DatabaseError):
        services.invitations_for_interaction(interaction_id=interaction.pk, outcome_id=w["outcome"].pk)
    assert _state(MODELS) == before


def test_invite_skips_a_repeated_trigger_and_still_invites_for_a_new_template(w):
    """A ticket resolved again after a second template was switched on: the first template's invitation
    exists (its INSERT is refused by the unique key, inside its own savepoint), the second is made."""
    ticket = service.ticket_open(actor=w["sales"], customer=w["customer"], subject="Parcel late")
    assert len(services.invitations_for_ticket(ticket_id=ticket.pk)) == 1
    second = _template(kind="csat", on_ticket_resolved=True)
    made = services.invitations_for_ticket(ticket_id=ticket.pk)
    assert [invitation.template for invitation in made] == [second]
    assert sorted(SurveyInvitation.objects.filter(ticket=ticket).values_list("template_id", flat=True)) == [
        w["csat"].pk,
        second.pk,
    ]


# --- moving a customer's surveys (merge and its undo) ---------------------------------------------------


def test_surveys_move_customer_moves_nothing_when_the_last_scores_are_refused(w):
    """The invitations and responses move first, then both customers' last scores are rebuilt: when
    a score row is refused, nothing has moved."""
    survivor = CustomerFactory(owner=w["sales"], email="survivor@survey.test")
    before = _state(MODELS)
    refuse_rows(CustomerSurveyScore)
    with pytest.raises(DatabaseError):
        services.surveys_move_customer(from_customer_id=w["other"].pk, to_customer_id=survivor.pk)
    assert _state(MODELS) == before
    assert SurveyResponse.objects.get().customer_id == w["other"].pk


# --- the demo seeder ---------------------------------------------------------------------------------------


def test_surveys_demo_seed_writes_nothing_when_its_last_step_is_refused(tenant, users, nps, csat):
    """The seeder's invitations, answers and answered marks go back when its last step, the last
    scores, is refused: a re-run then seeds afresh instead of skipping a half-seeded tenant."""
    SurveyInvitation.objects.all().delete()
    for number in range(3):
        CustomerFactory(email=f"demo{number}@survey.test", email_consent=True)
    before = _state(MODELS)
    refuse_rows(CustomerSurveyScore)
    with pytest.raises(DatabaseError):
        demo.seed(users=[], customers=60, rng=random.Random(3), stdout=io.StringIO())
    assert _state(MODELS) == before


# --- the claim, as a worker runs it: outside any transaction -------------------------------------------


def test_invitations_claim_commits_its_claim_outside_a_transaction(committed_tenant, django_db_blocker):
    """A worker runs in autocommit: the claim takes its row locks in a transaction of its own and
    commits the claim before anything is sent, so another worker (here: a second claim) passes over
    the claimed invitation, and the send goes out once."""
    tenant = committed_tenant()
    with django_db_blocker.unblock(), tenant_context(tenant):
        assert connection.get_autocommit() and not connection.in_atomic_block
        template = SurveyTemplate.objects.get(kind="nps")
        customer = CustomerFactory(email="worker@survey.test")
        invitation = services._invite(
            template=template, customer=customer, source="bulk", source_key="bulk:a:1"
        )
        assert services.invitations_claim(batch_size=10) == [invitation.pk]
        invitation.refresh_from_db()
        assert invitation.claimed_at is not None and invitation.attempts == 1
        assert services.invitations_claim(batch_size=10) == []
        SurveyInvitation.objects.filter(pk=invitation.pk).update(claimed_at=None)
        assert services.invitations_send()["sent"] == 1
        assert [message.to for message in mail.outbox] == [["worker@survey.test"]]


# --- the services' own role checks -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["manager", "sales"])
def test_template_save_is_for_admins_only(w, role):
    before = _state(MODELS)
    with pytest.raises(PermissionDenied):
        services.template_save(actor=w[role], name="Mine", kind="nps", **TEMPLATE)
    with pytest.raises(PermissionDenied):
        services.template_save(actor=w[role], template=w["nps"], name="Mine", kind="nps", **TEMPLATE)
    assert _state(MODELS) == before


def test_bulk_send_start_is_for_managers_and_admins(w):
    before = _state(MODELS)
    with pytest.raises(PermissionDenied):
        services.bulk_send_start(actor=w["sales"], template=w["nps"], segment=w["segment"])
    assert _state(MODELS) == before
    services.bulk_send_start(actor=w["admin"], template=w["nps"], segment=w["segment"])
    assert BackgroundJob.objects.filter(kind=services.BULK_KIND).count() == 1


def test_a_detractors_follow_up_skips_a_deactivated_owner_and_agent(w):
    """The closed loop's follow-up goes to an active user: the owner, else the ticket's agent, else
    nobody (a deactivated user gets no work and no notification)."""
    owner, agent = w["sales"], w["sales2"]

    def detractor(name):
        customer = CustomerFactory(owner=owner, email=f"{name}@survey.test")
        ticket = service.ticket_open(actor=w["manager"], customer=customer, subject="Late", assignee=agent)
        invitation = services._invite(
            template=w["csat"],
            customer=customer,
            source="ticket",
            source_key=f"ticket:{ticket.pk}:t{w['csat'].pk}",
            ticket_id=ticket.pk,
        )
        response = services.response_submit(invitation=invitation, score=1)
        return FollowUp.objects.filter(source_key=f"survey:{response.pk}").first()

    assert detractor("owned").assignee == owner
    User.objects.filter(pk=owner.pk).update(is_active=False)
    assert detractor("agent").assignee == agent
    User.objects.filter(pk=agent.pk).update(is_active=False)
    assert detractor("nobody") is None
    notified = Notification.objects.filter(key__startswith="surveys.detractor:")
    assert sorted(notified.values_list("recipient_id", flat=True)) == sorted([owner.pk, agent.pk])
