"""Shared pages: language switching and the friendly error pages (the start page is in dashboards)."""

from django.conf import settings
from django.shortcuts import render
from django.urls import set_urlconf, translate_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import check_for_language
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language


@require_POST
def set_language(request):
    """Switch the interface language; a signed-in user keeps the choice on their profile."""
    language = request.POST.get("language", "")
    response = django_set_language(request)
    if check_for_language(language) and request.user.is_authenticated:
        request.user.language = language
        request.user.save(update_fields=["language", "updated_at"])
    next_url = request.POST.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
        response["Location"] = translate_url(next_url, language)
    return response


def tenant_not_found(request):
    # No tenant matched the host: render with the public site's URLs (its navigation links there).
    request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
    set_urlconf(request.urlconf)
    return render(request, "tenancy/tenant_not_found.html", {"base_domain": settings.BASE_DOMAIN}, status=404)


def error_403(request, exception=None):
    return render(request, "403.html", status=403)


def error_404(request, exception=None):
    return render(request, "404.html", status=404)


def error_500(request):
    return render(request, "500.html", status=500)
