"""Forms parse input; the services validate and write. Service ValidationErrors are put back on the
form's fields with `crm.errors.show_service_error`."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import escape
from django.utils.translation import gettext_lazy as _

from crm.accounts.models import User
from crm.accounts.permissions import MANAGERS, user_has_role
from crm.numbers import BoundedDecimalField, BoundedIntegerField, parse_id

from . import custom_fields as cf
from .countries import country_choices
from .labels import EXTRA_FIELD_LABELS as FIELD_LABELS  # the labels the History card and audit log use
from .models import Customer, CustomFieldDefinition, Tag
from .phone import normalise_phone
from .registry import registry
from .selectors import assignable_users, custom_field_list, sort_options, tag_list

YES_NO_ANY = [("", _("Any")), ("yes", _("Yes")), ("no", _("No"))]
YES_NO_BLANK = [("", "—"), ("true", _("Yes")), ("false", _("No"))]


def _user_choice_label(user: User) -> str:
    return user.get_full_name()


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return _user_choice_label(obj)


class UserMultipleChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return _user_choice_label(obj)


def custom_form_field(definition: CustomFieldDefinition) -> forms.Field:
    """The input for one custom field on the customer form."""
    # Django's and crispy's field templates print help text with |safe (it is meant to be written by
    # developers); this one is written by a company admin, so it is escaped here.
    common = {
        "label": definition.label,
        "required": definition.required,
        "help_text": escape(definition.help_text),
    }
    kind = definition.field_type
    if kind == cf.FieldType.NUMBER:
        return BoundedDecimalField(max_digits=21, decimal_places=6, **common)
    if kind == cf.FieldType.DATE:
        return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), **common)
    if kind == cf.FieldType.CHOICE:
        return forms.ChoiceField(choices=[("", "—"), *[(c, c) for c in definition.choices]], **common)
    if kind == cf.FieldType.MULTI_CHOICE:
        return forms.MultipleChoiceField(
            choices=[(c, c) for c in definition.choices], widget=forms.CheckboxSelectMultiple, **common
        )
    if kind == cf.FieldType.BOOLEAN:
        return forms.ChoiceField(choices=YES_NO_BLANK, **common)
    return forms.CharField(max_length=cf.TEXT_MAX_LENGTH, **common)


def custom_initial(definition: CustomFieldDefinition, value: Any) -> Any:
    if definition.field_type == cf.FieldType.BOOLEAN and isinstance(value, bool):
        return "true" if value else "false"
    return value


PROFILE_FORM_FIELDS = [
    "name",
    "kind",
    "email",
    "phone",
    "gender",
    "birthday",
    "country",
    "province",
    "city",
    "street",
    "postcode",
    "income_band",
    "occupation",
    "language",
    "source",
    "external_id",
    "email_consent",
    "sms_consent",
]


class CustomerForm(forms.Form):
    """Create and edit a customer. Managers also pick the owner; everyone picks tags."""

    def __init__(self, *args, user: User, customer: Customer | None = None, **kwargs):
        self.user = user
        self.customer = customer
        self.definitions = list(custom_field_list())
        if customer is not None and "initial" not in kwargs:
            initial = {name: getattr(customer, name) for name in PROFILE_FORM_FIELDS}
            initial["owner"] = customer.owner_id
            initial["tags"] = [t.pk for t in customer.tags.live()]
            for definition in self.definitions:
                value = (customer.custom_fields or {}).get(definition.key)
                initial[cf.form_field_name(definition.key)] = custom_initial(definition, value)
            kwargs["initial"] = initial
        super().__init__(*args, **kwargs)
        self.fields.update(forms.fields_for_model(Customer, fields=PROFILE_FORM_FIELDS))
        self.fields["phone"] = forms.CharField(
            label=FIELD_LABELS["phone"], max_length=40, required=False, help_text=_("e.g. 138 0013 8000")
        )
        self.fields["birthday"].widget = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
        # Countries by name in the reader's language (stored as the ISO code).
        self.fields["country"] = forms.ChoiceField(
            label=self.fields["country"].label,
            required=False,
            choices=country_choices(current=(self.initial or {}).get("country") or ""),
        )
        self.fields["language"].choices = [("", _("The company's language"))] + [
            (code, label) for code, label in self.fields["language"].choices if code
        ]
        self.fields["language"].help_text = _("Surveys and other messages to the customer are written in it.")
        self.fields["name"].widget.attrs["autofocus"] = True
        check_url = reverse("customers:check_duplicate")
        for name in ("email", "phone"):
            self.fields[name].widget.attrs.update(
                {
                    "hx-get": check_url,
                    "hx-trigger": "input changed delay:400ms, change",
                    "hx-target": f"#duplicate-{name}",
                    "hx-include": "this, [name=customer_id]",
                    "hx-sync": "this:replace",
                    "autocomplete": "off",
                }
            )
        if user_has_role(user, MANAGERS):
            self.fields["owner"] = UserChoiceField(
                queryset=assignable_users(),
                required=False,
                label=FIELD_LABELS["owner"],
                empty_label=_("Unassigned"),
            )
        self.fields["tags"] = forms.ModelMultipleChoiceField(
            queryset=tag_list(),
            required=False,
            label=FIELD_LABELS["tags"],
            widget=forms.SelectMultiple(attrs={"size": 4}),
        )
        self.fields["new_tags"] = forms.CharField(
            label=_("New tags"), required=False, max_length=300, help_text=_("Comma-separated")
        )
        for definition in self.definitions:
            self.fields[cf.form_field_name(definition.key)] = custom_form_field(definition)

    def clean_phone(self) -> str:
        # Checked here too so a bad phone is reported together with the form's other errors.
        return normalise_phone(self.cleaned_data.get("phone") or "")

    def main_fields(self) -> list:
        """Bound fields in display order (custom fields come separately)."""
        names = [*PROFILE_FORM_FIELDS, "owner", "tags", "new_tags"]
        return [self[name] for name in names if name in self.fields]

    def custom_bound_fields(self) -> list:
        return [self[cf.form_field_name(d.key)] for d in self.definitions]

    def service_data(self) -> dict[str, Any]:
        """cleaned_data in the shape customer_create / customer_update take (tags resolved by the view)."""
        data = {name: self.cleaned_data.get(name) for name in PROFILE_FORM_FIELDS}
        for name in (
            "email",
            "phone",
            "country",
            "province",
            "city",
            "street",
            "postcode",
            "occupation",
            "language",
        ):
            data[name] = data[name] or ""
        data["external_id"] = data["external_id"] or ""
        data["custom_fields"] = {
            d.key: self.cleaned_data.get(cf.form_field_name(d.key)) for d in self.definitions
        }
        if "owner" in self.fields:
            data["owner"] = self.cleaned_data.get("owner")
        return data

    def new_tag_names(self) -> list[str]:
        raw = self.cleaned_data.get("new_tags") or ""
        return [name.strip() for name in raw.replace("，", ",").split(",") if name.strip()]


class CustomerFilterForm(forms.Form):
    """The filter bar of the list. `filters()` returns the dict customer_list takes."""

    q = forms.CharField(required=False, max_length=200, label=_("Search"))
    owner = forms.ChoiceField(required=False, label=_("Owner"))
    tag = forms.ModelChoiceField(queryset=Tag.objects.none(), required=False, label=_("Tag"))
    source = forms.ChoiceField(required=False, label=_("Source"))
    city = forms.CharField(required=False, max_length=100, label=_("City"))
    email_consent = forms.ChoiceField(required=False, choices=YES_NO_ANY, label=_("Email consent"))
    sms_consent = forms.ChoiceField(required=False, choices=YES_NO_ANY, label=_("SMS consent"))
    orders_min = BoundedIntegerField(required=False, min_value=0, label=_("At least this many orders"))
    created_from = forms.DateField(
        required=False, label=_("Created on or after"), widget=forms.DateInput(attrs={"type": "date"})
    )
    sort = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, user: User, definitions=None, owners=None, tags=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.definitions = list(definitions if definitions is not None else custom_field_list())
        owners = owners if owners is not None else list(assignable_users())
        self.fields["owner"].choices = [
            ("", _("Anyone")),
            ("none", _("Unassigned")),
            *[(str(u.pk), _user_choice_label(u)) for u in owners],
        ]
        self._owners = {str(u.pk): u for u in owners}
        self.fields["tag"].queryset = tag_list()
        if tags is not None:
            self.fields["tag"].choices = [("", _("Any tag")), *[(t.pk, t.name) for t in tags]]
        self.fields["tag"].empty_label = _("Any tag")
        self.fields["source"].choices = [("", _("Any source")), *Customer.Source.choices]
        self.custom_filter_names: list[str] = []
        for definition in self.definitions:
            self._add_custom_filter(definition)
        self.registered_filter_names: list[str] = []
        for item in registry.sorted_filters():
            if item.key in self.fields:
                continue
            try:
                field = item.form_field()
            except Exception:  # noqa: BLE001 - another app's filter must not break the list
                continue
            field.required = False
            field.label = field.label or item.label
            if hasattr(field, "limit_to"):  # a field whose choices depend on the viewer
                field.limit_to(user)
            self.fields[item.key] = field
            self.registered_filter_names.append(item.key)

        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.HiddenInput):
                continue
            css = (
                "form-select form-select-sm"
                if isinstance(widget, forms.Select)
                else "form-control form-control-sm"
            )
            widget.attrs["class"] = f"{widget.attrs.get('class', '')} {css}".strip()

    def basic_fields(self) -> list:
        names = (["owner"] if user_has_role(self.user, MANAGERS) else []) + ["tag", "source"]
        return [self[name] for name in names]

    def advanced_fields(self) -> list:
        names = [
            "city",
            "email_consent",
            "sms_consent",
            "orders_min",
            "created_from",
            *self.custom_filter_names,
            *self.registered_filter_names,
        ]
        return [self[name] for name in names]

    def _add_custom_filter(self, definition: CustomFieldDefinition) -> None:
        name = cf.form_field_name(definition.key)
        label = definition.label
        kind = definition.field_type
        if kind in (cf.FieldType.NUMBER, cf.FieldType.DATE):
            field_class = BoundedDecimalField if kind == cf.FieldType.NUMBER else forms.DateField
            number = {"max_digits": 21, "decimal_places": 6}
            extra = (
                number if kind == cf.FieldType.NUMBER else {"widget": forms.DateInput(attrs={"type": "date"})}
            )
            self.fields[f"{name}_min"] = field_class(
                required=False, label=_("%(label)s from") % {"label": label}, **extra
            )
            extra = (
                number if kind == cf.FieldType.NUMBER else {"widget": forms.DateInput(attrs={"type": "date"})}
            )
            self.fields[f"{name}_max"] = field_class(
                required=False, label=_("%(label)s to") % {"label": label}, **extra
            )
            self.custom_filter_names += [f"{name}_min", f"{name}_max"]
            return
        if kind in (cf.FieldType.CHOICE, cf.FieldType.MULTI_CHOICE):
            field = forms.ChoiceField(choices=[("", _("Any")), *[(c, c) for c in definition.choices]])
        elif kind == cf.FieldType.BOOLEAN:
            field = forms.ChoiceField(choices=YES_NO_ANY)
        else:
            field = forms.CharField(max_length=200)
        field.required = False
        field.label = label
        self.fields[name] = field
        self.custom_filter_names.append(name)

    def filters(self) -> dict[str, Any]:
        """Cleaned filters; an invalid field is ignored (the list shows the message next to it)."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        filters: dict[str, Any] = {
            "q": (data.get("q") or "").strip(),
            "tag": data.get("tag"),
            "source": data.get("source") or "",
            "city": (data.get("city") or "").strip(),
            "orders_min": data.get("orders_min"),
            "created_from": data.get("created_from"),
            "sort": data.get("sort") or "",
        }
        owner = data.get("owner") or ""
        filters["owner"] = "none" if owner == "none" else self._owners.get(owner)
        for consent in ("email_consent", "sms_consent"):
            value = data.get(consent)
            filters[consent] = True if value == "yes" else False if value == "no" else None
        custom: dict[str, Any] = {}
        for definition in self.definitions:
            name = cf.form_field_name(definition.key)
            if definition.field_type in (cf.FieldType.NUMBER, cf.FieldType.DATE):
                custom[definition.key] = (data.get(f"{name}_min"), data.get(f"{name}_max"))
            elif definition.field_type == cf.FieldType.BOOLEAN:
                value = data.get(name)
                custom[definition.key] = True if value == "yes" else False if value == "no" else None
            else:
                custom[definition.key] = (data.get(name) or "").strip() or None
        filters["custom_fields"] = custom
        for key in self.registered_filter_names:
            filters[key] = data.get(key)
        return filters

    def active_advanced(self) -> bool:
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        names = [
            *self.custom_filter_names,
            *self.registered_filter_names,
            "city",
            "email_consent",
            "sms_consent",
            "orders_min",
            "created_from",
        ]
        return any(data.get(name) not in (None, "", [], False) for name in names)


