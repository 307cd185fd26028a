from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InteractionsConfig(AppConfig):
    name = "interactions"
    verbose_name = _("Interactions")

    def ready(self) -> None:
        from crm.audit.labels import register_event_names

        from .audit_names import EVENT_NAMES

        register_event_names(EVENT_NAMES)  # the audit log's names for this app's events

        from crm.navigation import NavItem
        from crm.navigation import register as register_nav

        # Filter, column, row action, panel, timeline entries and the merge hook on customer pages.
        from .integration import register

        register()
        # The import of historical interactions, an import kind of customers.imports.kinds.
        from .imports import register as register_import

        register_import()
        # Personal-data export and erasure of interactions, follow-ups and service tickets.
        from .privacy import register as register_privacy

        register_privacy()
        register_nav(NavItem("interactions", _("Interactions"), "interactions:index", "chat-dots", order=30))

        from crm.accounts.permissions import ADMINS
        from crm.settings_registry import SettingsEntry
        from crm.settings_registry import register as register_setting

        register_setting(
            SettingsEntry(
                "interaction-outcomes",
                _("Interaction outcomes"),
                "interactions:outcomes",
                "list-check",
                ADMINS,
                50,
            )
        )
