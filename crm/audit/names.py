"""Names of the events the platform layer records (tenants, users, invitations, settings)."""

from django.utils.translation import gettext_lazy as _

EVENT_NAMES = {
    "tenant.created": _("Company created"),
    "tenant.provisioned": _("Company set up"),
    "tenant.provisioning_failed": _("Company setup failed"),
    "tenant.provisioning_retried": _("Company setup retried"),
    "tenant.suspended": _("Company suspended"),
    "tenant.reactivated": _("Company reactivated"),
    "tenant.deleted": _("Company deleted"),
    "tenant.deletion_cancelled": _("Company deletion cancelled"),
    "tenant.final_backup": _("Final backup made"),
    "tenant.purged": _("Company purged"),
    "tenant.restored": _("Company restored"),
    "tenant.welcome_email_failed": _("Welcome e-mail failed"),
    "tenant.updated": _("Company settings changed"),
    "tenant.admin_invitation_resent": _("First admin's invitation sent again"),
    "tenant.profile_updated": _("Company profile updated"),
    "user.created": _("User created"),
    "user.deactivated": _("User deactivated"),
    "user.reactivated": _("User reactivated"),
    "user.role_changed": _("Role changed"),
    "user.profile_updated": _("Profile updated"),
    "user.other_sessions_ended": _("Other sessions signed out"),
    "user.two_factor_enabled": _("Two-step sign-in turned on"),
    "user.two_factor_disabled": _("Two-step sign-in turned off"),
    "user.two_factor_recovery_code_used": _("Recovery code used"),
    "user.two_factor_recovery_codes_renewed": _("Recovery codes renewed"),
    "invitation.created": _("Invitation sent"),
    "invitation.resent": _("Invitation resent"),
    "invitation.revoked": _("Invitation revoked"),
    "invitation.accepted": _("Invitation accepted"),
    "settings.two_factor_requirement_changed": _("Two-step sign-in requirement changed"),
    "notifications.preferences_updated": _("Notification preferences changed"),
    "demo.seeded": _("Demo data added"),
}

# Detail keys these events store that are not fields of their target's model.
FIELD_LABELS = {
    "*": {
        "error": _("Error"),
        "slug": _("Address"),
        "admin_email": _("First admin's email"),
        "purge_after": _("Purge after"),
        "customers": _("Customers"),
        "marker": _("Marker"),
        "count": _("Count"),
        "rows": _("Rows"),
        "filename": _("File"),
        "reason": _("Reason"),
        "note": _("Note"),
    },
    "accounts.user": {"language": _("Language"), "time_zone": _("Time zone")},
}
