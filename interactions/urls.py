from django.urls import path

from . import views

app_name = "interactions"
urlpatterns = [
    path("", views.interaction_index, name="index"),
    path("log/<int:customer_id>/", views.interaction_log, name="log"),
    path("<int:pk>/", views.interaction_detail, name="detail"),
    path("<int:pk>/edit/", views.interaction_edit, name="edit"),
    path("<int:pk>/delete/", views.interaction_delete, name="delete"),
    path("<int:pk>/restore/", views.interaction_restore, name="restore"),
    path("attachments/<int:pk>/", views.attachment_download, name="attachment"),
    path("attachments/<int:pk>/remove/", views.attachment_remove, name="attachment_remove"),
    path("attachments/<int:pk>/restore/", views.attachment_restore, name="attachment_restore"),
    path("export/", views.interaction_export, name="export"),
    path("export/jobs/<int:job_id>/", views.interaction_export_job, name="export_job"),
    path("import/", views.interaction_import, name="import"),
    path("import/<int:job_id>/", views.interaction_import_job, name="import_job"),
    path("settings/outcomes/", views.outcome_list, name="outcomes"),
    path("settings/outcomes/<int:pk>/", views.outcome_change, name="outcome_change"),
]
