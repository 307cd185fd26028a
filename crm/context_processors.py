from django.db import connection

from .navigation import nav_for


def navigation(request):
    """The navigation of the page. Computed once per request: a page that renders fragments with the
    request (the 360 page renders each app's panel so) runs the context processors for each of them,
    and the badges behind the entries cost a cache read or a query each time."""
    cached = getattr(request, "_crm_navigation", None)
    if cached is not None:
        return cached
    tenant = getattr(request, "tenant", None)
    is_public = connection.schema_name == "public"
    user = getattr(request, "user", None)
    context = {
        "current_tenant": None if is_public else tenant,
        "is_public_site": is_public,
        "nav_items": [] if is_public or user is None else nav_for(user),
    }
    if user is not None and getattr(user, "is_authenticated", False):
        request._crm_navigation = context  # not before login: the request's user changes then
    return context
