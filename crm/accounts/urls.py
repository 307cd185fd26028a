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
    path("profile/", views.profile, name="profile"),
    path("profile/two-factor/", views_two_factor.two_factor, name="two_factor"),
    path("profile/two-factor/enable/", views_two_factor.two_factor_enable, name="two_factor_enable"),
    path("profile/two-factor/disable/", views_two_factor.two_factor_disable, name="two_factor_disable"),
    path(
        "profile/two-factor/new-codes/",
        views_two_factor.two_factor_renew_codes,
        name="two_factor_renew_codes",
    ),
    path("profile/sessions/", views_two_factor.sessions, name="sessions"),
    path("profile/sessions/<int:session_id>/end/", views_two_factor.session_end, name="session_end"),
    path("profile/sessions/end-others/", views_two_factor.sessions_end_others, name="sessions_end_others"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("password-reset/done/", views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("invitation/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("settings/", views.settings_index, name="settings"),
    path("settings/company/", views.company_profile, name="company_profile"),
    path("company-logo/<str:version>.png", views.company_logo, name="company_logo"),
    path("settings/security/", views_two_factor.security_settings, name="security_settings"),
    path("settings/users/", views.user_list, name="user_list"),
    path("settings/users/invite/", views.user_invite, name="user_invite"),
    path("settings/users/<int:user_id>/", views.user_detail, name="user_detail"),
    path("settings/users/<int:user_id>/role/", views.user_change_role, name="user_change_role"),
    path("settings/users/<int:user_id>/deactivate/", views.user_deactivate, name="user_deactivate"),
    path("settings/users/<int:user_id>/reactivate/", views.user_reactivate, name="user_reactivate"),
    path(
        "settings/invitations/<int:invitation_id>/resend/", views.invitation_resend, name="invitation_resend"
    ),
    path(
        "settings/invitations/<int:invitation_id>/revoke/", views.invitation_revoke, name="invitation_revoke"
    ),
    path("settings/audit/", views.audit_log, name="audit_log"),
]
