"""Django admin (at /django-admin/ for tenant staff): a read-only look at the segmentation rows.

Scores, history, runs and alerts are written by the recompute and the services (which validate,
keep one alert per transition and write the audit log), so nothing is editable here; settings and
saved segments are edited on their own pages.
"""

from django.contrib import admin

from .models import (
    ChurnAlert,
    CustomerScore,
    LifecycleTransition,
    RecomputeRun,
    Segment,
    SegmentationSettings,
    SegmentSnapshot,
    SegmentTransition,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    show_full_result_count = False  # no second COUNT(*) over a large table

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CustomerScore)
class CustomerScoreAdmin(ReadOnlyAdmin):
    list_display = (
        "customer",
        "rfm_segment",
        "lifecycle_stage",
        "predicted_clv",
        "probability_alive",
        "computed_at",
    )
    list_filter = ("rfm_segment", "lifecycle_stage", "clv_model")
    list_select_related = ("customer",)
    raw_id_fields = ("customer",)


@admin.register(RecomputeRun)
class RecomputeRunAdmin(ReadOnlyAdmin):
    list_display = (
        "pk",
        "started_at",
        "trigger",
        "status",
        "customers_count",
        "stage_changes",
        "alerts_created",
    )
    list_filter = ("status", "trigger")


@admin.register(LifecycleTransition)
class LifecycleTransitionAdmin(ReadOnlyAdmin):
    list_display = ("customer", "from_stage", "to_stage", "at")
    list_filter = ("to_stage",)
    list_select_related = ("customer",)


@admin.register(SegmentTransition)
class SegmentTransitionAdmin(ReadOnlyAdmin):
    list_display = ("customer", "from_segment", "to_segment", "at")
    list_filter = ("to_segment",)
    list_select_related = ("customer",)


@admin.register(SegmentSnapshot)
class SegmentSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("taken_at", "dimension", "key", "customers", "revenue_share")
    list_filter = ("dimension",)


@admin.register(ChurnAlert)
class ChurnAlertAdmin(ReadOnlyAdmin):
    list_display = ("customer", "reason", "owner", "status", "created_at")
    list_filter = ("reason", "status")
    list_select_related = ("customer", "owner")


@admin.register(Segment)
class SegmentAdmin(ReadOnlyAdmin):
    list_display = ("name", "created_by", "is_shared", "updated_at")


@admin.register(SegmentationSettings)
class SegmentationSettingsAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "updated_at", "updated_by")
