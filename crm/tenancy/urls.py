from django.urls import path

from . import views

app_name = "tenancy"
urlpatterns = [
    path("", views.tenant_list, name="list"),
]
