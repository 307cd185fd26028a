from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class FollowupsConfig(AppConfig):
    name = "interactions.followups"
    label = "followups"
    verbose_name = _("Follow-ups")

    def ready(self) -> None:
        from crm.navigation import NavItem
        from crm.navigation import register as register_nav

        # Customer list filter and bulk action, the 360 panel, timeline entries, the merge hook,
        # and the receivers that turn customer and segmentation events into rule follow-ups.
        from .integration import connect_receivers, register

        register()
        connect_receivers()
        from crm.notifications.registry import register_kind

        from .digest import register as register_digest_sections
        from .services import REMINDER_KIND

        register_kind(REMINDER_KIND, _("Follow-up due"), default_email=True)
        register_digest_sections()
        register_nav(NavItem("my_day", _("My day"), "followups:my_day", "calendar-check", order=5))

        from crm.accounts.permissions import ADMINS
        from crm.settings_registry import SettingsEntry
        from crm.settings_registry import register as register_setting

        register_setting(
            SettingsEntry(
                "followup-rules", _("Follow-up rules"), "followups:rules", "calendar-plus", ADMINS, 60
            )
        )
