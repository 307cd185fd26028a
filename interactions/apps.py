from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InteractionsConfig(AppConfig):
    name = "interactions"
    verbose_name = _("Interactions")

    def ready(self) -> None:
        from crm.navigation import NavItem, register

        register(NavItem("interactions", _("Interactions"), "interactions:index", "chat-dots", order=30))
