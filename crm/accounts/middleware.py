import time
import zoneinfo

from django.conf import settings
from django.utils import timezone, translation


class UserPreferencesMiddleware:
    """Activates the user's language and time zone, else the tenant's defaults.

    Language, signed in: the user's saved choice, then the language cookie (set by the switcher),
    then the tenant's default (a new user has no choice saved, so they see the company's language).
    Anonymous (login, password reset, public survey pages, the console's login): the cookie, then the
    browser's Accept-Language - as LocaleMiddleware already decided - and the tenant's default only
    when the browser names no language at all. An English browser is never sent to a Chinese page
    because the company was set up in Chinese.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = getattr(request, "tenant", None)
        user = getattr(request, "user", None)
        language = None
        signed_in = user is not None and user.is_authenticated
        chosen_in_browser = settings.LANGUAGE_COOKIE_NAME in request.COOKIES
        if signed_in and getattr(user, "language", ""):
            language = user.language
        elif (
            not chosen_in_browser
            and getattr(tenant, "default_language", "")
            and (signed_in or not request.headers.get("Accept-Language", "").strip())
        ):
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


class SessionActivityMiddleware:
    """Keeps the user's session row's "last seen" current, writing at most once per five minutes."""

    INTERVAL_SECONDS = 300
    SESSION_KEY = "_crm_seen"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        session = getattr(request, "session", None)
        if user is not None and session is not None and user.is_authenticated and session.session_key:
            now = time.time()
            if now - session.get(self.SESSION_KEY, 0) > self.INTERVAL_SECONDS:
                from .models import UserSession

                UserSession.objects.filter(session_key=session.session_key, user=user).update(
                    last_seen_at=timezone.now()
                )
                session[self.SESSION_KEY] = now
        return self.get_response(request)
