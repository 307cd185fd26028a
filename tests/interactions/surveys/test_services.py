"""Survey services against the real tenant schema: triggers invite once, the closed loop raises
exactly one follow-up, bulk sends respect consent and stay idempotent, merges move and undo, reports
aggregate in the database in the user's scope, and two tenants never cross."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.jobs.models import BackgroundJob
from crm.notifications.models import Notification
from interactions import services as interaction_services
from interactions.followups.models import FollowUp
from interactions.models import InteractionOutcome
from interactions.service import services as service
from interactions.surveys import selectors, services
from interactions.surveys.models import CustomerSurveyScore, SurveyInvitation, SurveyResponse
from interactions.surveys.tasks import survey_bulk_send_task
from segmentation.models import Segment
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def _answer(invitation, score, comment=""):
    return services.response_submit(invitation=invitation, score=score, comment=comment)


# --- triggers ---------------------------------------------------------------------------------------


def test_resolving_a_ticket_invites_once_even_when_resolved_again(
    resolved_ticket, users, csat, django_capture_on_commit_callbacks
):
    ticket = resolved_ticket()
    invitation = SurveyInvitation.objects.get()
    assert (invitation.template, invitation.ticket_id, invitation.customer_id) == (
        csat,
        ticket.pk,
        ticket.customer_id,
    )
    with django_capture_on_commit_callbacks(execute=True):
        service.ticket_reopen(actor=users["sales"], ticket=ticket)
    with django_capture_on_commit_callbacks(execute=True):
        service.ticket_resolve(actor=users["sales"], ticket=ticket)
    assert SurveyInvitation.objects.count() == 1


def test_a_rolled_back_resolution_invites_nobody(users, csat):
    customer = CustomerFactory(owner=users["sales"], email="rb@survey.test")
    ticket = service.ticket_open(actor=users["sales"], customer=customer, subject="x")
    from django.db import transaction

    with transaction.atomic():
        service.ticket_resolve(actor=users["sales"], ticket=ticket)
        transaction.set_rollback(True)
    assert not SurveyInvitation.objects.exists()


def test_no_invitation_without_an_address_or_an_active_template(resolved_ticket, users, csat):
    resolved_ticket(customer=CustomerFactory(owner=users["sales"], email=""))
    csat.is_active = False
    csat.save()
    resolved_ticket(email="second@survey.test")
    assert not SurveyInvitation.objects.exists()


def test_an_interaction_with_a_chosen_outcome_invites_once(users, nps, django_capture_on_commit_callbacks):
    chosen = InteractionOutcome.objects.get(key="no_answer")
    other = InteractionOutcome.objects.exclude(pk=chosen.pk).first()
    nps.after_outcomes.set([chosen])
    customer = CustomerFactory(owner=users["sales"], email="call@survey.test")

    def log(outcome):
        with django_capture_on_commit_callbacks(execute=True):
            return interaction_services.interaction_log(
                actor=users["sales"],
                customer=customer,
                channel="phone",
                direction="out",
                occurred_at=timezone.now(),
                outcome=outcome,
            )

    log(other)
    assert not SurveyInvitation.objects.exists()
    interaction = log(chosen)
    invitation = SurveyInvitation.objects.get()
    assert (invitation.interaction_id, invitation.template) == (interaction.pk, nps)
    services.invitations_for_interaction(interaction_id=interaction.pk, outcome_id=chosen.pk)  # redelivered
    assert SurveyInvitation.objects.count() == 1
    response = _answer(invitation, 10)
    assert (response.agent, response.channel) == (users["sales"], "phone")


# --- answers and the closed loop ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "score", "detractor"),
    [("nps", 6, True), ("nps", 7, False), ("csat", 2, True), ("csat", 3, False)],
)
def test_a_detractor_raises_exactly_one_follow_up_for_the_owner_and_a_notification(
    users, nps, csat, kind, score, detractor
):
    template = nps if kind == "nps" else csat
    customer = CustomerFactory(owner=users["sales2"], email="d@survey.test")
    invitation = services._invite(template=template, customer=customer, source="bulk", source_key="bulk:d:1")
    response = _answer(invitation, score)
    followups = FollowUp.objects.filter(source_key=f"survey:{response.pk}")
    assert followups.count() == (1 if detractor else 0)
    if detractor:
        followup = followups.get()
        assert (followup.assignee, followup.customer, followup.status) == (users["sales2"], customer, "open")
        assert followup.due_at <= timezone.now()
        assert (
            Notification.objects.filter(
                recipient=users["sales2"], key=f"surveys.detractor:{response.pk}"
            ).count()
            == 1
        )
        services.detractor_follow_up(response=response)  # asked again: nothing new
        assert FollowUp.objects.filter(source_key__startswith="survey:").count() == 1
        assert Notification.objects.filter(key__startswith="surveys.detractor:").count() == 1


def test_a_detractor_without_an_owner_goes_to_the_agent(resolved_ticket, users):
    ticket = resolved_ticket(customer=CustomerFactory(owner=None, email="noowner@survey.test"))
    response = _answer(SurveyInvitation.objects.get(ticket=ticket), 1)
    assert response.agent == users["sales"]
    assert FollowUp.objects.get(source_key=f"survey:{response.pk}").assignee == users["sales"]


def test_a_ticket_answer_keeps_agent_channel_category_and_the_last_scores(resolved_ticket, users):
    ticket = resolved_ticket()
    response = _answer(SurveyInvitation.objects.get(), 4, "ok")
    assert (response.agent, response.channel, response.ticket) == (users["sales"], ticket.channel, ticket)
    score = CustomerSurveyScore.objects.get(customer=ticket.customer)
    assert (score.last_csat, score.last_nps) == (4, None)


def test_two_answers_at_once_make_one_response(users, nps):
    """The row lock: the second submission sees the first's answer (run one after the other here; the
    lock is what makes the check-and-write one step)."""
    customer = CustomerFactory(owner=users["sales"], email="twice@survey.test")
    invitation = services._invite(template=nps, customer=customer, source="bulk", source_key="bulk:x:1")
    _answer(invitation, 9)
    with pytest.raises(services.LinkRefused):
        _answer(invitation, 1)
    assert SurveyResponse.objects.count() == 1
    assert not FollowUp.objects.exists()


# --- bulk send ----------------------------------------------------------------------------------------


@pytest.fixture
def segment(users):
    rules = {
        "op": "and",
        "rules": [{"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Surveyville"}]}],
    }
    return Segment.objects.create(
        name="Survey town", rules=rules, is_shared=True, created_by=users["manager"]
    )


def test_bulk_send_invites_only_customers_with_consent_once_and_mails_them(users, nps, segment, settings):
    consenting = [
        CustomerFactory(
            city="Surveyville", email=f"yes{i}@survey.test", email_consent=True, language=language
        )
        for i, language in enumerate(("", "zh-hans", "en"))
    ]
    CustomerFactory(city="Surveyville", email="no@survey.test", email_consent=False)
    CustomerFactory(city="Surveyville", email="", email_consent=True)
    CustomerFactory(city="Elsewhere", email="else@survey.test", email_consent=True)
    job = services.bulk_send_start(actor=users["manager"], template=nps, segment=segment)
    survey_bulk_send_task(job.pk)
    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.SUCCEEDED and job.progress == 100
    assert set(SurveyInvitation.objects.values_list("customer_id", flat=True)) == {c.pk for c in consenting}
    languages = dict(SurveyInvitation.objects.values_list("customer_id", "language"))
    assert languages[consenting[1].pk] == "zh-hans" and languages[consenting[2].pk] == "en"
    # the same job run again (a redelivered message) and the run body again add nothing
    survey_bulk_send_task(job.pk)
    assert SurveyInvitation.objects.count() == 3
    counts = services.invitations_send()
    assert counts["sent"] == 3
    assert sorted(m.to[0] for m in mail.outbox) == sorted(c.email for c in consenting)
    message = mail.outbox[0]
    assert message.extra_headers["Message-ID"].startswith(f"<survey-{connection.schema_name}-")
    assert "/surveys/answer/" in message.body
    assert services.invitations_send()["sent"] == 0  # nothing twice


def test_bulk_send_is_for_managers_and_bounded(users, nps, segment, monkeypatch):
    CustomerFactory(city="Surveyville", email="b@survey.test", email_consent=True)
    with pytest.raises(PermissionDenied):
        services.bulk_send_start(actor=users["sales"], template=nps, segment=segment)
    monkeypatch.setattr(services, "BULK_MAX", 0)
    with pytest.raises(ValidationError):
        services.bulk_send_start(actor=users["manager"], template=nps, segment=segment)
    assert not BackgroundJob.objects.filter(kind=services.BULK_KIND).exists()


def test_a_claim_left_by_a_dead_worker_is_sent_again_after_the_timeout(users, nps, settings):
    settings.NOTIFICATION_EMAIL_CLAIM_SECONDS = 60
    customer = CustomerFactory(email="claim@survey.test")
    invitation = services._invite(template=nps, customer=customer, source="bulk", source_key="bulk:c:1")
    assert services.invitations_claim(batch_size=10) == [invitation.pk]  # the worker dies here
    assert services.invitations_send()["sent"] == 0
    SurveyInvitation.objects.filter(pk=invitation.pk).update(claimed_at=timezone.now() - timedelta(minutes=2))
    assert services.invitations_send()["sent"] == 1
    assert [m.extra_headers["Message-ID"] for m in mail.outbox] == [invitation.message_id]


def test_the_invitation_email_is_in_its_language(users, nps):
    customer = CustomerFactory(email="zh@survey.test", name="王小明")
    invitation = services._invite(template=nps, customer=customer, source="bulk", source_key="bulk:zh:1")
    SurveyInvitation.objects.filter(pk=invitation.pk).update(language="zh-hans")
    services.invitations_send()
    assert "您有多大可能向朋友或同事推荐我们" in mail.outbox[0].body


def test_an_invitation_is_in_the_customers_own_language_else_the_companys(tenant, users, nps):
    tenant.default_language = "en"
    chinese = CustomerFactory(email="c1@survey.test", language="zh-hans")
    unset = CustomerFactory(email="c2@survey.test")
    assert (
        services._invite(template=nps, customer=chinese, source="bulk", source_key="b:1").language
        == "zh-hans"
    )
    assert services._invite(template=nps, customer=unset, source="bulk", source_key="b:2").language == "en"
    tenant.default_language = "zh-hans"
    unset2 = CustomerFactory(email="c3@survey.test")
    assert (
        services._invite(template=nps, customer=unset2, source="bulk", source_key="b:3").language == "zh-hans"
    )


# --- merge ---------------------------------------------------------------------------------------------


def test_merge_moves_invitations_and_scores_and_undo_moves_them_back(users, nps, admin_user):
    from customers.dedupe.services import customer_merge, customer_merge_undo

    survivor = CustomerFactory(owner=users["sales"], email="s@survey.test", name="Same Name")
    merged = CustomerFactory(owner=users["sales"], email="m@survey.test", name="Same Name")
    invitation = services._invite(template=nps, customer=merged, source="bulk", source_key="bulk:m:1")
    _answer(invitation, 8)
    customer_merge(actor=admin_user, survivor=survivor, merged=merged)
    assert SurveyResponse.objects.get().customer == survivor
    assert CustomerSurveyScore.objects.get(customer=survivor).last_nps == 8
    assert not CustomerSurveyScore.objects.filter(customer=merged).exists()
    merged.refresh_from_db()
    customer_merge_undo(actor=admin_user, merged=merged)
    assert SurveyResponse.objects.get().customer_id == merged.pk
    assert CustomerSurveyScore.objects.get(customer_id=merged.pk).last_nps == 8
    assert not CustomerSurveyScore.objects.filter(customer=survivor).exists()


# --- reports --------------------------------------------------------------------------------------------


@pytest.fixture
def answered(users, nps, csat):
    """sales: NPS 10, 9, 3 and CSAT 5; sales2: NPS 0 and CSAT 1."""
    rows = [
        (users["sales"], nps, 10),
        (users["sales"], nps, 9),
        (users["sales"], nps, 3),
        (users["sales"], csat, 5),
    ]
    rows += [(users["sales2"], nps, 0), (users["sales2"], csat, 1)]
    for i, (owner, template, score) in enumerate(rows):
        customer = CustomerFactory(owner=owner, email=f"r{i}@survey.test")
        invitation = services._invite(
            template=template, customer=customer, source="bulk", source_key=f"bulk:r:{i}"
        )
        SurveyInvitation.objects.filter(pk=invitation.pk).update(sent_at=timezone.now())
        _answer(invitation, score, comment=f"comment {i}")
    return rows


def test_the_report_is_computed_in_the_users_scope(answered, users):
    everyone = selectors.survey_report(user=users["manager"])
    # NPS: 2 promoters, 2 detractors of 4 -> 0; CSAT mean (5 + 1) / 2
    assert (everyone["total"]["nps"], everyone["total"]["nps_n"], everyone["total"]["csat"]) == (0, 4, 3.0)
    assert (everyone["sent"], everyone["answered"], everyone["response_rate"]) == (6, 6, 100)
    own = selectors.survey_report(user=users["sales"])
    # 2 promoters, 1 detractor of 3 -> 33
    assert (own["total"]["nps"], own["total"]["nps_n"], own["total"]["csat"]) == (33, 3, 5.0)
    assert own["sent"] == 4
    listed = selectors.response_list(user=users["sales"], filters={"group": "detractors"})
    assert [r.score for r in listed] == [3]
    assert {r.customer.owner_id for r in selectors.response_list(user=users["sales"], filters={})} == {
        users["sales"].pk
    }


def test_the_report_costs_the_same_queries_for_few_or_many_answers(users, nps, django_assert_max_num_queries):
    def add(n, start):
        for i in range(start, start + n):
            customer = CustomerFactory(owner=users["sales"], email=f"q{i}@survey.test")
            invitation = services._invite(
                template=nps, customer=customer, source="bulk", source_key=f"bulk:q:{i}"
            )
            _answer(invitation, i % 11)

    add(2, 0)
    from django.db import connection as conn
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(conn) as few:
        selectors.survey_report(user=users["manager"])
    add(25, 10)
    with CaptureQueriesContext(conn) as many:
        report = selectors.survey_report(user=users["manager"])
    assert len(many) == len(few) == 8  # total, months, 5 breakdowns, response rate
    assert report["total"]["nps_n"] == 27


def test_two_tenants_never_see_each_others_answers(tenant_a, tenant_b, answered, users):
    with schema_context(tenant_b.schema_name):
        from crm.accounts.models import User

        assert not SurveyResponse.objects.exists()
        beta_admin = User.objects.filter(role="admin").first()
        assert selectors.survey_report(user=beta_admin)["total"]["nps_n"] == 0
    connection.set_tenant(tenant_a)
    assert SurveyResponse.objects.count() == 6


def test_a_refused_invitation_stays_unsent_and_fails_for_good_after_the_last_attempt(users, nps, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens
    customer = CustomerFactory(email="refused@survey.test")
    invitation = services._invite(template=nps, customer=customer, source="bulk", source_key="bulk:f:1")
    assert services.invitations_send()["failed"] == 1
    invitation.refresh_from_db()
    assert (invitation.sent_at, invitation.failed_at, invitation.attempts) == (None, None, 1)
    assert invitation.last_error
    SurveyInvitation.objects.filter(pk=invitation.pk).update(
        attempts=services.MAX_ATTEMPTS - 1, claimed_at=None
    )
    assert services.invitations_send()["failed"] == 1
    invitation.refresh_from_db()
    assert invitation.failed_at is not None and invitation.sent_at is None
    assert services.invitations_claim(batch_size=10) == []  # never tried again
