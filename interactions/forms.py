"""Forms parse input; the services validate and write (future dates, unknown channels, an order of
another customer, attachments) and their errors are put back on these fields with
`crm.errors.show_service_error`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.numbers import BoundedIntegerField, parse_id

from . import selectors
from .labels import Channel, Direction
from .services import DURATION_MAX, NOTES_MAX, SUBJECT_MAX

DATETIME_INPUT = "%Y-%m-%dT%H:%M"


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input; each is checked by the service (size limit, type allow-list)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(item, initial) for item in data if item]
        return [super().clean(data, initial)] if data else []


class OutcomeChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.label


class OrderChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.number} · {timezone.localtime(obj.placed_at):%Y-%m-%d}"


class InteractionForm(forms.Form):
    channel = forms.ChoiceField(label=_("Channel"), choices=Channel.choices, initial=Channel.PHONE)
    direction = forms.ChoiceField(
        label=_("Direction"), choices=Direction.choices, initial=Direction.OUTBOUND, widget=forms.RadioSelect
    )
    outcome = OutcomeChoiceField(label=_("Outcome"), queryset=None, required=False, empty_label="—")
    occurred_at = forms.DateTimeField(
        label=_("When"),
        input_formats=[DATETIME_INPUT, "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_INPUT),
    )
    duration_minutes = BoundedIntegerField(
        label=_("Duration (minutes)"), min_value=0, max_value=DURATION_MAX, required=False
    )
    subject = forms.CharField(label=_("Subject"), max_length=SUBJECT_MAX, required=False)
    notes = forms.CharField(
        label=_("Notes"), max_length=NOTES_MAX, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    order = OrderChoiceField(label=_("Order"), queryset=None, required=False, empty_label="—")
    attachments = MultipleFileField(label=_("Attachments"), required=False)
    follow_up_in_days = BoundedIntegerField(
        label=_("Next follow-up in (days)"),
        min_value=1,
        max_value=365,
        required=False,
        help_text=_("Leave empty for no follow-up."),
    )

    def __init__(self, *args, customer, interaction=None, followup=None, **kwargs):
        super().__init__(*args, **kwargs)
        if followup is not None:  # the call logged from a follow-up's row on My day
            self.fields["complete_followup"] = forms.BooleanField(
                label=_("Mark the follow-up “%(title)s” done") % {"title": followup.title},
                required=False,
                initial=True,
            )
        outcomes = selectors.outcome_list(active_only=False)
        if interaction is not None and interaction.outcome_id:
            from django.db.models import Q

            outcomes = outcomes.filter(Q(is_active=True) | Q(pk=interaction.outcome_id))
        else:
            outcomes = outcomes.filter(is_active=True)
        self.fields["outcome"].queryset = outcomes
        self.fields["order"].queryset = selectors.customer_orders_for_choice(customer=customer)
        if interaction is None:
            self.fields["occurred_at"].initial = timezone.localtime().replace(second=0, microsecond=0)
        else:  # a follow-up is offered when logging, not when correcting an interaction
            del self.fields["follow_up_in_days"]

    def service_values(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "channel": data["channel"],
            "direction": data["direction"],
            "occurred_at": data["occurred_at"],
            "duration_minutes": data.get("duration_minutes"),
            "subject": data.get("subject") or "",
            "notes": data.get("notes") or "",
            "outcome": data.get("outcome"),
            "order": data.get("order"),
        }


class OutcomeForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=80)


def _id_field(label) -> forms.Field:
    return forms.CharField(label=label, required=False, max_length=20)


class InteractionFilterForm(forms.Form):
    """The filter bar of the interactions page; invalid values are ignored, as on the customer list."""

    channel = forms.ChoiceField(label=_("Channel"), required=False)
    direction = forms.ChoiceField(label=_("Direction"), required=False)
    outcome = forms.ChoiceField(label=_("Outcome"), required=False)
    author = forms.ChoiceField(label=_("Author"), required=False)
    date_from = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    rfm_segment = forms.ChoiceField(label=_("RFM segment"), required=False)
    segment = forms.ChoiceField(label=_("Saved segment"), required=False)
    customer = forms.CharField(required=False, max_length=20, widget=forms.HiddenInput)
    binned = forms.BooleanField(label=_("Recycle bin"), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        from segmentation.labels import RfmSegment
        from segmentation.selectors import segment_list

        self.user = user
        self.fields["channel"].choices = [("", _("Any channel")), *Channel.choices]
        self.fields["direction"].choices = [("", _("Any direction")), *Direction.choices]
        self.fields["outcome"].choices = [("", _("Any outcome"))] + [
            (str(o.pk), o.label) for o in selectors.outcome_list(active_only=False)
        ]
        self.fields["author"].choices = [("", _("Anyone"))] + [
            (str(u.pk), u.get_full_name()) for u in selectors.author_choices()
        ]
        self.fields["rfm_segment"].choices = [("", _("Any RFM segment")), *RfmSegment.choices]
        self._segments = {s.pk: s for s in segment_list(user=user).order_by("name")}
        self.fields["segment"].choices = [("", _("Any saved segment"))] + [
            (str(pk), s.name) for pk, s in self._segments.items()
        ]

        for field in self.fields.values():
            if isinstance(field.widget, forms.Select):
                field.widget.attrs["class"] = "form-select form-select-sm"
            elif isinstance(field.widget, forms.CheckboxInput):
                field.widget.attrs["class"] = "form-check-input"
            else:
                field.widget.attrs["class"] = "form-control form-control-sm"

    def filters(self) -> dict[str, Any]:
        if not self.is_bound:
            return {}
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        filters: dict[str, Any] = {}
        for key in ("channel", "direction", "rfm_segment", "date_from", "date_to"):
            if data.get(key):
                filters[key] = data[key]
        for key in ("outcome", "author", "customer"):
            number = parse_id(data.get(key))
            if number is not None:
                filters[key] = number
        segment_id = parse_id(data.get("segment"))
        if segment_id is not None and segment_id in self._segments:
            filters["segment"] = self._segments[segment_id]
        if data.get("binned"):
            filters["binned"] = True
        return filters


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label=_("CSV or Excel file"),
        help_text=_(
            "One interaction per row, with a header row. Customers are found by CRM id, e-mail or phone."
        ),
    )


class ImportMappingForm(forms.Form):
    """One select per column of the file: the field it fills, or "do not import"."""

    def __init__(self, *args, headers: list[str], mapping: list[str], samples: list[list[str]], **kwargs):
        super().__init__(*args, **kwargs)
        from .imports import TARGETS

        choices = [("", _("Do not import"))] + [(t.key, t.label) for t in TARGETS]
        self.columns = []
        for index, header in enumerate(headers):
            name = f"col_{index}"
            self.fields[name] = forms.ChoiceField(
                label=header or "—",
                choices=choices,
                required=False,
                initial=mapping[index] if index < len(mapping) else "",
            )
            self.fields[name].widget.attrs["class"] = "form-select form-select-sm"
            example = next((row[index] for row in samples if index < len(row) and row[index]), "")
            self.columns.append({"field": name, "header": header, "example": example[:60]})

    def rows(self) -> list[dict]:
        return [{**column, "bound": self[column["field"]]} for column in self.columns]

    def mapping(self) -> list[str]:
        return [self.cleaned_data.get(f"col_{i}", "") or "" for i in range(len(self.columns))]
