import zoneinfo

from django.conf import settings
from django.utils import timezone, translation


class UserPreferencesMiddleware:
    """Activates the user's language and time zone, else the tenant's defaults.

    Precedence for language: the user's saved choice, then the language cookie (set by the
    switcher, also for anonymous visitors), then the tenant's default, then Accept-Language.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = getattr(request, "tenant", None)
        user = getattr(request, "user", None)
        language = None
        if user is not None and user.is_authenticated and getattr(user, "language", ""):
            language = user.language
        elif settings.LANGUAGE_COOKIE_NAME not in request.COOKIES and getattr(tenant, "default_language", ""):
            language = tenant.default_language
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()

        zone_name = (getattr(user, "time_zone", "") if user and user.is_authenticated else "") or getattr(
            tenant, "time_zone", ""
        )
        try:
            timezone.activate(zoneinfo.ZoneInfo(zone_name)) if zone_name else timezone.deactivate()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        return self.get_response(request)
