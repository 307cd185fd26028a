from django.urls import path

from . import views

app_name = "surveys"
urlpatterns = [
    path("", views.reports, name="reports"),
    path("responses/", views.responses, name="responses"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/<int:pk>/", views.template_edit, name="template_edit"),
    path("send/", views.bulk_send, name="bulk_send"),
    # public: no sign-in, on the tenant's own site
    path("answer/<str:token>/", views.answer, name="answer"),
]
