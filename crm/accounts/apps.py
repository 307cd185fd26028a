from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "crm.accounts"
    label = "accounts"
    verbose_name = _("Accounts")

    def ready(self) -> None:
        from crm.navigation import NavItem, register

        from . import signals  # noqa: F401
        from .permissions import ADMINS

        register(NavItem("settings", _("Settings"), "accounts:settings", "gear", ADMINS, order=90))
