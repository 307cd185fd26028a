from django.contrib import admin

from .models import Domain, Tenant


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "status", "created_at", "last_activity_at")
    list_filter = ("status",)
    search_fields = ("name", "slug")
    readonly_fields = ("schema_name", "provisioning_progress", "provisioning_message", "created_at")
    inlines = [DomainInline]
