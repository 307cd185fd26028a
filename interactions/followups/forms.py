"""Forms of follow-ups: they parse and bound what was typed; the services decide what is allowed."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.accounts.models import User
from crm.accounts.permissions import MANAGERS, user_has_role
from crm.numbers import BoundedIntegerField

from .models import NOTES_MAX, TITLE_MAX, FollowUpRule
from .selectors import team_members
from .services import MAX_RULE_DELAY_DAYS, SNOOZE_CHOICES_HOURS

DATETIME_INPUT = "%Y-%m-%dT%H:%M"


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.get_full_name()


class DueField(forms.DateTimeField):
    """A date and time typed in the user's time zone (an <input type="datetime-local">)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", _("Due"))
        kwargs.setdefault(
            "widget", forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_INPUT)
        )
        super().__init__(input_formats=[DATETIME_INPUT, "%Y-%m-%d %H:%M", "%Y-%m-%d"], **kwargs)

    def to_python(self, value):
        if isinstance(value, str) and len(value) > 40:
            raise forms.ValidationError(_("Enter a valid date and time."), code="invalid")
        return super().to_python(value)


def default_due():
    """Tomorrow at 10:00 in the user's time zone."""
    tomorrow = timezone.localdate() + timedelta(days=1)
    return timezone.make_aware(datetime.combine(tomorrow, time(10, 0)))


class FollowUpForm(forms.Form):
    """A new follow-up for one customer. Managers pick the assignee; sales staff assign themselves."""

    title = forms.CharField(label=_("Title"), max_length=TITLE_MAX)
    due_at = DueField()
    notes = forms.CharField(
        label=_("Notes"), max_length=NOTES_MAX, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args, user: User, **kwargs):
        kwargs.setdefault("initial", {"due_at": default_due()})
        super().__init__(*args, **kwargs)
        self.user = user
        if user_has_role(user, MANAGERS):
            field = UserChoiceField(queryset=team_members(), label=_("Assignee"), initial=user.pk)
            # Read the team once (one query): the crispy template walks the choices twice, and a model
            # choice field's choices count and query again on every walk. The queryset still
            # validates what is posted.
            empty = [("", field.empty_label)] if field.empty_label is not None else []
            field.choices = empty + [(u.pk, field.label_from_instance(u)) for u in field.queryset]
            self.fields["assignee"] = field

    def assignee(self) -> User:
        return self.cleaned_data.get("assignee") or self.user


class BulkFollowUpForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=TITLE_MAX)
    due_at = DueField()
    notes = forms.CharField(
        label=_("Notes"), max_length=NOTES_MAX, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args, user: User, **kwargs):
        kwargs.setdefault("initial", {"due_at": default_due()})
        super().__init__(*args, **kwargs)
        self.user = user
        if user_has_role(user, MANAGERS):
            self.fields["assignee"] = UserChoiceField(
                queryset=team_members(),
                label=_("Assignee"),
                required=False,
                empty_label=_("Each customer's owner"),
            )

    def assignee(self) -> User | None:
        if user_has_role(self.user, MANAGERS):
            return self.cleaned_data.get("assignee")
        return self.user


def _hours_label(hours: int) -> str:
    if hours < 24:
        return _("%(n)d h") % {"n": hours}
    return _("%(n)d d") % {"n": hours // 24}


class SnoozeForm(forms.Form):
    hours = forms.TypedChoiceField(
        label=_("Snooze"), coerce=int, choices=[(h, h) for h in SNOOZE_CHOICES_HOURS]
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["hours"].choices = [(h, _hours_label(h)) for h in SNOOZE_CHOICES_HOURS]


class RescheduleForm(forms.Form):
    due_at = DueField()


class ReassignForm(forms.Form):
    assignee = UserChoiceField(queryset=User.objects.none(), label=_("Assignee"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = team_members()


class RepPickerForm(forms.Form):
    rep = forms.ChoiceField(label=_("Whose day"), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.members = list(team_members())
        self.fields["rep"].choices = [("", _("Whole team"))] + [
            (str(u.pk), u.get_full_name()) for u in self.members
        ]

    def chosen_rep(self) -> User | None:
        if not self.is_valid():
            return None
        chosen = self.cleaned_data.get("rep") or ""
        return next((u for u in self.members if str(u.pk) == chosen), None)


class RuleForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120)
    trigger = forms.ChoiceField(label=_("When"), choices=FollowUpRule.Trigger.choices)
    stage = forms.ChoiceField(label=_("Lifecycle stage"), required=False)
    segment = forms.ModelChoiceField(label=_("Saved segment"), queryset=None, required=False)
    delay_days = BoundedIntegerField(
        label=_("Follow up after (days)"), min_value=0, max_value=MAX_RULE_DELAY_DAYS, initial=0
    )
    title = forms.CharField(label=_("Follow-up title"), max_length=TITLE_MAX)
    fallback_assignee = UserChoiceField(
        label=_("Assignee when the customer has no active owner"),
        queryset=User.objects.none(),
        required=False,
        empty_label=_("Nobody (skip)"),
    )
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)

    def __init__(self, *args, user: User, **kwargs):
        from segmentation.labels import LifecycleStage
        from segmentation.selectors import segment_list

        super().__init__(*args, **kwargs)
        self.fields["stage"].choices = [("", "–")] + list(LifecycleStage.choices)
        self.fields["segment"].queryset = segment_list(user=user).order_by("name")
        self.fields["fallback_assignee"].queryset = team_members()

    @staticmethod
    def initial_from(rule: FollowUpRule) -> dict:
        return {
            "name": rule.name,
            "trigger": rule.trigger,
            "stage": rule.stage,
            "segment": rule.segment_id,
            "delay_days": rule.delay_days,
            "title": rule.title,
            "fallback_assignee": rule.fallback_assignee_id,
            "is_active": rule.is_active,
        }

    def service_data(self) -> dict:
        data = dict(self.cleaned_data)
        data["stage"] = data.get("stage") or ""
        return data
