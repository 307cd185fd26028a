from django import forms
from django.utils.translation import gettext_lazy as _


class EraseForm(forms.Form):
    confirmation = forms.CharField(
        label=_("Type ERASE to confirm"),  # the word is services.ERASE_CONFIRMATION
        max_length=20,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"}
        ),
    )
