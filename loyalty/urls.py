from django.urls import include, path

from . import views

app_name = "loyalty"
urlpatterns = [
    path("", views.index, name="index"),
    path("members/", views.members, name="members"),
    path("members/<int:member_id>/", views.member, name="member"),
    path("members/<int:member_id>/adjust/", views.member_adjust, name="member_adjust"),
    path("enrol/<int:customer_id>/", views.enrol, name="enrol"),
    path("reports/", views.reports, name="reports"),
    path("reports/members/", views.report_members, name="report_members"),
    path("import/", views.opening_import, name="opening_import"),
    path("import/<int:job_id>/", views.opening_import_job, name="opening_import_job"),
    path("settings/", views.settings_edit, name="settings"),
    path("settings/tiers/new/", views.tier_new, name="tier_new"),
    path("settings/tiers/<int:tier_id>/", views.tier_edit, name="tier_edit"),
    path("rewards/", include("loyalty.rewards.urls")),
    path("referrals/", include("loyalty.referrals.urls")),
]
