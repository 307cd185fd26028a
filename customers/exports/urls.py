"""Included by customers/urls.py under "export/" in the "customers" namespace (no namespace of its own)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.export, name="export"),
    path("all/", views.export_all, name="export_all"),
    path("jobs/<int:job_id>/", views.export_job, name="export_job"),
]
