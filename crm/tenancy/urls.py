from django.urls import path

from . import views

app_name = "tenancy"
urlpatterns = [
    path("", views.tenant_list, name="list"),
    path("new/", views.tenant_create, name="create"),
    path("<int:tenant_id>/", views.tenant_detail, name="detail"),
    path("<int:tenant_id>/edit/", views.tenant_edit, name="edit"),
    path("<int:tenant_id>/resend-invitation/", views.tenant_invitation_resend, name="resend_invitation"),
    path("<int:tenant_id>/progress/", views.tenant_progress, name="progress"),
    path("<int:tenant_id>/suspend/", views.tenant_suspend, name="suspend"),
    path("<int:tenant_id>/reactivate/", views.tenant_reactivate, name="reactivate"),
    path("<int:tenant_id>/retry/", views.tenant_retry, name="retry"),
    path("<int:tenant_id>/delete/", views.tenant_delete, name="delete"),
]
