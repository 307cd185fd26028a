"""Template filters of the service desk."""

from django import template
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def business_duration(seconds) -> str:
    """Business seconds as "1 d 2 h 5 min" (days of 24 business hours are not used: hours run on)."""
    if seconds in (None, ""):
        return ""
    seconds = abs(int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours and minutes:
        return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}
    if hours:
        return _("%(hours)d h") % {"hours": hours}
    return _("%(minutes)d min") % {"minutes": minutes}
