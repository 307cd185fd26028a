from django.urls import path
from django.utils.translation import gettext_lazy as _

from crm.views import nothing_here_yet

app_name = "loyalty"
urlpatterns = [
    path(
        "",
        nothing_here_yet(_("Loyalty"), _("Points, rewards and VIP tiers are not built yet.")),
        name="index",
    ),
]
