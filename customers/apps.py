from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = _("Customers")

    def ready(self) -> None:
        from crm.audit.labels import register_event_names, register_field_labels

        from .audit_names import DETAIL_LABELS, EVENT_NAMES, TAG_DETAIL_LABELS
        from .labels import CUSTOMER, EXTRA_FIELD_LABELS

        register_event_names(EVENT_NAMES)  # the audit log's names for this app's events
        register_field_labels(CUSTOMER, {**DETAIL_LABELS, **EXTRA_FIELD_LABELS})
        register_field_labels("customers.tag", TAG_DETAIL_LABELS)

        from .registry import registry
        from .timeline import history_provider, orders_provider, refunds_provider

        registry.add_timeline_provider("customers.orders", orders_provider)
        registry.add_timeline_provider("customers.refunds", refunds_provider)
        registry.add_timeline_provider("customers.history", history_provider)

        from .dedupe.hooks import register_builtin_hooks  # orders, events, tags, shares move on a merge
        from .dedupe.views import register_detail_panel  # "Possible duplicates" on the 360° page

        register_builtin_hooks()
        register_detail_panel()

        from .privacy.providers import register as register_personal_data  # PIPL / GDPR requests

        register_personal_data()

        from crm.navigation import NavItem
        from crm.navigation import register as register_nav
        from crm.tenancy.selectors import register_tenant_count

        from .models import Customer, Order

        register_nav(NavItem("customers", _("Customers"), "customers:list", "people", order=20))

        from crm.accounts.permissions import ADMINS, MANAGERS
        from crm.settings_registry import SettingsEntry
        from crm.settings_registry import register as register_setting

        register_setting(
            SettingsEntry(
                "custom-fields",
                _("Custom fields"),
                "customers:custom_fields",
                "input-cursor-text",
                ADMINS,
                40,
            )
        )
        register_setting(SettingsEntry("tags", _("Tags"), "customers:tags", "tags", MANAGERS, 45))
        # The platform console counts live customers (the binned ones are few and indexed) and orders
        # in each tenant's schema: the tenants list and the daily usage (crm.tenancy.usage).
        register_tenant_count("customers", model=Customer, where="deleted_at IS NULL")
        register_tenant_count("orders", model=Order)
