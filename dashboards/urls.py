"""Included at the root of the tenant site without a namespace: the start page keeps its name "home"."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
]
