from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("profile/", views.profile, name="profile"),
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
