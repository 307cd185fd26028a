from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "crm.accounts"
    label = "accounts"
    verbose_name = _("Accounts")

    def ready(self) -> None:
        from django.contrib import admin

        from crm.navigation import NavItem, register

        from . import signals  # noqa: F401
        from .permissions import ADMINS

        register(NavItem("settings", _("Settings"), "accounts:settings", "gear", ADMINS, order=90))
        # Django admin's own sign-in form would skip the lockout's normalisation and two-factor:
        # everyone signs in through accounts:login instead.
        admin.site.login = admin_login_through_accounts


def admin_login_through_accounts(request, extra_context=None):
    from django.contrib.auth.views import redirect_to_login
    from django.core.exceptions import PermissionDenied

    if request.user.is_authenticated:
        raise PermissionDenied
    return redirect_to_login(request.GET.get("next") or "/django-admin/")