def sort_choices() -> list[tuple[str, str]]:
    return [(key, str(option.label)) for key, option in sort_options().items()]


class BulkActionForm(forms.Form):
    ACTIONS = [
        ("tag_add", _("Add tag")),
        ("tag_remove", _("Remove tag")),
        ("assign", _("Assign owner")),
        ("delete", _("Move to recycle bin")),
    ]
    MANAGER_ACTIONS = {"assign", "delete"}

    action = forms.ChoiceField(choices=ACTIONS)
    tag = forms.CharField(required=False, max_length=60)
    owner = forms.ChoiceField(required=False)
    next = forms.CharField(required=False, max_length=2000)

    @classmethod
    def action_choices(cls, user: User) -> list[tuple[str, str]]:
        if user_has_role(user, MANAGERS):
            return list(cls.ACTIONS)
        return [c for c in cls.ACTIONS if c[0] not in cls.MANAGER_ACTIONS]

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["action"].choices = self.action_choices(user)
        self.fields["owner"].choices = [
            ("", _("Unassigned")),
            *[(str(u.pk), _user_choice_label(u)) for u in assignable_users()],
        ]

    def selected_ids(self) -> list[int]:
        raw = self.data.getlist("ids") if hasattr(self.data, "getlist") else self.data.get("ids", [])
        return [pk for pk in map(parse_id, raw[:500]) if pk is not None]

    def clean(self):
        data = super().clean()
        action = data.get("action")
        if not self.selected_ids():
            raise ValidationError(_("Select customers first."))
        if action in ("tag_add", "tag_remove") and not (data.get("tag") or "").strip():
            self.add_error("tag", _("Enter a tag name."))
        if action == "assign":
            owner_id = data.get("owner") or ""
            data["owner_user"] = assignable_users().filter(pk=owner_id).first() if owner_id else None
        return data


