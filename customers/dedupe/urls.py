"""Duplicates and merge pages, included by customers/urls.py under "duplicates/" (namespace "customers")."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.duplicate_list, name="duplicates"),
    path("dismiss/<int:first>/<int:second>/", views.duplicate_dismiss, name="duplicate_dismiss"),
    path("merge/<int:survivor_pk>/<int:merged_pk>/", views.customer_merge, name="merge"),
    path("merged/<int:pk>/", views.merge_result, name="merge_result"),
    path("merged/<int:pk>/undo/", views.merge_undo, name="merge_undo"),
    path("merge-group/", views.merge_group, name="merge_group"),
    path("merge-group/<int:pk>/undo/", views.merge_group_undo, name="merge_group_undo"),
]
