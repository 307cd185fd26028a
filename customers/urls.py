from django.urls import include, path

from . import views
from .dedupe import urls as dedupe_urls
from .exports import urls as exports_urls
from .imports import urls as imports_urls
from .privacy import urls as privacy_urls
from .tags import urls as tags_urls

app_name = "customers"
urlpatterns = [
    path("", views.customer_list, name="list"),
    path("new/", views.customer_create, name="create"),
    path("columns/", views.customer_columns, name="columns"),
    path("bulk/", views.customer_bulk, name="bulk"),
    path("check-duplicate/", views.check_duplicate, name="check_duplicate"),
    path("bin/", views.customer_bin, name="bin"),
    path("bin/<int:pk>/restore/", views.customer_restore, name="restore"),
    path("custom-fields/", views.custom_field_list, name="custom_fields"),
    path("custom-fields/<int:pk>/", views.custom_field_edit, name="custom_field_edit"),
    path("custom-fields/<int:pk>/toggle/", views.custom_field_toggle, name="custom_field_toggle"),
    path("custom-fields/<int:pk>/move/", views.custom_field_move, name="custom_field_move"),
    path("orders/<int:pk>/refund/", views.order_refund, name="order_refund"),
    path("<int:pk>/", views.customer_detail, name="detail"),
    path("<int:pk>/edit/", views.customer_edit, name="edit"),
    path("<int:pk>/profile/", views.customer_profile_card, name="profile_card"),
    path("<int:pk>/delete/", views.customer_delete, name="delete"),
    path("<int:pk>/share/", views.customer_share, name="share"),
    path("<int:pk>/timeline/", views.customer_timeline, name="timeline"),
    path("<int:pk>/history/", views.customer_history, name="history"),
    path("<int:pk>/orders/", views.customer_orders, name="orders"),
]

# --- import/export (customers.imports, customers.exports) ---
urlpatterns += [
    path("import/", include(imports_urls.urlpatterns)),
    path("export/", include(exports_urls.urlpatterns)),
]
# --- end import/export ---

# --- tag management (customers.tags), Settings > Tags ---
urlpatterns += [
    path("tags/", include(tags_urls.urlpatterns))
]  # tags, tag_edit, tag_merge, tag_delete, tag_restore
# --- end tag management ---

# --- duplicates and merge (customers.dedupe) ---
urlpatterns += [path("duplicates/", include(dedupe_urls.urlpatterns))]  # duplicates, merge, merge_undo
# --- end duplicates and merge ---

# --- personal-data requests (customers.privacy) ---
urlpatterns += [path("", include(privacy_urls.urlpatterns))]  # privacy, privacy_export, privacy_erase
# --- end personal-data requests ---
