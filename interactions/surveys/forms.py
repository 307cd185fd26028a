"""Forms of the surveys: bounded fields, parsed here and validated again by the services."""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.numbers import BoundedIntegerField

from .models import COMMENT_MAX, QUESTION_MAX, SCORE_RANGE, SurveyKind


class TemplateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    kind = forms.ChoiceField(label=_("Kind"), choices=SurveyKind.choices)
    question_en = forms.CharField(label=_("Question (English)"), max_length=QUESTION_MAX)
    question_zh = forms.CharField(label=_("Question (Chinese)"), max_length=QUESTION_MAX)
    ask_comment = forms.BooleanField(label=_("Ask for a comment"), required=False, initial=True)
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)
    on_ticket_resolved = forms.BooleanField(label=_("Send when a ticket is resolved"), required=False)
    after_outcomes = forms.ModelMultipleChoiceField(
        label=_("Send after interactions with these outcomes"),
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    expires_days = BoundedIntegerField(
        label=_("Link valid for (days)"), min_value=1, max_value=90, initial=14
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from interactions.selectors import outcome_list

        self.fields["after_outcomes"].queryset = outcome_list(active_only=True)
        self.fields["after_outcomes"].label_from_instance = lambda outcome: outcome.label

    @staticmethod
    def initial_from(template) -> dict:
        return {
            "name": template.name,
            "kind": template.kind,
            "question_en": template.question_en,
            "question_zh": template.question_zh,
            "ask_comment": template.ask_comment,
            "is_active": template.is_active,
            "on_ticket_resolved": template.on_ticket_resolved,
            "after_outcomes": list(template.after_outcomes.all()),
            "expires_days": template.expires_days,
        }


class AnswerForm(forms.Form):
    """The public answer form: the score is one of the kind's values (a radio group), the comment
    bounded, `website` the honeypot a person never sees."""

    comment = forms.CharField(
        label=_("Anything you would like to tell us? (optional)"),
        max_length=COMMENT_MAX,
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "maxlength": COMMENT_MAX}),
    )
    website = forms.CharField(label=_("Leave this empty"), required=False, max_length=200)

    def __init__(self, *args, kind: str, ask_comment: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        low, high = SCORE_RANGE[kind]
        self.fields["score"] = forms.TypedChoiceField(
            label=_("Your score"),
            choices=[(str(n), str(n)) for n in range(low, high + 1)],
            coerce=int,
            widget=forms.RadioSelect,
            error_messages={
                "required": _("Choose a score."),
                "invalid_choice": _("Choose a score from %(low)d to %(high)d.") % {"low": low, "high": high},
            },
        )
        self.order_fields(["score", "comment", "website"])
        if not ask_comment:
            del self.fields["comment"]


class ResponseFilterForm(forms.Form):
    """The drill-down's filters (every one bounded; a bad value is ignored, not an error page)."""

    kind = forms.ChoiceField(choices=[("", "")] + list(SurveyKind.choices), required=False)
    month = forms.RegexField(regex=r"^\d{4}-\d{2}$", max_length=7, required=False)
    months = forms.TypedChoiceField(choices=[(str(n), n) for n in (3, 6, 12, 24)], coerce=int, required=False)
    segment = forms.CharField(max_length=30, required=False)
    stage = forms.CharField(max_length=20, required=False)
    agent = forms.CharField(max_length=12, required=False)
    channel = forms.CharField(max_length=20, required=False)
    category = forms.CharField(max_length=12, required=False)
    group = forms.ChoiceField(
        choices=[(g, g) for g in ("", "promoters", "passives", "detractors", "satisfied")], required=False
    )
    customer = BoundedIntegerField(min_value=1, max_value=2**62, required=False)
    with_comment = forms.BooleanField(required=False)
    cursor = forms.CharField(max_length=200, required=False)

    def clean_month(self):
        value = self.cleaned_data.get("month")
        if not value:
            return None
        try:
            return timezone.make_aware(datetime.strptime(value + "-01", "%Y-%m-%d"))
        except ValueError:
            raise forms.ValidationError(_("Enter a month as YYYY-MM."))

    def _id_or_none(self, name):
        value = self.cleaned_data.get(name)
        if not value:
            return None
        if value == "none":
            return "none"
        if not value.isdigit() or len(value) > 12:
            raise forms.ValidationError(_("Enter a number."))
        return int(value)

    def clean_agent(self):
        return self._id_or_none("agent")

    def clean_category(self):
        return self._id_or_none("category")

    def filters(self) -> dict:
        if not self.is_valid():
            return {k: v for k, v in self.cleaned_data.items() if v not in (None, "", False)}
        return {k: v for k, v in self.cleaned_data.items() if v not in (None, "", False)}


class BulkSendForm(forms.Form):
    template = forms.ModelChoiceField(label=_("Survey"), queryset=None)
    segment = forms.ModelChoiceField(label=_("Saved segment"), queryset=None)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        from segmentation.selectors import segment_list

        from .models import SurveyTemplate

        self.fields["template"].queryset = SurveyTemplate.objects.filter(is_active=True).order_by("name")
        self.fields["segment"].queryset = segment_list(user=user).order_by("name")
