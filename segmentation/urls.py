from django.urls import path
from django.utils.translation import gettext_lazy as _

from crm.views import nothing_here_yet

app_name = "segmentation"
urlpatterns = [
    path(
        "",
        nothing_here_yet(_("Segments"), _("RFM, lifetime value and lifecycle segments are not built yet.")),
        name="index",
    ),
]
