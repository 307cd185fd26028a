from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = _("Loyalty")

    def ready(self) -> None:
        from crm.navigation import NavItem, register

        register(NavItem("loyalty", _("Loyalty"), "loyalty:index", "award", order=50))
