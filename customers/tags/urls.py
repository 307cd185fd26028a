"""Included by customers/urls.py under "tags/" in the "customers" namespace (no namespace of its own)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.tag_list, name="tags"),
    path("<int:pk>/", views.tag_edit, name="tag_edit"),
    path("<int:pk>/merge/", views.tag_merge, name="tag_merge"),
    path("<int:pk>/delete/", views.tag_delete, name="tag_delete"),
    path("<int:pk>/restore/", views.tag_restore, name="tag_restore"),
]