class ShareForm(forms.Form):
    users = UserMultipleChoiceField(
        queryset=User.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple(attrs={"class": "form-check-input"}),  # drawn one per line
        label=FIELD_LABELS["shared_with"],
    )

    def __init__(self, *args, customer: Customer, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["users"].queryset = assignable_users().filter(role="sales").exclude(pk=customer.owner_id)


class RefundForm(forms.Form):
    amount = BoundedDecimalField(max_digits=12, decimal_places=2, min_value=0, label=_("Amount"))
    reason = forms.CharField(max_length=300, required=False, label=_("Reason"))


class CustomFieldDefinitionForm(forms.Form):
    key = forms.CharField(
        max_length=50,
        label=_("Key"),
        help_text=_("Lower-case letters, digits and underscores, e.g. wechat_id. Cannot be changed later."),
    )
    label = forms.CharField(max_length=100, label=_("Label"))
    field_type = forms.ChoiceField(choices=CustomFieldDefinition.FieldType.choices, label=_("Type"))
    required = forms.BooleanField(required=False, label=_("Required"))
    choices = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        label=_("Choices"),
        help_text=_("For choice fields: one per line."),
    )
    help_text = forms.CharField(max_length=200, required=False, label=_("Help text"))
    position = BoundedIntegerField(min_value=0, max_value=32767, initial=0, label=_("Position"))

    def __init__(self, *args, definition: CustomFieldDefinition | None = None, **kwargs):
        if definition is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "key": definition.key,
                "label": definition.label,
                "field_type": definition.field_type,
                "required": definition.required,
                "choices": "\n".join(definition.choices or []),
                "help_text": definition.help_text,
                "position": definition.position,
            }
        super().__init__(*args, **kwargs)
        self.definition = definition
        if definition is not None:
            for name in ("key", "field_type"):
                self.fields[name].disabled = True
                self.fields[name].required = False
