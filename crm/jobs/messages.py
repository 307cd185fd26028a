"""Job messages are stored as a message key (the English msgid) and parameters, and translated when
shown: the user reading a job's progress sees their own language, not the language of the worker
that wrote it (issue 15: "Running · 正在写入评分" for an English user).

A job body reports
    run.progress(40, JobMessage(gettext_noop("Writing rows")))
    run.succeed(message=JobMessage(gettext_noop("%(count)d customers"), count=count))
(`gettext_noop` marks the msgid for the catalogue without translating it). `BackgroundJob.shown_message`
translates it for whoever looks. A plain string is stored and shown as it is (an ApplicationError's
sentence, already in the starter's language).
"""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext


class JobMessage(str):
    """A msgid that carries its parameters (JSON-safe values)."""

    params: dict[str, Any]

    def __new__(cls, msgid: str, **params: Any) -> JobMessage:
        message = super().__new__(cls, msgid)
        message.params = params
        return message


def message_and_params(message: Any) -> tuple[str, dict[str, Any]]:
    """What to store for a message: (text or msgid, parameters)."""
    if isinstance(message, JobMessage):
        return str.__str__(message)[:500], dict(message.params)
    return str(message or "")[:500], {}


def shown(message: str, params: dict[str, Any] | None) -> str:
    """The stored message in the active language."""
    if not message:
        return ""
    text = gettext(message)
    if params:
        from crm.templatetags.crm_format import number

        # Whole numbers with thousands separators ("200,000 行"): the %(n)d of the msgid takes the
        # grouped text.
        grouped = {
            key: number(value) if isinstance(value, int) and not isinstance(value, bool) else value
            for key, value in params.items()
        }
        # A parameter stored as "<name>__msgid" is itself a text of the catalogue ("interactions"):
        # translated too, under <name>.
        for key in [key for key in grouped if key.endswith("__msgid")]:
            grouped[key[: -len("__msgid")]] = gettext(str(grouped.pop(key)))
        grouped_text = re.sub(r"%\((\w+)\)d", lambda m: f"%({m[1]})s" if m[1] in grouped else m[0], text)
        try:
            return grouped_text % grouped
        except (KeyError, TypeError, ValueError):
            return text
    return text
