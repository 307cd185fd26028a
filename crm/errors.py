"""The one rule for errors a user should read, and the one helper views use to show them.

- Services raise Django's `ValidationError` for problems with what was entered (a dict of field ->
  messages puts them at their fields) and `ApplicationError` for everything else a user can act on
  ("This import can no longer be changed."). Both carry translated, user-readable text.
- `PermissionDenied` comes only from access helpers and `role_required`; Django turns it into the
  403 page, so views do not catch it.
- Views show either kind with `show_service_error(form_or_request, error)`: on a bound form, field
  errors go to their fields and the rest on top of the form; given a request, every message becomes
  a `messages.error` (for views that redirect).
- A background job's body raises `ApplicationError` (or calls `run.fail`) for a failure the user
  should read; anything else is logged and the user sees the job's fixed failure message
  (crm.jobs.runner), never a stack trace.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest


class ApplicationError(Exception):
    """A failure a user can read and act on that is not about one entered field (or, with `field`,
    about that field of the form the view shows)."""

    def __init__(self, message, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code

    def __str__(self) -> str:
        return str(self.message)


def service_error_messages(error: ValidationError | ApplicationError) -> dict[str | None, list[str]]:
    """field name (None: not about one field) -> the error's messages, in order."""
    if isinstance(error, ApplicationError):
        return {error.field: [str(error.message)]}
    if hasattr(error, "error_dict"):
        shown: dict[str | None, list[str]] = {}
        for field, messages_ in error.message_dict.items():
            key = None if field == "__all__" else field
            shown.setdefault(key, []).extend(messages_)
        return shown
    return {None: list(error.messages)}


def show_service_error(
    target: forms.BaseForm | HttpRequest, error: ValidationError | ApplicationError
) -> None:
    """Show a service's ValidationError or ApplicationError to the user: on a form (at the field when
    the form has it, else on top of the form) or, given a request, as error messages."""
    for field, field_messages in service_error_messages(error).items():
        if isinstance(target, forms.BaseForm):
            at = field if field is not None and field in target.fields else None
            for message in field_messages:
                target.add_error(at, message)
        else:
            for message in field_messages:
                messages.error(target, message)


def service_error_text(error: ValidationError | ApplicationError) -> str:
    """All the error's messages as one line (for an htmx fragment that shows a single message)."""
    return " ".join(
        message for field_messages in service_error_messages(error).values() for message in field_messages
    )
