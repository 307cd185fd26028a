"""Small display helpers for the segmentation pages.

{% load segmentation_tags %}
{{ 0.1234|percent }}        -> 12.3%
{{ cell.intensity|heat }}   -> an inline background for the R x F heatmap (numbers only, no user data)
"""

from django import template
from django.utils.formats import number_format

register = template.Library()


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
    """Background and text colour for a heatmap cell with intensity 0..1."""
    try:
        level = max(0.0, min(1.0, float(intensity)))
    except (TypeError, ValueError):
        level = 0.0
    text = "#fff" if level > 0.55 else "inherit"
    return f"background-color: rgba(13, 110, 253, {0.08 + 0.92 * level:.3f}); color: {text};"


@register.filter
def get_item(mapping, key):
    if isinstance(mapping, dict):
        return mapping.get(key)
    return None
