"""The one rule for errors a user should read, and the one helper views use to show them.

- Services raise Django's `ValidationError` for problems with what was entered (a dict of field ->
  messages puts them at their fields) and `ApplicationError` for everything else a user can act on
  ("The user who asked for this export is no longer active."). Both carry translated, user-readable text.
- `PermissionDenied` comes from access helpers and role checks (`role_required`, and a service's own
  check of the actor's role, kept as a second line behind the view's); Django turns it into the 403
  page. A view catches it only where a user may legitimately try and be refused (an owner-only
  delete), and then shows it like the others.
- Views catch `SERVICE_ERRORS` around the service call and show them with
  `show_service_error(form_or_request, error)`: on a bound form, field errors go to their fields
  and the rest on top of the form (or at `field=`); given a request, every message becomes a
  `messages.error` (for views that redirect). `service_error_text(error)` is the same as one line,
  for an htmx fragment.
- A background job's body raises `ApplicationError` (or calls `run.fail`) for a failure the user
  should read; anything else is logged and the user sees the job's fixed failure message
  (crm.jobs.runner), never a stack trace.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext as _


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


# What a view catches around a service call: `except SERVICE_ERRORS as error: show_service_error(...)`.
SERVICE_ERRORS = (ValidationError, ApplicationError)


def service_error_messages(
    error: ValidationError | ApplicationError | PermissionDenied,
) -> dict[str | None, list[str]]:
    """field name (None: not about one field) -> the error's messages, in order."""
    if isinstance(error, ApplicationError):
        return {error.field: [str(error.message)]}
    if isinstance(error, PermissionDenied):
        return {None: [str(error) or _("You are not allowed to do that.")]}
    if hasattr(error, "error_dict"):
        shown: dict[str | None, list[str]] = {}
        for field, field_messages in error.message_dict.items():
            shown.setdefault(None if field == NON_FIELD_ERRORS else field, []).extend(field_messages)
        return shown
    return {None: list(error.messages)}


def show_service_error(
    target: forms.BaseForm | HttpRequest,
    error: ValidationError | ApplicationError | PermissionDenied,
    *,
    field: str | None = None,
) -> None:
    """Show a service's error to the user: on a form, each message at its field when the form has
    it, else at `field` (default: on top of the form); given a request, as error messages. A
    PermissionDenied a view chose to catch shows its message (or a general one)."""
    for name, field_messages in service_error_messages(error).items():
        for message in field_messages:
            if isinstance(target, forms.BaseForm):
                target.add_error(name if name is not None and name in target.fields else field, message)
            else:
                messages.error(target, message)


def service_error_text(error: ValidationError | ApplicationError | PermissionDenied) -> str:
    """All the error's messages as one line (for an htmx fragment that shows a single message)."""
    return " ".join(
        message for field_messages in service_error_messages(error).values() for message in field_messages
    )
