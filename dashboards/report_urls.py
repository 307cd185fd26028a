"""The managers' reports under /dashboards/ (namespace "dashboards")."""

from django.urls import path

from . import report_views as views

app_name = "dashboards"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("figures/<slug:key>/", views.figure_list, name="figure"),
    path("cohorts/", views.cohorts, name="cohorts"),
    path("cohorts/customers/", views.cohort_customers, name="cohort_customers"),
    path("migration/", views.migration, name="migration"),
    path("migration/customers/", views.migration_customers, name="migration_customers"),
    path("funnel/", views.funnel, name="funnel"),
    path("funnel/customers/", views.funnel_customers, name="funnel_customers"),
    path("team/", views.team, name="team"),
]
