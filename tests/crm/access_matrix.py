"""The access matrix: for every URL of the tenant and public sites, the status each actor gets on GET
and on POST. `tests/crm/test_access_matrix.py` requests every cell once against real objects (built by
its `world` fixture) and compares with these tables; a URL pattern without a row fails the test with
its name.

Tenant-site actors (the columns of a row, in this order):
- anonymous         -- no session
- own               -- the sales user "sales", on an object of their own (their customer, order, job,
                       private segment, alert...)
- other             -- the same sales user, on the object of another user (customers of "sales2", the
                       manager's full-data export job, sales2's private segment, sales2's alert...)
- manager, admin    -- on the *other* object
- foreign           -- the admin of tenant "beta", presenting beta's session cookie to alpha's site.
                       Sessions live in each tenant's schema, so this is an anonymous visitor: it gets
                       the anonymous column unless a row says otherwise.

Public-site actors: anonymous, operator (platform admin), tenant admin (alpha's admin presenting
alpha's session cookie to the public site).

Statuses: an int is the HTTP status; LOGIN is "302 to the sign-in page" (the test checks where to).
POST cells are sent with the real form data of `post=` where one is given (see POST_DATA in the test
module), so a 302 there means the action succeeded.

Adding a URL: add one line to TENANT or PUBLIC, e.g.
    "accounts:two_factor": row(EVERYONE, NO_POST),
and, when it takes ids, an object kind in KWARGS of the test module.
"""

from typing import NamedTuple

LOGIN = "login"

ANON, OWN, OTHER, MANAGER, ADMIN, FOREIGN = "anonymous", "own", "other", "manager", "admin", "foreign"
TENANT_ACTORS = (ANON, OWN, OTHER, MANAGER, ADMIN, FOREIGN)
OPERATOR, TENANT_ADMIN = "operator", "tenant_admin"
PUBLIC_ACTORS = (ANON, OPERATOR, TENANT_ADMIN)

Cells = tuple  # one status per actor, in the actor order above (foreign may be left out)


class Row(NamedTuple):
    get: dict
    post: dict


def _cells(values: Cells, actors: tuple[str, ...]) -> dict:
    if actors == TENANT_ACTORS and len(values) == len(actors) - 1:
        values = (*values, values[0])  # another tenant's session counts for nothing here
    assert len(values) == len(actors), f"give one status per actor {actors}: {values}"
    return dict(zip(actors, values, strict=True))


def row(get: Cells, post: Cells) -> Row:
    return Row(_cells(get, TENANT_ACTORS), _cells(post, TENANT_ACTORS))


def public_row(get: Cells, post: Cells) -> Row:
    return Row(_cells(get, PUBLIC_ACTORS), _cells(post, PUBLIC_ACTORS))


def signed_in(status, other=None) -> Cells:
    """Every signed-in role gets `status` (the sales user on another's object gets `other`)."""
    return (LOGIN, status, status if other is None else other, status, status)


def everyone(status) -> Cells:
    return (status,) * 5


EVERYONE = signed_in(200)
OWNED = signed_in(200, other=404)  # another rep's object answers like a missing one
OWNED_DONE = signed_in(302, other=404)  # a POST action on an object: done, or 404 for another's
MANAGERS = (LOGIN, 403, 403, 200, 200)
MANAGERS_DONE = (LOGIN, 403, 403, 302, 302)
MANAGERS_405 = (LOGIN, 403, 403, 405, 405)  # the role is checked before the method
ADMINS = (LOGIN, 403, 403, 403, 200)
ADMINS_DONE = (LOGIN, 403, 403, 403, 302)
ADMINS_405 = (LOGIN, 403, 403, 403, 405)
NO_POST = signed_in(405)


def on_object(cells: Cells) -> Cells:
    """A role-limited route about one record: the sales user is refused with 404 on a record they may
    not see, for every method (as for a missing one), and with 403 only on a record they see."""
    anonymous, own, other, *rest = cells
    return (anonymous, own, 404 if other == 403 else other, *rest)


NO_GET = signed_in(405)


