from django.urls import path

from . import views

app_name = "referrals"
urlpatterns = [
    path("record/<int:member_id>/", views.record, name="record"),
    path("ambassadors/", views.ambassadors, name="ambassadors"),
    path("ambassadors/<int:member_id>/", views.ambassador, name="ambassador"),
    path("settings/", views.settings_edit, name="settings"),
]
