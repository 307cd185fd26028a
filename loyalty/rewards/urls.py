from django.urls import path

from . import views

app_name = "rewards"
urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    path("new/", views.reward_new, name="reward_new"),
    path("<int:reward_id>/", views.reward_edit, name="reward_edit"),
    path("<int:reward_id>/deactivate/", views.reward_deactivate, name="reward_deactivate"),
    path("<int:reward_id>/image/", views.reward_image, name="reward_image"),
    path("redeem/<int:member_id>/", views.redeem_pick, name="redeem_pick"),
    path("redeem/<int:member_id>/<int:reward_id>/", views.redeem_confirm, name="redeem_confirm"),
    path("counter/", views.counter, name="counter"),
    path("vouchers/<int:voucher_id>/", views.voucher, name="voucher"),
    path("vouchers/<int:voucher_id>/cancel/", views.voucher_cancel, name="voucher_cancel"),
    path("vouchers/<int:voucher_id>/use/", views.voucher_use, name="voucher_use"),
]
