from django.urls import path

from . import views

app_name = "service"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("assign/", views.bulk_assign, name="bulk_assign"),
    path("export/", views.export, name="export"),
    path("new/", views.ticket_create, name="ticket_create"),
    path("tickets/<int:pk>/", views.ticket_detail, name="ticket"),
    path("tickets/<int:pk>/clocks/", views.ticket_clocks, name="ticket_clocks"),
    path("tickets/<int:pk>/reply/", views.ticket_reply, name="ticket_reply"),
    path("tickets/<int:pk>/note/", views.ticket_note, name="ticket_note"),
    path("tickets/<int:pk>/status/", views.ticket_status, name="ticket_status"),
    path("tickets/<int:pk>/assign/", views.ticket_assign, name="ticket_assign"),
    path("tickets/<int:pk>/update/", views.ticket_update, name="ticket_update"),
    path("tickets/<int:pk>/delete/", views.ticket_delete, name="ticket_delete"),
    path("bin/", views.ticket_bin, name="bin"),
    path("bin/<int:pk>/restore/", views.ticket_restore, name="ticket_restore"),
    path("attachments/<int:pk>/", views.attachment_download, name="attachment"),
    path("figures/", views.figures, name="figures"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/categories/<int:pk>/", views.category_edit, name="category_edit"),
    path("settings/teams/<int:pk>/", views.team_edit, name="team_edit"),
    path("settings/policies/<int:pk>/", views.policy_edit, name="policy_edit"),
    path("settings/policies/<int:pk>/delete/", views.policy_delete, name="policy_delete"),
    path("settings/holidays/<int:pk>/delete/", views.holiday_delete, name="holiday_delete"),
    # public: no sign-in, on the tenant's own site
    path("contact/", views.contact, name="contact"),
    path("contact/thanks/", views.contact_thanks, name="contact_thanks"),
]
