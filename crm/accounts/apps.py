from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "crm.accounts"
    label = "accounts"
    verbose_name = _("Accounts")

    def ready(self) -> None:
        from django.contrib import admin

        from crm.navigation import NavItem, register
        from crm.settings_registry import SettingsEntry
        from crm.settings_registry import register as register_setting

        from . import signals  # noqa: F401
        from .permissions import ADMINS, MANAGERS

        # The Settings page lists what each role may change; managers see theirs (tags) too.
        register(NavItem("settings", _("Settings"), "accounts:settings", "gear", MANAGERS, order=90))
        for entry in (
            SettingsEntry(
                "company", _("Company profile"), "accounts:company_profile", "building", ADMINS, 10
            ),
            SettingsEntry("users", _("Users and roles"), "accounts:user_list", "people", ADMINS, 20),
            SettingsEntry("security", _("Security"), "accounts:security_settings", "shield-lock", ADMINS, 30),
            SettingsEntry("audit", _("Audit log"), "accounts:audit_log", "journal-text", ADMINS, 90),
        ):
            register_setting(entry)
        # Django admin's own sign-in form would skip the lockout's normalisation and two-factor:
        # everyone signs in through accounts:login instead.
        admin.site.login = admin_login_through_accounts


def admin_login_through_accounts(request, extra_context=None):
    from django.contrib.auth.views import redirect_to_login
    from django.core.exceptions import PermissionDenied

    if request.user.is_authenticated:
        raise PermissionDenied
    return redirect_to_login(request.GET.get("next") or "/django-admin/")
