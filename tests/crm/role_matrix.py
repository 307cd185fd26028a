"""The role matrix: for every URL name of the tenant site, the HTTP status each role gets on GET.

`tests/crm/test_role_matrix.py` walks `crm.urls_tenant` and requests every named URL as each role
(anonymous, sales, manager, admin) with the tenant "alpha" fixtures, then compares with this table.

Adding a URL? Add its name to EXPECTATIONS with one status per role. Until then the matrix test
FAILS for it -- unless the name matches PENDING_REVIEW (an exact name or a whole namespace written
"namespace:*"), which lets work in progress land without turning main red. The integrator empties
PENDING_REVIEW at the end, after which every URL must have an expectation.

URL patterns with parameters: give SAMPLE_KWARGS[name] a function building real kwargs (it receives
the MatrixContext: the tenant, the users by role, and the admin user for creating objects). Without
one, each parameter gets a generic value (int 999999, str "sample", uuid zeros) and the test accepts
404 in place of 200 or 403 (the object does not exist); an anonymous visitor must still be sent to
the login page.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ANON, SALES, MANAGER, ADMIN = "anonymous", "sales", "manager", "admin"
ROLES = (ANON, SALES, MANAGER, ADMIN)


def expect(anonymous: int, sales: int, manager: int, admin: int) -> dict[str, int]:
    return {ANON: anonymous, SALES: sales, MANAGER: manager, ADMIN: admin}


# Common rows. 302 for anonymous means "redirected to the login page" (the test checks where to).
EVERYONE = expect(302, 200, 200, 200)
MANAGERS_ONLY = expect(302, 403, 200, 200)
ADMINS_ONLY = expect(302, 403, 403, 200)
ADMINS_ONLY_POST = expect(302, 403, 403, 405)  # POST-only action: GET answers 405 after the role check
MANAGERS_ONLY_POST = expect(302, 403, 405, 405)
EVERYONE_POST = expect(302, 405, 405, 405)
OPEN = expect(200, 200, 200, 200)  # pages anyone may open (sign-in, password reset, ...)
POST_ONLY_OPEN = expect(405, 405, 405, 405)
OTHERS_CUSTOMER = expect(302, 404, 200, 200)  # a record owned by someone else: sales get 404


EXPECTATIONS: dict[str, dict[str, int]] = {
    # crm
    "home": EVERYONE,
    "set_language": POST_ONLY_OPEN,
    # accounts
    "accounts:login": expect(200, 302, 302, 302),  # signed-in users are sent on
    "accounts:logout": POST_ONLY_OPEN,
    "accounts:profile": EVERYONE,
    "accounts:password_reset": OPEN,
    "accounts:password_reset_done": OPEN,
    "accounts:password_reset_confirm": OPEN,  # an invalid link renders "invalid or expired"
    "accounts:password_reset_complete": OPEN,
    "accounts:invitation_accept": expect(400, 400, 400, 400),  # sample token is invalid -> clear page
    "accounts:settings": ADMINS_ONLY,
    "accounts:user_list": ADMINS_ONLY,
    "accounts:user_invite": ADMINS_ONLY,
    "accounts:user_detail": ADMINS_ONLY,
    "accounts:user_change_role": ADMINS_ONLY_POST,
    "accounts:user_deactivate": ADMINS_ONLY_POST,
    "accounts:user_reactivate": ADMINS_ONLY_POST,
    "accounts:invitation_resend": ADMINS_ONLY_POST,
    "accounts:invitation_revoke": ADMINS_ONLY_POST,
    "accounts:audit_log": ADMINS_ONLY,
    "accounts:security_settings": ADMINS_ONLY,
    # two-factor sign-in: the code and set-up steps need a password step first (else back to sign-in);
    # recovery codes are shown once, right after they are made (else back to the two-factor page)
    "accounts:two_factor_verify": expect(302, 302, 302, 302),
    "accounts:two_factor_setup": expect(302, 302, 302, 302),
    "accounts:two_factor_recovery_codes": expect(302, 302, 302, 302),
    "accounts:two_factor": EVERYONE,
    "accounts:two_factor_enable": EVERYONE,
    "accounts:two_factor_disable": EVERYONE_POST,
    "accounts:two_factor_renew_codes": EVERYONE_POST,
    "accounts:sessions": EVERYONE,
    "accounts:session_end": EVERYONE_POST,
    "accounts:sessions_end_others": EVERYONE_POST,
    # jobs (generic ids: nobody's job exists, so signed-in roles get 404)
    "jobs:status": EVERYONE,
    "jobs:download": EVERYONE,
    # customers (customer pages use a customer owned by the second sales user: the first sales user
    # gets 404, exactly as for a customer that does not exist)
    "customers:list": EVERYONE,
    "customers:create": EVERYONE,
    "customers:check_duplicate": EVERYONE,
    "customers:bin": EVERYONE,
    "customers:detail": OTHERS_CUSTOMER,
    "customers:edit": OTHERS_CUSTOMER,
    "customers:orders": OTHERS_CUSTOMER,
    "customers:profile_card": OTHERS_CUSTOMER,
    "customers:timeline": OTHERS_CUSTOMER,
    "customers:columns": EVERYONE_POST,
    "customers:bulk": EVERYONE_POST,
    "customers:delete": EVERYONE_POST,
    "customers:restore": EVERYONE_POST,
    "customers:share": MANAGERS_ONLY_POST,
    "customers:order_refund": MANAGERS_ONLY_POST,
    "customers:custom_fields": ADMINS_ONLY,
    "customers:custom_field_edit": ADMINS_ONLY,
    "customers:custom_field_toggle": ADMINS_ONLY_POST,
    "customers:duplicates": EVERYONE,
    "customers:duplicate_dismiss": EVERYONE_POST,
    "customers:merge": EVERYONE,  # generic ids: 404 for every signed-in role
    "customers:merge_result": EVERYONE,
    "customers:merge_undo": EVERYONE,
    "customers:import_start": MANAGERS_ONLY,
    "customers:import_template": MANAGERS_ONLY,
    "customers:import_preview": MANAGERS_ONLY,
    "customers:import_mapping": MANAGERS_ONLY,
    "customers:import_status": MANAGERS_ONLY,
    "customers:import_confirm": MANAGERS_ONLY_POST,
    "customers:import_cancel": MANAGERS_ONLY_POST,
    "customers:export": EVERYONE,
    "customers:export_job": EVERYONE,
    "customers:export_all": MANAGERS_ONLY,
    # segmentation
    "segmentation:index": EVERYONE,
    "segmentation:lifecycle": EVERYONE,
    "segmentation:clv": EVERYONE,
    "segmentation:alerts": EVERYONE,
    "segmentation:alert_acknowledge": EVERYONE_POST,
    "segmentation:alert_dismiss": EVERYONE_POST,
    "segmentation:builder": EVERYONE,
    "segmentation:builder_edit": EVERYONE,
    "segmentation:builder_preview": EVERYONE_POST,
    "segmentation:builder_refresh": EVERYONE_POST,
    "segmentation:segments": EVERYONE,
    "segmentation:segment_open": EVERYONE,
    "segmentation:segment_count": EVERYONE,
    "segmentation:segment_delete": EVERYONE_POST,
    "segmentation:history": MANAGERS_ONLY,
    "segmentation:recompute": MANAGERS_ONLY_POST,
    "segmentation:settings": ADMINS_ONLY,
    # apps still to come: an honest "nothing here yet" page for every role
    "interactions:index": EVERYONE,
    "loyalty:index": EVERYONE,
}

# URL names (or "namespace:*") whose expectations are still to be written by the app's owner.
# The integrator empties this set when every helper's URLs have landed.
PENDING_REVIEW: set[str] = set()

# Django's own admin site is not part of the product's role model (it needs is_staff).
SKIPPED_NAMESPACES = ("admin",)


@dataclass
class MatrixContext:
    tenant: Any
    users: dict[str, Any]

    @property
    def admin(self):
        return self.users[ADMIN]


def _sample_user(ctx: MatrixContext) -> dict:
    return {"user_id": ctx.users["sales2"].pk}


def _sample_invitation(ctx: MatrixContext) -> dict:
    from crm.accounts.models import Invitation

    invitation, _created = Invitation.objects.get_or_create(
        email="matrix-invitee@alpha.test", defaults={"role": "sales", "invited_by": ctx.admin}
    )
    return {"invitation_id": invitation.pk}


def _others_customer(ctx: MatrixContext) -> dict:
    from customers.models import Customer

    customer, _created = Customer.objects.get_or_create(
        name="Matrix Customer", defaults={"owner": ctx.users["sales2"], "email": "matrix@customer.test"}
    )
    return {"pk": customer.pk}


def _custom_field(ctx: MatrixContext) -> dict:
    from customers.models import CustomFieldDefinition

    definition, _created = CustomFieldDefinition.objects.get_or_create(
        key="matrix_field", defaults={"label": "Matrix", "field_type": "text"}
    )
    return {"pk": definition.pk}


SAMPLE_KWARGS: dict[str, Callable[[MatrixContext], dict]] = {
    "customers:detail": _others_customer,
    "customers:edit": _others_customer,
    "customers:orders": _others_customer,
    "customers:profile_card": _others_customer,
    "customers:timeline": _others_customer,
    "customers:custom_field_edit": _custom_field,
    "accounts:password_reset_confirm": lambda ctx: {"uidb64": "MQ", "token": "set-password"},
    "accounts:invitation_accept": lambda ctx: {"token": "not-a-valid-token"},
    "accounts:user_detail": _sample_user,
    "accounts:user_change_role": _sample_user,
    "accounts:user_deactivate": _sample_user,
    "accounts:user_reactivate": _sample_user,
    "accounts:invitation_resend": _sample_invitation,
    "accounts:invitation_revoke": _sample_invitation,
}


def is_pending(name: str) -> bool:
    namespace = name.split(":", 1)[0] if ":" in name else ""
    return name in PENDING_REVIEW or (bool(namespace) and f"{namespace}:*" in PENDING_REVIEW)