TENANT: dict[str, Row] = {
    # crm
    "home": row(EVERYONE, EVERYONE),
    # reports: every role, each within the customers they may see
    "dashboards:overview": row(EVERYONE, NO_POST),
    "dashboards:figure": row(EVERYONE, NO_POST),
    "dashboards:cohorts": row(EVERYONE, NO_POST),
    "dashboards:migration": row(EVERYONE, NO_POST),
    "dashboards:cohort_customers": row(signed_in(404), NO_POST),  # without a cohort: nothing to list
    "dashboards:migration_customers": row(signed_in(404), NO_POST),
    "dashboards:funnel": row(EVERYONE, NO_POST),
    "dashboards:funnel_customers": row(signed_in(404), NO_POST),
    "dashboards:team": row(EVERYONE, NO_POST),  # a sales user gets their own row only
    "set_language": row(everyone(405), everyone(302)),
    # accounts
    "accounts:login": row((200, 302, 302, 302, 302), everyone(302)),  # signed-in users are sent on
    "accounts:logout": row(everyone(405), everyone(302)),
    "accounts:profile": row(EVERYONE, signed_in(302)),
    "accounts:password_reset": row(everyone(200), everyone(302)),
    "accounts:password_reset_done": row(everyone(200), everyone(405)),
    "accounts:password_reset_confirm": row(everyone(302), everyone(302)),  # valid link -> set-password
    "accounts:password_reset_complete": row(everyone(200), everyone(405)),
    "accounts:invitation_accept": row(everyone(200), everyone(302)),  # a valid invitation link
    # the settings page lists what each role may change: tags for managers, everything for admins
    "accounts:settings": row(MANAGERS, MANAGERS),
    "accounts:company_profile": row(ADMINS, ADMINS_DONE),
    # the company's logo: anyone on the company's own site (the sign-in page shows it)
    "accounts:company_logo": row(everyone(200), everyone(405)),
    "accounts:user_list": row(ADMINS, ADMINS),
    "accounts:user_invite": row(ADMINS, ADMINS_DONE),
    "accounts:user_detail": row(ADMINS, ADMINS),
    "accounts:user_change_role": row(ADMINS_405, ADMINS_DONE),
    "accounts:user_deactivate": row(ADMINS_405, ADMINS_DONE),
    "accounts:user_reactivate": row(ADMINS_405, ADMINS_DONE),
    "accounts:invitation_resend": row(ADMINS_405, ADMINS_DONE),
    "accounts:invitation_revoke": row(ADMINS_405, ADMINS_DONE),
    "accounts:audit_log": row(ADMINS, ADMINS),
    "accounts:security_settings": row(ADMINS, ADMINS_DONE),
    # the two-factor sign-in steps without a password step first: back to the sign-in page
    "accounts:two_factor_verify": row(everyone(302), everyone(302)),
    "accounts:two_factor_setup": row(everyone(302), everyone(302)),
    "accounts:two_factor_recovery_codes": row(everyone(302), everyone(302)),
    "accounts:two_factor": row(EVERYONE, EVERYONE),
    "accounts:two_factor_enable": row(EVERYONE, EVERYONE),  # an empty code: the form again
    "accounts:two_factor_disable": row(NO_GET, signed_in(302)),
    "accounts:two_factor_renew_codes": row(NO_GET, signed_in(302)),
    "accounts:sessions": row(EVERYONE, EVERYONE),
    # another user's session is left alone, as a missing one would be
    "accounts:session_end": row(NO_GET, signed_in(302)),
    "accounts:sessions_end_others": row(NO_GET, signed_in(302)),
    # jobs: the sales user's own export vs the manager's full-data export (with its file)
    "jobs:status": row(OWNED, OWNED),
    "jobs:download": row(OWNED, OWNED),
    # notifications: everyone reads only their own; another user's answers 404 (a manager's and an
    # admin's request included, since they are given sales2's notification)
    "notifications:list": row(EVERYONE, NO_POST),
    "notifications:preferences": row(EVERYONE, signed_in(302)),
    "notifications:read_all": row(NO_GET, signed_in(302)),
    "notifications:open": row((LOGIN, 302, 404, 404, 404), NO_POST),
    "notifications:read": row(NO_GET, (LOGIN, 302, 404, 404, 404)),
    # customers
    "customers:list": row(EVERYONE, NO_POST),
    "customers:create": row(EVERYONE, signed_in(302)),
    "customers:columns": row(NO_GET, signed_in(302)),
    "customers:bulk": row(NO_GET, signed_in(302)),  # what it did to whom: test_access_effects.py
    "customers:check_duplicate": row(EVERYONE, NO_POST),
    "customers:bin": row(EVERYONE, NO_POST),
    "customers:restore": row(NO_GET, OWNED_DONE),
    "customers:custom_fields": row(ADMINS, ADMINS_DONE),
    # tag management (Settings > Tags): managers and admins
    "customers:tags": row(MANAGERS, MANAGERS_405),
    "customers:tag_edit": row(MANAGERS, MANAGERS_DONE),
    "customers:tag_merge": row(MANAGERS_405, MANAGERS_DONE),
    "customers:tag_delete": row(MANAGERS_405, MANAGERS_DONE),
    "customers:tag_restore": row(MANAGERS_405, MANAGERS_DONE),
    "customers:custom_field_edit": row(ADMINS, ADMINS_DONE),
    "customers:custom_field_toggle": row(ADMINS_405, ADMINS_DONE),
    "customers:custom_field_move": row(ADMINS_405, ADMINS_DONE),
    "customers:order_refund": row(on_object(MANAGERS_405), on_object(MANAGERS_DONE)),
    "customers:detail": row(OWNED, NO_POST),
    "customers:edit": row(OWNED, OWNED_DONE),
    "customers:profile_card": row(OWNED, NO_POST),
    "customers:delete": row(NO_GET, OWNED_DONE),
    "customers:share": row(on_object(MANAGERS_405), on_object(MANAGERS_DONE)),
    # personal-data requests: admins only; an erase without its typed confirmation re-shows the form
    "customers:privacy": row(on_object(ADMINS), on_object(ADMINS_405)),
    "customers:privacy_export": row(on_object(ADMINS_405), on_object(ADMINS)),
    "customers:privacy_erase": row(on_object(ADMINS_405), on_object(ADMINS)),
    "customers:timeline": row(OWNED, NO_POST),
    "customers:history": row(OWNED, NO_POST),
    "customers:orders": row(OWNED, NO_POST),
    "customers:import_start": row(MANAGERS, MANAGERS_DONE),
    "customers:import_template": row(MANAGERS, MANAGERS),
    "customers:import_preview": row(MANAGERS_DONE, MANAGERS_DONE),  # columns not mapped yet -> mapping
    "customers:import_mapping": row(MANAGERS, MANAGERS_DONE),
    "customers:import_status": row(MANAGERS, MANAGERS),
    "customers:import_confirm": row(MANAGERS_405, MANAGERS_DONE),
    "customers:import_cancel": row(MANAGERS_405, MANAGERS_DONE),
    "customers:export": row(EVERYONE, EVERYONE),  # POST streams the file
    "customers:export_all": row(MANAGERS, MANAGERS_DONE),
    "customers:export_job": row(OWNED, OWNED),
    "customers:duplicates": row(EVERYONE, NO_POST),
    "customers:duplicate_dismiss": row(NO_GET, OWNED_DONE),
    "customers:merge": row(OWNED, OWNED_DONE),
    "customers:merge_result": row(OWNED, NO_POST),
    "customers:merge_undo": row(OWNED, OWNED_DONE),
    # without ?ids= there is no group to merge; with ids: tests/customers/test_merge.py
    "customers:merge_group": row(signed_in(404), signed_in(404)),
    # a customer without a group merge to undo (the group pages' own tests: test_merge.py)
    "customers:merge_group_undo": row(signed_in(404), signed_in(404)),
    # segmentation
    "segmentation:index": row(EVERYONE, NO_POST),
    "segmentation:recompute": row(MANAGERS_405, MANAGERS_DONE),
    "segmentation:clv": row(EVERYONE, NO_POST),
    "segmentation:lifecycle": row(EVERYONE, NO_POST),
    "segmentation:alerts": row(EVERYONE, NO_POST),
    # the ticked ids are filtered through the user's scope: another's alert is silently left alone
    "segmentation:alerts_bulk": row(NO_GET, signed_in(302)),
    "segmentation:alert_acknowledge": row(NO_GET, OWNED_DONE),
    "segmentation:alert_dismiss": row(NO_GET, OWNED_DONE),
    "segmentation:segments": row(EVERYONE, NO_POST),
    "segmentation:segment_open": row(OWNED_DONE, NO_POST),  # opens the filtered customer list
    # follow-ups (interactions.followups): "own" is the sales user's follow-up, "other" sales2's
    "followups:my_day": row(EVERYONE, NO_POST),
    "followups:complete": row(NO_GET, OWNED_DONE),
    "followups:cancel": row(NO_GET, OWNED_DONE),
    "followups:snooze": row(NO_GET, OWNED_DONE),
    "followups:reschedule": row(NO_GET, OWNED_DONE),
    "followups:reassign": row(on_object(MANAGERS_405), on_object(MANAGERS_DONE)),
    "followups:create": row(NO_GET, OWNED_DONE),  # on the customer: own, or 404 for another's
    "followups:bulk_new": row(NO_GET, signed_in(302)),  # only customers the user sees get one
    "followups:rules": row(ADMINS, ADMINS_DONE),
    "followups:rule_edit": row(ADMINS, ADMINS_DONE),
    "segmentation:segment_count": row(OWNED, NO_POST),
    "segmentation:segment_delete": row(NO_GET, OWNED_DONE),
    "segmentation:builder": row(EVERYONE, signed_in(302)),
    "segmentation:builder_edit": row(OWNED, OWNED_DONE),
    "segmentation:builder_refresh": row(NO_GET, EVERYONE),
    "segmentation:builder_preview": row(NO_GET, EVERYONE),
    "segmentation:settings": row(ADMINS, ADMINS_DONE),
    "segmentation:history": row(MANAGERS, MANAGERS_405),
    # interactions: "own" is the sales user's interaction with their customer (they are its author)
    "interactions:index": row(EVERYONE, NO_POST),
    "interactions:log": row(OWNED, OWNED_DONE),
    "interactions:detail": row(OWNED, NO_POST),
    "interactions:edit": row(OWNED, OWNED_DONE),
    "interactions:delete": row(NO_GET, OWNED_DONE),
    "interactions:restore": row(NO_GET, OWNED_DONE),
    "interactions:attachment": row(OWNED, NO_POST),
    "interactions:attachment_remove": row(NO_GET, OWNED_DONE),
    "interactions:attachment_restore": row(NO_GET, OWNED_DONE),
    "interactions:export": row(NO_GET, signed_in(302)),
    "interactions:export_job": row(OWNED, NO_POST),
    "interactions:import": row(MANAGERS, MANAGERS_DONE),
    "interactions:import_job": row(MANAGERS, MANAGERS_DONE),  # the mapping step -> checking in the background
    "interactions:outcomes": row(ADMINS, ADMINS_DONE),
    "interactions:outcome_change": row(ADMINS_405, ADMINS_DONE),
    # loyalty: members are the customers' (sales: their own); settings and tiers are the admins'
    "loyalty:index": row(EVERYONE, NO_POST),
    "loyalty:members": row(EVERYONE, NO_POST),
    "loyalty:member": row(OWNED, NO_POST),
    "loyalty:member_adjust": row(NO_GET, OWNED_DONE),
    "loyalty:enrol": row(NO_GET, OWNED_DONE),
    "loyalty:reports": row(MANAGERS, MANAGERS_405),
    "loyalty:report_members": row(EVERYONE, NO_POST),  # the members behind a figure, in the user's scope
    "loyalty:opening_import": row(MANAGERS, MANAGERS_DONE),
    "loyalty:opening_import_job": row(MANAGERS, MANAGERS_DONE),  # the mapping step -> checking
    "loyalty:settings": row(ADMINS, ADMINS_DONE),
    "loyalty:tier_new": row(ADMINS, ADMINS_DONE),
    "loyalty:tier_edit": row(ADMINS, ADMINS_DONE),
    # rewards: the catalogue is the managers'; redeeming and vouchers follow the member's customer;
    # the counter finds a voucher by its code (any staff member: the code is what the customer shows)
    "loyalty:rewards:catalogue": row(EVERYONE, NO_POST),
    "loyalty:rewards:reward_new": row(MANAGERS, MANAGERS_DONE),
    "loyalty:rewards:reward_edit": row(MANAGERS, MANAGERS_DONE),
    "loyalty:rewards:reward_deactivate": row(MANAGERS_405, MANAGERS_DONE),
    "loyalty:rewards:reward_image": row(EVERYONE, NO_POST),
    "loyalty:rewards:redeem_pick": row(OWNED, NO_POST),
    "loyalty:rewards:redeem_confirm": row(OWNED, OWNED_DONE),
    "loyalty:rewards:counter": row(EVERYONE, signed_in(302)),
    "loyalty:rewards:voucher": row(OWNED, NO_POST),
    "loyalty:rewards:voucher_cancel": row(NO_GET, OWNED_DONE),
    "loyalty:rewards:voucher_use": row(NO_GET, OWNED_DONE),
    # referrals: recorded on the new member's page; the ambassador report is the managers'
    "loyalty:referrals:record": row(NO_GET, OWNED_DONE),
    "loyalty:referrals:ambassadors": row(MANAGERS, MANAGERS_405),
    "loyalty:referrals:ambassador": row(on_object(MANAGERS), on_object(MANAGERS_405)),
    "loyalty:referrals:settings": row(ADMINS, ADMINS_DONE),
    # a member's referral link: public on the tenant's site (a sign-up answers with the welcome page)
    "referral_link:join": row(everyone(200), everyone(200)),
    # service tickets (interactions.service); the contact form is public on the tenant's site
    "service:queue": row(EVERYONE, NO_POST),
    "service:bulk_assign": row(NO_GET, signed_in(302)),  # another's ticket: in scope or nothing changes
    "service:export": row(EVERYONE, NO_POST),
    "service:ticket_create": row(EVERYONE, signed_in(302)),
    "service:ticket": row(OWNED, NO_POST),
    "service:ticket_clocks": row(OWNED, NO_POST),
    "service:ticket_reply": row(NO_GET, OWNED_DONE),
    "service:ticket_note": row(NO_GET, OWNED_DONE),
    "service:ticket_status": row(NO_GET, OWNED_DONE),
    "service:ticket_assign": row(NO_GET, OWNED_DONE),
    "service:ticket_update": row(NO_GET, OWNED_DONE),
    "service:ticket_delete": row(on_object(MANAGERS_405), on_object(MANAGERS_DONE)),
    "service:attachment": row(OWNED, NO_POST),
    "service:figures": row(EVERYONE, NO_POST),
    "service:settings": row(ADMINS, ADMINS_DONE),
    "service:category_edit": row(ADMINS, ADMINS_DONE),
    "service:team_edit": row(ADMINS, ADMINS_DONE),
    "service:policy_edit": row(ADMINS, ADMINS_DONE),
    "service:policy_delete": row(ADMINS_405, ADMINS_DONE),
    "service:holiday_delete": row(ADMINS_405, ADMINS_DONE),
    "service:contact": row(everyone(200), everyone(302)),  # a valid request opens a ticket
    "service:contact_thanks": row(everyone(200), everyone(405)),
    "service:bin": row(MANAGERS, MANAGERS_405),
    "service:ticket_restore": row(MANAGERS_405, MANAGERS_DONE),
    # surveys (interactions.surveys); the answer page is public on the tenant's site
    "surveys:reports": row(EVERYONE, NO_POST),
    "surveys:responses": row(EVERYONE, NO_POST),
    "surveys:settings": row(ADMINS, ADMINS_DONE),
    "surveys:template_edit": row(ADMINS, ADMINS_DONE),
    "surveys:bulk_send": row(MANAGERS, MANAGERS_DONE),
    "surveys:answer": row(everyone(200), everyone(302)),  # a valid answer, then "thank you"
}

