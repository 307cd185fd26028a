"""Forms of the service desk: they bound and parse input; the services validate the rules."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from crm.numbers import BoundedIntegerField, parse_id

from . import business_hours as bh
from .models import Channel, Priority, Status
from .selectors import category_list, team_list
from .services import BODY_MAX, MAX_ATTACHMENTS, SUBJECT_MAX

WEEKDAYS = (
    (0, _("Monday")),
    (1, _("Tuesday")),
    (2, _("Wednesday")),
    (3, _("Thursday")),
    (4, _("Friday")),
    (5, _("Saturday")),
    (6, _("Sunday")),
)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, list | tuple):
            if len(data) > MAX_ATTACHMENTS:
                raise forms.ValidationError(_("Attach at most %(count)d files.") % {"count": MAX_ATTACHMENTS})
            return [super(MultipleFileField, self).clean(item, initial) for item in data if item]
        return [super().clean(data, initial)] if data else []


def _user_choices(users, empty_label):
    return [("", empty_label)] + [(str(u.pk), u.get_full_name()) for u in users]


def _attachments_field():
    return MultipleFileField(
        label=_("Attachments"),
        required=False,
        help_text=_("Up to 5 files of 5 MB: PDF, images, text, CSV, Word or Excel."),
    )


class UserChoiceField(forms.ChoiceField):
    """A choice of active users, returned as the user (validated against the offered list)."""

    def __init__(self, *, users, empty_label, **kwargs):
        self._users = {str(u.pk): u for u in users}
        super().__init__(choices=_user_choices(users, empty_label), **kwargs)

    def clean(self, value):
        value = super().clean(value)
        return self._users.get(value) if value else None


class ModelIdChoiceField(forms.ChoiceField):
    def __init__(self, *, queryset, empty_label, **kwargs):
        self._objects = {str(o.pk): o for o in queryset}
        super().__init__(
            choices=[("", empty_label)] + [(k, str(o)) for k, o in self._objects.items()], **kwargs
        )

    def clean(self, value):
        value = super().clean(value)
        return self._objects.get(value) if value else None


class TicketForm(forms.Form):
    subject = forms.CharField(label=_("Subject"), max_length=SUBJECT_MAX)
    description = forms.CharField(
        label=_("Description"), max_length=BODY_MAX, required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    name = forms.CharField(label=_("Customer name"), max_length=200, required=False)
    email = forms.CharField(label=_("Customer e-mail"), max_length=254, required=False)
    phone = forms.CharField(label=_("Customer phone"), max_length=40, required=False)
    channel = forms.ChoiceField(label=_("Channel"), choices=Channel.choices, initial=Channel.PHONE)
    priority = forms.ChoiceField(label=_("Priority"), choices=Priority.choices, initial=Priority.NORMAL)
    attachments = _attachments_field()

    def __init__(self, *args, users=(), can_assign=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"] = ModelIdChoiceField(
            label=_("Category"),
            queryset=category_list(active_only=True),
            empty_label=_("No category"),
            required=False,
        )
        if can_assign:
            self.fields["assignee"] = UserChoiceField(
                label=_("Assignee"), users=users, empty_label=_("Unassigned"), required=False
            )
            self.fields["team"] = ModelIdChoiceField(
                label=_("Team"), queryset=team_list(), empty_label=_("No team"), required=False
            )


class MessageForm(forms.Form):
    body = forms.CharField(label=_("Message"), max_length=BODY_MAX, widget=forms.Textarea(attrs={"rows": 4}))
    attachments = _attachments_field()


class StatusForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), choices=Status.choices)


class AssignForm(forms.Form):
    def __init__(self, *args, users=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"] = UserChoiceField(
            label=_("Assignee"), users=users, empty_label=_("Unassigned"), required=False
        )
        self.fields["team"] = ModelIdChoiceField(
            label=_("Team"), queryset=team_list(), empty_label=_("Keep the team"), required=False
        )


class BulkAssignForm(AssignForm):
    ids = forms.CharField(required=False, widget=forms.MultipleHiddenInput)

    def clean_ids(self):
        values = self.data.getlist("ids") if hasattr(self.data, "getlist") else []
        ids = [parse_id(v) for v in values[:500]]
        ids = [i for i in ids if i is not None]
        if not ids:
            raise forms.ValidationError(_("Choose at least one ticket."))
        return ids


class TicketUpdateForm(forms.Form):
    priority = forms.ChoiceField(label=_("Priority"), choices=Priority.choices)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"] = ModelIdChoiceField(
            label=_("Category"), queryset=category_list(), empty_label=_("No category"), required=False
        )


class QueueFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), max_length=100, required=False)
    status = forms.ChoiceField(
        label=_("Status"),
        choices=[("", _("Open (new, open, waiting)")), ("open_all", _("All open"))] + list(Status.choices),
        required=False,
    )
    priority = forms.ChoiceField(
        label=_("Priority"), choices=[("", _("Any priority"))] + list(Priority.choices), required=False
    )
    channel = forms.ChoiceField(
        label=_("Channel"), choices=[("", _("Any channel"))] + list(Channel.choices), required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"] = forms.ChoiceField(
            label=_("Category"),
            choices=[("", _("Any category"))] + [(str(c.pk), c.name) for c in category_list()],
            required=False,
        )


class ContactForm(forms.Form):
    name = forms.CharField(label=_("Your name"), max_length=100)
    email = forms.EmailField(label=_("Your e-mail"), max_length=254)
    phone = forms.CharField(label=_("Phone (optional)"), max_length=40, required=False)
    subject = forms.CharField(label=_("Subject"), max_length=SUBJECT_MAX)
    message = forms.CharField(label=_("Message"), max_length=5000, widget=forms.Textarea(attrs={"rows": 6}))
    # Honeypot: hidden from people by CSS (app.css .hp-field); a bot that fills it is turned away.
    website = forms.CharField(label=_("Leave this empty"), required=False, max_length=200)


class CategoryForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=80)
    position = BoundedIntegerField(label=_("Position"), min_value=0, max_value=999, initial=0, required=False)
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)


class TeamForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=80)

    def __init__(self, *args, users=(), **kwargs):
        super().__init__(*args, **kwargs)
        self._users = {str(u.pk): u for u in users}
        self.fields["manager"] = UserChoiceField(
            label=_("Manager"), users=users, empty_label=_("No manager"), required=False
        )
        self.fields["members"] = forms.MultipleChoiceField(
            label=_("Members"),
            choices=[(k, u.get_full_name()) for k, u in self._users.items()],
            required=False,
            widget=forms.CheckboxSelectMultiple,
        )

    def clean_members(self):
        return [self._users[k] for k in self.cleaned_data["members"]]


class SlaPolicyForm(forms.Form):
    priority = forms.ChoiceField(label=_("Priority"), choices=Priority.choices)
    first_response_minutes = BoundedIntegerField(
        label=_("First response within (business minutes)"), min_value=1, max_value=525_600
    )
    resolution_minutes = BoundedIntegerField(
        label=_("Resolution within (business minutes)"), min_value=1, max_value=525_600
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"] = ModelIdChoiceField(
            label=_("Category"), queryset=category_list(), empty_label=_("Every category"), required=False
        )


class WorkingHoursForm(forms.Form):
    """One text field per weekday: "09:00-12:00, 13:00-18:00" (empty: closed)."""

    holiday_country = forms.CharField(
        label=_("Public holidays of (country code)"),
        max_length=2,
        required=False,
        help_text=_("e.g. CN for China's public holidays and make-up working days; empty for none."),
    )
    acknowledge_contact_form = forms.BooleanField(
        label=_("Acknowledge contact-form requests by e-mail"), required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for day, label in WEEKDAYS:
            self.fields[f"day_{day}"] = forms.CharField(label=label, max_length=100, required=False)

    @staticmethod
    def initial_from(desk) -> dict:
        initial = {
            "holiday_country": desk.holiday_country,
            "acknowledge_contact_form": desk.acknowledge_contact_form,
        }
        for day, _label in WEEKDAYS:
            intervals = desk.working_hours.get(str(day), [])
            initial[f"day_{day}"] = ", ".join(f"{a}-{b}" for a, b in intervals)
        return initial

    def clean(self):
        cleaned = super().clean()
        hours = {}
        for day, _label in WEEKDAYS:
            text = (cleaned.get(f"day_{day}") or "").strip()
            if not text:
                continue
            intervals = []
            try:
                for part in text.split(","):
                    start, _sep, end = part.strip().partition("-")
                    intervals.append((bh.parse_hhmm(start), bh.parse_hhmm(end)))
                bh.normalise_intervals(intervals)
            except ValueError:
                self.add_error(f"day_{day}", _("Enter opening hours as HH:MM-HH:MM, e.g. 09:00-18:00."))
                continue
            hours[str(day)] = [[bh.format_hhmm(a), bh.format_hhmm(b)] for a, b in intervals]
        cleaned["working_hours"] = hours
        return cleaned


class HolidayForm(forms.Form):
    day = forms.DateField(label=_("Date"), widget=forms.DateInput(attrs={"type": "date"}))
    name = forms.CharField(label=_("Name"), max_length=100)
    is_working_day = forms.BooleanField(label=_("Extra working day (not a holiday)"), required=False)
