from django.db import connection

from .navigation import nav_for


def navigation(request):
    tenant = getattr(request, "tenant", None)
    is_public = connection.schema_name == "public"
    user = getattr(request, "user", None)
    return {
        "current_tenant": None if is_public else tenant,
        "is_public_site": is_public,
        "nav_items": [] if is_public or user is None else nav_for(user),
    }