# Public site: (anonymous, operator, tenant admin)
OPERATOR_ONLY = (LOGIN, 200, LOGIN)
OPERATOR_DONE = (LOGIN, 302, LOGIN)
OPERATOR_405 = (LOGIN, 405, LOGIN)

PUBLIC: dict[str, Row] = {
    "public_home": public_row((200, 302, 200), (200, 302, 200)),  # the operator is sent to the console
    "set_language": public_row((405, 405, 405), (302, 302, 302)),
    "accounts:login": public_row((200, 302, 200), (302, 302, 302)),
    "accounts:logout": public_row((405, 405, 405), (302, 302, 302)),
    # the console's two-factor steps without a password step first: back to the sign-in page
    "accounts:two_factor_verify": public_row((302, 302, 302), (302, 302, 302)),
    "accounts:two_factor_setup": public_row((302, 302, 302), (302, 302, 302)),
    "accounts:two_factor_recovery_codes": public_row((302, 302, 302), (302, 302, 302)),
    "tenancy:list": public_row(OPERATOR_ONLY, OPERATOR_ONLY),
    "tenancy:create": public_row(OPERATOR_ONLY, OPERATOR_DONE),
    "tenancy:detail": public_row(OPERATOR_ONLY, OPERATOR_ONLY),
    "tenancy:progress": public_row(OPERATOR_ONLY, OPERATOR_ONLY),
    # an empty edit form comes back with its errors; a resend for an admin who accepted is refused
    # with a message and a redirect (tests/crm/test_tenancy_console.py sends one)
    "tenancy:edit": public_row(OPERATOR_ONLY, OPERATOR_ONLY),
    "tenancy:resend_invitation": public_row(OPERATOR_405, OPERATOR_DONE),
    "tenancy:suspend": public_row(OPERATOR_405, OPERATOR_DONE),
    "tenancy:reactivate": public_row(OPERATOR_405, OPERATOR_DONE),
    "tenancy:retry": public_row(OPERATOR_405, OPERATOR_DONE),
    # without the typed slug the form comes back with its error (tests/ops/test_tenant_delete.py deletes)
    "tenancy:delete": public_row(OPERATOR_ONLY, OPERATOR_ONLY),
}

# Django's own admin site is not part of the product's role model (it needs is_staff).
SKIPPED_NAMESPACES = ("admin",)
