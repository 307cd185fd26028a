"""Translated labels of the interaction log: channels, directions and the default outcomes.

The default outcomes are stored with a stable key and no name of their own, so every user reads
them in their language; a tenant admin may rename one (the name then wins) or add their own.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    PHONE = "phone", _("Phone")
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    WECHAT = "wechat", _("WeChat")
    CHAT = "chat", _("Online chat")
    SOCIAL = "social", _("Social media")
    MEETING = "meeting", _("Meeting")
    STORE_VISIT = "store_visit", _("Store visit")
    OTHER = "other", _("Other")


class Direction(models.TextChoices):
    INBOUND = "in", _("Inbound")
    OUTBOUND = "out", _("Outbound")


# Bootstrap Icons per channel (timeline, lists).
CHANNEL_ICONS = {
    Channel.PHONE: "telephone",
    Channel.EMAIL: "envelope",
    Channel.SMS: "chat-left-text",
    Channel.WECHAT: "wechat",
    Channel.CHAT: "chat-dots",
    Channel.SOCIAL: "people",
    Channel.MEETING: "calendar-event",
    Channel.STORE_VISIT: "shop",
    Channel.OTHER: "dot",
}

# key -> label of the outcomes every tenant starts with (in this order).
DEFAULT_OUTCOMES = {
    "reached": _("Reached"),
    "no_answer": _("No answer"),
    "left_message": _("Left message"),
    "interested": _("Interested"),
    "not_interested": _("Not interested"),
    "complaint": _("Complaint"),
    "purchase_promised": _("Purchase promised"),
    "call_back_later": _("Call back later"),
    "resolved": _("Issue resolved"),
}


def channel_label(value: str) -> str:
    try:
        return str(Channel(value).label)
    except ValueError:
        return value


def direction_label(value: str) -> str:
    try:
        return str(Direction(value).label)
    except ValueError:
        return value
