from django.urls import path

from . import views

app_name = "jobs"
urlpatterns = [
    path("<int:job_id>/", views.job_status, name="status"),
    path("<int:job_id>/download/", views.job_download, name="download"),
]
