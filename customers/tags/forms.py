from django import forms
from django.utils.translation import gettext_lazy as _

from customers.models import Tag, TagColor

from .services import NAME_MAX


class TagSearchForm(forms.Form):
    q = forms.CharField(label=_("Search tags"), required=False, max_length=NAME_MAX)


class TagForm(forms.Form):
    name = forms.CharField(label=_("Tag name"), max_length=NAME_MAX)
    color = forms.ChoiceField(label=_("Colour"), choices=TagColor.choices, widget=forms.RadioSelect)


class TagMergeForm(forms.Form):
    target = forms.ModelChoiceField(
        label=_("Merge into"),
        queryset=Tag.objects.none(),
        help_text=_("Its customers get the tag chosen here, and this tag is deleted."),
    )

    def __init__(self, *args, tag: Tag, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].queryset = Tag.objects.live().exclude(pk=tag.pk).order_by("name")
        self.fields["target"].empty_label = _("Choose a tag")
        self.fields["target"].widget.attrs.update(
            {"data-searchable": "true", "data-search-label": _("Search tags")}
        )
