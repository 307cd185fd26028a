"""Included by customers/urls.py under "import/" in the "customers" namespace (no namespace of its own)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.import_start, name="import_start"),
    path("template.csv", views.import_template, name="import_template"),
    path("<int:job_id>/", views.import_preview, name="import_preview"),
    path("<int:job_id>/mapping/", views.import_mapping, name="import_mapping"),
    path("<int:job_id>/status/", views.import_status, name="import_status"),
    path("<int:job_id>/confirm/", views.import_confirm, name="import_confirm"),
    path("<int:job_id>/cancel/", views.import_cancel, name="import_cancel"),
]
