"""One helper shows a service's error to the user: on a form (at its field when the form has it) or
as messages; ValidationError, ApplicationError and a caught PermissionDenied alike."""

import pytest
from django import forms
from django.contrib.messages import get_messages
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import RequestFactory

from crm.errors import SERVICE_ERRORS, ApplicationError, service_error_text, show_service_error


class NameForm(forms.Form):
    name = forms.CharField()
    file = forms.CharField(required=False)


def _form() -> NameForm:
    form = NameForm({"name": "Ann"})
    assert form.is_valid()
    return form


def _request():
    request = RequestFactory().post("/")
    request._messages = CookieStorage(request)
    return request


def _messages(request) -> list[str]:
    return [str(message) for message in get_messages(request)]


def test_field_errors_go_to_their_field_and_the_rest_on_top():
    form = _form()
    show_service_error(
        form,
        ValidationError({"name": ["Too short.", "Taken."], "owner": ["Not a user."], "__all__": ["No."]}),
    )
    assert form.errors["name"] == ["Too short.", "Taken."]
    assert form.non_field_errors() == ["Not a user.", "No."]  # the form has no "owner" field


def test_a_plain_validation_error_goes_on_top_or_at_the_field_asked_for():
    on_top, at_file = _form(), _form()
    show_service_error(on_top, ValidationError(["The file is empty.", "Upload another."]))
    show_service_error(at_file, ValidationError("The file is empty."), field="file")
    assert on_top.non_field_errors() == ["The file is empty.", "Upload another."]
    assert at_file.errors["file"] == ["The file is empty."] and not at_file.non_field_errors()


def test_an_application_error_shows_its_message_on_the_form_or_at_its_field():
    form = _form()
    show_service_error(form, ApplicationError("This import can no longer be changed."))
    show_service_error(form, ApplicationError("Pick another name.", field="name"))
    assert form.non_field_errors() == ["This import can no longer be changed."]
    assert form.errors["name"] == ["Pick another name."]


def test_given_a_request_every_message_becomes_an_error_message():
    request = _request()
    show_service_error(request, ValidationError({"name": ["Too short."], "__all__": ["No."]}))
    show_service_error(request, ApplicationError("The export user is no longer active."))
    show_service_error(request, PermissionDenied("Only the owner can delete this customer."))
    show_service_error(request, PermissionDenied())
    assert _messages(request) == [
        "Too short.",
        "No.",
        "The export user is no longer active.",
        "Only the owner can delete this customer.",
        "You are not allowed to do that.",
    ]


def test_one_line_for_a_fragment_and_one_tuple_to_catch():
    assert (
        service_error_text(ValidationError({"name": ["Too short."], "email": ["Bad."]})) == "Too short. Bad."
    )
    for error in (ValidationError("x"), ApplicationError("y")):
        with pytest.raises(SERVICE_ERRORS):
            raise error
    assert not issubclass(PermissionDenied, SERVICE_ERRORS)  # a 403 unless a view chooses to show it
