"""URLs of a tenant's site (<slug>.<BASE_DOMAIN>)."""

from django.contrib import admin
from django.urls import include, path

from crm import views

urlpatterns = [
    path("", include("dashboards.urls")),  # the start page, "home"
    path("i18n/setlang/", views.set_language, name="set_language"),
    path("accounts/", include("crm.accounts.urls")),
    path("jobs/", include("crm.jobs.urls")),
    path("notifications/", include("crm.notifications.urls")),
    path("customers/", include("customers.urls")),
    path("interactions/", include("interactions.urls")),
    path("my-day/", include("interactions.followups.urls")),
    path("service/", include("interactions.service.urls")),
    path("surveys/", include("interactions.surveys.urls")),
    path("segments/", include("segmentation.urls")),
    path("loyalty/", include("loyalty.urls")),
    path("dashboards/", include("dashboards.report_urls")),
    path("", include("loyalty.referrals.public_urls")),  # /r/<code>/: a member's referral link
    path("django-admin/", admin.site.urls),
]

handler403 = "crm.views.error_403"
handler404 = "crm.views.error_404"
handler500 = "crm.views.error_500"
