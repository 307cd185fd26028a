"""Django admin (at /django-admin/ for tenant staff): a look at the raw rows.

Customers, orders, refunds and events are read-only here on purpose: every change to them must go
through customers.services so it is validated, keeps the order figures right and lands in the
history. Tags can be edited; custom fields are managed on Settings → Custom fields.
"""

from django.contrib import admin

from .models import BehaviourEvent, Customer, CustomFieldDefinition, Order, OrderLine, Refund, Tag


class ReadOnlyAdmin(admin.ModelAdmin):
    show_full_result_count = False  # no second COUNT(*) over a large table

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "color", "created_at")
    search_fields = ("name",)


@admin.register(CustomFieldDefinition)
class CustomFieldDefinitionAdmin(ReadOnlyAdmin):
    list_display = ("label", "key", "field_type", "required", "is_active", "position")
    list_filter = ("field_type", "is_active")


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    fields = ("sku", "product_name", "category", "quantity", "unit_price")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RefundInline(OrderLineInline):
    model = Refund
    fields = ("amount", "reason", "refunded_at", "created_by")


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    list_display = ("name", "email", "phone", "city", "owner", "orders_count", "total_spent", "deleted_at")
    list_filter = ("source", "kind", "email_consent", "sms_consent")
    list_select_related = ("owner",)
    search_fields = ("search_text",)
    date_hierarchy = None
    ordering = ("-created_at", "-id")


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("number", "customer", "placed_at", "status", "channel", "total", "refunded_total")
    list_filter = ("status", "channel")
    list_select_related = ("customer",)
    search_fields = ("number", "external_id")
    inlines = (OrderLineInline, RefundInline)


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ("order", "amount", "reason", "refunded_at")
    list_select_related = ("order",)


@admin.register(BehaviourEvent)
class BehaviourEventAdmin(ReadOnlyAdmin):
    list_display = ("customer", "event_type", "occurred_at")
    list_filter = ("event_type",)
    list_select_related = ("customer",)
