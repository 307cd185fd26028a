"""Forms of the import pages: upload, column mapping (with options), confirmation."""

from django import forms
from django.conf import settings
from django.utils.html import escape
from django.utils.translation import gettext_lazy as _

from crm.accounts.models import User

from . import parsing
from .columns import BUILTIN_TARGETS, CUSTOMER, LINE, ORDER, target_label
from .planning import POLICY_CREATE, POLICY_SKIP, POLICY_UPDATE

ALLOWED_SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx", ".xlsm")


def _megabytes(size: int) -> int:
    return size // (1024 * 1024)


class UploadForm(forms.Form):
    file = forms.FileField(
        label=_("File"), widget=forms.ClearableFileInput(attrs={"accept": ",".join(ALLOWED_SUFFIXES)})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Built per request, so the text is in the user's language.
        self.fields["file"].help_text = _(
            "CSV (UTF-8, UTF-8 with BOM or GB18030) of at most %(csv_size)d MB and %(csv_rows)s rows, "
            "or Excel .xlsx of at most %(size)d MB and %(rows)s rows."
        ) % {
            "csv_size": _megabytes(parsing.upload_bound(large_csv=True)),
            "csv_rows": f"{settings.IMPORT_MAX_CSV_ROWS:,}",
            "size": _megabytes(parsing.MAX_UPLOAD_BYTES),
            "rows": f"{settings.IMPORT_MAX_ROWS:,}",
        }

    def clean_file(self):
        upload = self.cleaned_data["file"]
        name = (upload.name or "").lower()
        if not name.endswith(ALLOWED_SUFFIXES):
            raise forms.ValidationError(_("Upload a .csv or .xlsx file."), code="file_type")
        if upload.size == 0:
            raise forms.ValidationError(_("The file is empty."), code="empty")
        if upload.size > parsing.upload_bound(large_csv=True):
            raise forms.ValidationError(
                _("The file is larger than %(size)d MB. Split it into smaller files."),
                code="too_large",
                params={"size": _megabytes(parsing.upload_bound(large_csv=True))},
            )
        # (An Excel workbook over its lower bound is refused by parsing, which looks at the content.)
        return upload


def target_choices(custom_fields) -> list:
    """Grouped choices for a column: do not import, customer fields, custom fields, order, order line."""
    groups = {CUSTOMER: [], ORDER: [], LINE: []}
    for target in BUILTIN_TARGETS:
        groups[target.group].append((target.key, target.label))
    custom = [(f"cf:{spec.key}", spec.label) for spec in custom_fields]
    choices = [("", _("— do not import —")), (_("Customer"), groups[CUSTOMER])]
    if custom:
        choices.append((_("Custom fields"), custom))
    choices += [(_("Order"), groups[ORDER]), (_("Order line"), groups[LINE])]
    return choices


POLICY_CHOICES = [
    (POLICY_UPDATE, _("Update them with the file's values (empty cells change nothing)")),
    (POLICY_SKIP, _("Skip them (leave existing customers and orders as they are)")),
    (POLICY_CREATE, _("Create new customers anyway (duplicates can be merged later)")),
]


class MappingForm(forms.Form):
    """One choice per file column, plus what to do with existing records and a default owner."""

    policy = forms.ChoiceField(
        label=_("Customers and orders that already exist"),
        help_text=_("A row matches a customer by CRM ID, else external id, else email, else phone."),
        choices=POLICY_CHOICES,
        widget=forms.RadioSelect,
        initial=POLICY_UPDATE,
    )
    default_owner = forms.ModelChoiceField(
        label=_("Owner of new customers"),
        help_text=_("Used when the file has no owner column or the cell is empty."),
        queryset=User.objects.none(),
        required=False,
        empty_label=_("Nobody (unassigned)"),
    )

    def __init__(self, *args, headers: list[str], samples: list[list[str]], custom_fields, **kwargs):
        super().__init__(*args, **kwargs)
        self.headers = headers
        self.fields["default_owner"].queryset = User.objects.filter(is_active=True).order_by(
            "full_name", "email"
        )
        choices = target_choices(custom_fields)
        self.column_names = []
        for index, header in enumerate(headers):
            name = f"col_{index}"
            examples = [row[index] for row in samples if index < len(row) and row[index]][:3]
            self.fields[name] = forms.ChoiceField(
                label=header or _("Column %(number)d") % {"number": index + 1},
                choices=choices,
                required=False,
                # Cells of the uploaded file: escaped, as field templates print help text with |safe.
                help_text=escape(", ".join(e[:40] for e in examples)),
                widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
            )
            self.column_names.append(name)
        self.custom_fields = custom_fields

    def column_fields(self):
        return [self[name] for name in self.column_names]

    def mapping(self) -> list[str]:
        return [self.cleaned_data.get(name) or "" for name in self.column_names]

    def mapped_labels(self) -> dict[str, str]:
        return {key: target_label(key, self.custom_fields) for key in self.mapping() if key}


class ConfirmForm(forms.Form):
    skip_invalid = forms.BooleanField(
        label=_("Import only the valid rows and leave out the rows with problems"), required=False
    )
