from django.contrib.auth import views as auth_views
from django.urls import path

from . import views, views_two_factor

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("login/code/", views_two_factor.two_factor_verify, name="two_factor_verify"),
    path("login/two-factor-setup/", views_two_factor.two_factor_setup, name="two_factor_setup"),
    path("recovery-codes/", views_two_factor.two_factor_recovery_codes, name="two_factor_recovery_codes"),
]
