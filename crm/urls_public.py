"""URLs of the public site (the bare BASE_DOMAIN): the platform console for the operator."""

from django.urls import include, path

from crm import views
from crm.tenancy import views as tenancy_views

urlpatterns = [
    path("", tenancy_views.public_home, name="public_home"),
    path("i18n/setlang/", views.set_language, name="set_language"),
    path("accounts/", include("crm.accounts.urls_public")),
    path("console/", include("crm.tenancy.urls")),
]

handler403 = "crm.views.error_403"
handler404 = "crm.views.error_404"
handler500 = "crm.views.error_500"
