"""The referral link, at the root of the tenant's site: short enough to print or send."""

from django.urls import path

from . import views

app_name = "referral_link"
urlpatterns = [path("r/<str:code>/", views.join, name="join")]
