from django.urls import path

from . import views

app_name = "followups"
urlpatterns = [
    path("", views.my_day, name="my_day"),
    path("<int:pk>/complete/", views.followup_complete, name="complete"),
    path("<int:pk>/cancel/", views.followup_cancel, name="cancel"),
    path("<int:pk>/snooze/", views.followup_snooze, name="snooze"),
    path("<int:pk>/reschedule/", views.followup_reschedule, name="reschedule"),
    path("<int:pk>/reassign/", views.followup_reassign, name="reassign"),
    path("customer/<int:customer_id>/new/", views.followup_create, name="create"),
    path("bulk/", views.followup_bulk_new, name="bulk_new"),
    path("rules/", views.rule_list, name="rules"),
    path("rules/<int:pk>/", views.rule_edit, name="rule_edit"),
]
