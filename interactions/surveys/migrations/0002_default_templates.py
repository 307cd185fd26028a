"""Every tenant starts with two survey templates, worded in both languages: a CSAT survey sent when a
ticket is resolved, and an NPS survey for bulk sends. New tenants are cloned from the template schema,
which this migration fills like any tenant schema."""

from django.db import migrations

DEFAULTS = [
    {
        "name": "Service satisfaction (CSAT)",
        "kind": "csat",
        "question_en": "How satisfied are you with how we handled your request?",
        "question_zh": "您对我们处理您的请求的方式满意吗？",
        "on_ticket_resolved": True,
    },
    {
        "name": "Net Promoter Score (NPS)",
        "kind": "nps",
        "question_en": "How likely are you to recommend us to a friend or colleague?",
        "question_zh": "您有多大可能向朋友或同事推荐我们？",
        "on_ticket_resolved": False,
    },
]


def create_defaults(apps, schema_editor):
    SurveyTemplate = apps.get_model("surveys", "SurveyTemplate")
    if SurveyTemplate.objects.exists():
        return
    for values in DEFAULTS:
        SurveyTemplate.objects.create(ask_comment=True, is_active=True, expires_days=14, **values)


class Migration(migrations.Migration):
    dependencies = [("surveys", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
