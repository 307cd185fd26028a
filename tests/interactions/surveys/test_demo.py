import io
import random

import pytest
from django.core.management import call_command
from django.db import connection

from interactions.surveys import demo
from interactions.surveys.models import CustomerSurveyScore, SurveyInvitation, SurveyResponse, SurveyTemplate

pytestmark = pytest.mark.django_db


def test_a_new_tenant_has_a_csat_and_an_nps_template_in_both_languages(tenant_b):
    connection.set_tenant(tenant_b)
    templates = {t.kind: t for t in SurveyTemplate.objects.all()}
    assert set(templates) == {"nps", "csat"}
    assert all(t.question_en and t.question_zh and t.is_active for t in templates.values())
    assert templates["csat"].on_ticket_resolved and not templates["nps"].on_ticket_resolved
    assert templates["nps"].question("zh-hans") == "您有多大可能向朋友或同事推荐我们？"


def test_seed_demo_adds_invitations_answers_and_last_scores_once(tenant):
    call_command("seed_demo", tenant="alpha", customers=60, seed=5, stdout=io.StringIO())
    connection.set_tenant(tenant)
    assert SurveyInvitation.objects.filter(source="ticket").exists()
    assert SurveyInvitation.objects.filter(source="bulk").exists()
    responses = SurveyResponse.objects.count()
    assert responses > 0 and SurveyInvitation.objects.filter(answered_at__isnull=False).count() == responses
    assert set(SurveyResponse.objects.values_list("kind", flat=True)) == {"nps", "csat"}
    # the last scores agree with the newest answer of each customer
    for score in CustomerSurveyScore.objects.all()[:20]:
        newest = (
            SurveyResponse.objects.filter(customer_id=score.customer_id, kind="nps")
            .order_by("-answered_at", "-id")
            .first()
        )
        assert score.last_nps == (newest.score if newest else None)
    count = SurveyInvitation.objects.count()
    demo.seed(users=[], customers=0, rng=random.Random(1), stdout=io.StringIO())
    assert SurveyInvitation.objects.count() == count
