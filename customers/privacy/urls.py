from django.urls import path

from . import views

urlpatterns = [
    path("<int:pk>/privacy/", views.customer_privacy, name="privacy"),
    path("<int:pk>/privacy/export/", views.customer_privacy_export, name="privacy_export"),
    path("<int:pk>/privacy/erase/", views.customer_privacy_erase, name="privacy_erase"),
]
