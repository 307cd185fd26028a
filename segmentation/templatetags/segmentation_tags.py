"""Small display helpers for the segmentation pages.

{% load segmentation_tags %}
{{ 0.1234|percent }}        -> 12.3%
{{ cell.intensity|heat }}   -> the CSS class of an R x F heatmap cell (heat-0 .. heat-20, in app.css)
"""

from django import template
from django.utils.formats import number_format

register = template.Library()
HEAT_STEPS = 20


@register.filter
def percent(value, places: int = 1):
    """A 0-1 share as a percentage; '' for None."""
    if value is None or value == "":
        return ""
    try:
        share = float(value) * 100
    except (TypeError, ValueError):
        return ""
    return f"{number_format(round(share, int(places)), decimal_pos=int(places))}%"


@register.filter
def heat(intensity) -> str:
    """The class (heat-0 .. heat-20) colouring a heatmap cell with intensity 0..1: a class rather than
    a style="" attribute, which the Content-Security-Policy does not allow."""
    try:
        level = max(0.0, min(1.0, float(intensity)))
    except (TypeError, ValueError):
        level = 0.0
    return f"heat-{round(level * HEAT_STEPS)}"


@register.filter
def get_item(mapping, key):
    if isinstance(mapping, dict):
        return mapping.get(key)
    return None
