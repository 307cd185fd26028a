from django.urls import path

from . import views

app_name = "segmentation"
urlpatterns = [
    path("", views.index, name="index"),
    path("recompute/", views.recompute, name="recompute"),
    path("clv/", views.clv, name="clv"),
    path("lifecycle/", views.lifecycle, name="lifecycle"),
    path("alerts/", views.alerts, name="alerts"),
    path("alerts/bulk/", views.alerts_bulk, name="alerts_bulk"),
    path("alerts/<int:alert_id>/acknowledge/", views.alert_acknowledge, name="alert_acknowledge"),
    path("alerts/<int:alert_id>/dismiss/", views.alert_dismiss, name="alert_dismiss"),
    path("saved/", views.segment_list, name="segments"),
    path("saved/<int:pk>/", views.segment_open, name="segment_open"),
    path("saved/<int:pk>/count/", views.segment_count, name="segment_count"),
    path("saved/<int:pk>/delete/", views.segment_delete, name="segment_delete"),
    path("builder/", views.builder_new, name="builder"),
    path("builder/<int:pk>/", views.builder_edit, name="builder_edit"),
    path("builder/refresh/", views.builder_refresh, name="builder_refresh"),
    path("builder/preview/", views.builder_preview, name="builder_preview"),
    path("settings/", views.settings_edit, name="settings"),
    path("history/", views.history, name="history"),
]
