"""crm/formrender.py writes Django's input and select templates in Python: the same text as Django's own
renderer for the values those widgets meet, the awkward ones included. (Every page of the site is
compared as well: tests/crm/test_access_matrix.py, `test_every_page_shows_its_fields_...`.)"""

from datetime import date, datetime
from decimal import Decimal

import pytest
from django import forms
from django.forms.renderers import DjangoTemplates
from django.utils import timezone, translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from crm.formrender import FastWidgets

AWKWARD = "a \"quoted\" <b>bold</b> & 'single'"

CHOICES = [
    ("", _("Any")),
    (1, "one"),
    ("two", AWKWARD),
    ("3", mark_safe("<i>safe</i>")),  # noqa: S308 - a safe label stays as it is, as in the template
    (Decimal("1234.5"), Decimal("1234.5")),
    (date(2026, 12, 7), date(2026, 12, 7)),
    (_("Group"), [("g1", _("Yes")), ("g2", "No")]),
]

CASES = [
    (forms.TextInput(), "q", "王小明"),
    (forms.TextInput(attrs={"class": "form-control", "required": True, "disabled": False}), "q", AWKWARD),
    (forms.TextInput(), "q", None),
    (forms.TextInput(), "q", ""),
    (forms.TextInput(attrs={"placeholder": _("Search")}), "q", mark_safe("<x>")),  # noqa: S308
    (forms.NumberInput(attrs={"min": 0, "step": Decimal("0.01")}), "n", 12),
    (forms.NumberInput(), "n", Decimal("1234.50")),
    (forms.DateInput(attrs={"type": "date"}), "d", date(2026, 12, 7)),
    (forms.DateInput(), "d", "2026-99-99"),
    (forms.HiddenInput(), "sort", "-total_spent"),
    (forms.EmailInput(), "e", "x@example.com"),
    (forms.PasswordInput(render_value=True), "p", "secret"),
    (forms.PasswordInput(), "p", "secret"),
    (forms.URLInput(), "u", "https://example.com/?a=1&b=2"),
    (forms.TimeInput(), "t", "08:00"),
    (forms.DateTimeInput(), "dt", datetime(2026, 12, 7, 8, 30)),
    (forms.Select(choices=CHOICES), "s", "two"),
    (forms.Select(choices=CHOICES), "s", 1),
    (forms.Select(choices=CHOICES), "s", None),
    (forms.Select(choices=CHOICES, attrs={"class": "form-select", "aria-invalid": "true"}), "s", "g2"),
    (forms.Select(choices=[]), "s", ""),
    (forms.SelectMultiple(choices=CHOICES), "m", ["two", "g1", "3"]),
    (forms.NullBooleanSelect(), "b", True),
    (forms.Select(choices=[("a", "A")], attrs={"data-x": ("tuple", "value")}), "s", "a"),  # left to Django
]


@pytest.mark.parametrize("language", ["en", "zh-hans"])
@pytest.mark.parametrize(
    ("widget", "name", "value"), CASES, ids=[f"{i}-{type(case[0]).__name__}" for i, case in enumerate(CASES)]
)
def test_a_widget_is_written_as_djangos_template_writes_it(widget, name, value, language):
    with translation.override(language), timezone.override("Asia/Shanghai"):
        ours = widget.render(name, value, attrs={"id": f"id_{name}"}, renderer=FastWidgets())
        djangos = widget.render(name, value, attrs={"id": f"id_{name}"}, renderer=DjangoTemplates())
    assert ours == djangos


def test_the_writers_serve_the_inputs_and_selects():
    """The Python writers, not the templates, answer for the widgets they name (else the comparison above
    would compare Django with itself)."""

    class Refusing(FastWidgets):
        def get_template(self, template_name):
            raise AssertionError(f"{template_name} went to the template engine")

    renderer = Refusing()
    forms.Select(choices=CHOICES).render("s", "two", renderer=renderer)
    forms.SelectMultiple(choices=CHOICES).render("m", ["two"], renderer=renderer)
    for widget in (forms.TextInput(), forms.DateInput(), forms.NumberInput(), forms.HiddenInput()):
        widget.render("x", "1", renderer=renderer)
    with pytest.raises(AssertionError, match="checkbox.html"):
        forms.CheckboxInput().render("c", True, renderer=renderer)
