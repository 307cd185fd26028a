from django.urls import path
from django.utils.translation import gettext_lazy as _

from crm.views import nothing_here_yet

app_name = "interactions"
urlpatterns = [
    path(
        "",
        nothing_here_yet(
            _("Interactions"),
            _("The log of calls, chats, visits and service tickets is not built yet."),
        ),
        name="index",
    ),
]
