from django.urls import path
from django.utils.translation import gettext_lazy as _

from crm.views import nothing_here_yet

app_name = "customers"
urlpatterns = [
    path(
        "",
        nothing_here_yet(_("Customers"), _("Customer records arrive with the customer data release.")),
        name="list",
    ),
]
