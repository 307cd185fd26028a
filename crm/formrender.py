"""The site's form renderer (settings.FORM_RENDERER): Django's own, with its input and select templates
written in Python.

Django renders a select by including one template per option, and that one includes another for the
option's attributes: the customer list's filter form (31 fields, 118 options) spent a sixth of a
list request there. `FastWidgets.render` writes the same text as those templates from the same
context, for the templates named in `_WRITERS`, and hands every other template (and any context it
does not recognise) to Django. Every page of the site is rendered both ways and compared
(tests/crm/test_access_matrix.py), and awkward values too (tests/crm/test_formrender.py), so a Django
upgrade that changes those templates fails there.
"""

from __future__ import annotations

from django.forms.renderers import DjangoTemplates
from django.template.base import render_value_in_context
from django.template.context import Context
from django.utils.html import conditional_escape
from django.utils.safestring import SafeData

_WIDGETS = "django/forms/widgets/"
# Each of these templates is `{% include "django/forms/widgets/input.html" %}` and nothing else.
_INPUTS = (
    *("text", "search", "email", "tel", "url", "password"),
    *("number", "date", "time", "datetime", "hidden"),
)


class _Unsupported(Exception):
    """A context the Python writers do not mirror: Django's templates render it instead."""


class FastWidgets(DjangoTemplates):
    def render(self, template_name, context, request=None):
        writer = _WRITERS.get(template_name)
        if writer is not None and request is None:
            try:
                return writer(context["widget"])
            except (_Unsupported, KeyError, TypeError, ValueError):
                pass
        return super().render(template_name, context, request)


_CONTEXT = Context()  # autoescape on, the active language's formats: as a widget template's context


def _text(value) -> str:
    """`{{ value }}`: localised and escaped as the template engine does."""
    return render_value_in_context(value, _CONTEXT)


def _formatted(value) -> str:
    """`{{ value|stringformat:'s' }}`: a safe value stays as it is (the filter is marked is_safe); a tuple
    would be formatted as arguments, so it is left to the template."""
    if isinstance(value, tuple):
        raise _Unsupported
    text = "%s" % value  # noqa: UP031 - the filter's own formatting
    return text if isinstance(value, SafeData) else conditional_escape(text)


def _attrs(attrs: dict) -> str:
    """django/forms/widgets/attrs.html"""
    parts = []
    for name, value in attrs.items():
        if value is False:
            continue
        parts.append(f" {_text(name)}" if value is True else f' {_text(name)}="{_formatted(value)}"')
    return "".join(parts)


def _input(widget: dict) -> str:
    """django/forms/widgets/input.html (and the templates that only include it), stripped."""
    value = widget["value"]
    shown = f' value="{_formatted(value)}"' if value != None else ""  # noqa: E711 - the template's test
    kind, name = _text(widget["type"]), _text(widget["name"])
    return f'<input type="{kind}" name="{name}"{shown}{_attrs(widget["attrs"])}>'


def _option(option: dict) -> str:
    """django/forms/widgets/select_option.html (its file ends with a line break, which the select keeps)"""
    if option.get("template_name") != _WIDGETS + "select_option.html":
        raise _Unsupported
    value, label = _formatted(option["value"]), _text(option["label"])
    return f'<option value="{value}"{_attrs(option["attrs"])}>{label}</option>\n'


def _select(widget: dict) -> str:
    """django/forms/widgets/select.html, stripped."""
    parts = [f'<select name="{_text(widget["name"])}"{_attrs(widget["attrs"])}>']
    for group_name, group_choices, _index in widget["optgroups"]:
        if group_name:
            parts.append(f'\n  <optgroup label="{_text(group_name)}">')
        for option in group_choices:
            parts.append("\n  " + _option(option))
        if group_name:
            parts.append("\n  </optgroup>")
    parts.append("\n</select>")
    return "".join(parts)


_WRITERS = {_WIDGETS + "select.html": _select, **{f"{_WIDGETS}{name}.html": _input for name in _INPUTS}}
