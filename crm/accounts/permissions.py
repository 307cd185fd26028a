"""Role checks and record visibility: the one mechanism every app uses.

Admins and managers see every customer record; sales staff see the records they own plus the ones
explicitly shared with them. A model states how to find its owner (and optionally its shares) with
two class attributes, and `visible_to` applies the rule, so "own records only" is never re-implemented
in a view.
"""

from collections.abc import Callable, Iterable
from functools import wraps
from typing import TypeVar

from django.contrib.auth.views import redirect_to_login
from django.contrib.postgres.expressions import ArraySubquery
from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.http import Http404

from crm.expressions import InArray

from .models import Role, User

M = TypeVar("M", bound=Model)

ALL_ROLES = (Role.ADMIN, Role.MANAGER, Role.SALES)
MANAGERS = (Role.ADMIN, Role.MANAGER)
ADMINS = (Role.ADMIN,)


def user_has_role(user, roles: Iterable[str]) -> bool:
    return bool(user and user.is_authenticated and user.is_active and getattr(user, "role", None) in roles)


def visible_to(queryset: QuerySet[M], user: User) -> QuerySet[M]:
    """Limit `queryset` to what `user` may see.

    The model names its owner path in `VISIBILITY_OWNER_FIELD` (default "owner"; a child record uses
    e.g. "customer__owner") and, when records can be shared, the path to the users it is shared with
    in `VISIBILITY_SHARED_WITH_FIELD` (e.g. "shared_with" or "customer__shared_with").
    """
    if not user_has_role(user, ALL_ROLES):
        return queryset.none()
    if user.role in MANAGERS:
        return queryset
    model = queryset.model
    owner_field = getattr(model, "VISIBILITY_OWNER_FIELD", "owner")
    condition = Q(**{owner_field: user})
    shared_field = getattr(model, "VISIBILITY_SHARED_WITH_FIELD", None)
    if shared_field:
        shared_ids = model._base_manager.filter(**{shared_field: user}).order_by().values("pk")
        if "__" in shared_field:
            # A child record (an order, an interaction): its owner is a join away, so no index
            # combines the two arms, and its shared ids may be many: the hashed sub-plan stays.
            condition |= Q(pk__in=shared_ids)
        else:
            # The records shared with one user directly (customers, shared one at a time from their
            # page) are few. As an array, evaluated once, the arm is a bitmap on the primary key
            # that PostgreSQL ORs with the owner's index and ANDs with a search's: a sales rep's
            # "qq.com" with e-mail consent counted to the cap in 80 ms instead of 200 ms by a
            # sequential scan at 1,000,000 customers; and the scope is estimated as what the user
            # owns, where `IN (sub-query)` was guessed at half the table (docs/search-plans.md).
            condition |= Q(InArray("pk", ArraySubquery(shared_ids)))
    return queryset.filter(condition)


def get_visible_or_404(queryset: QuerySet[M], user: User, **lookup) -> M:
    """Fetch one record the user may see; a forbidden record answers exactly like a missing one."""
    try:
        return visible_to(queryset, user).get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError):
        raise Http404


def role_required(*roles: str, visible: Callable | None = None) -> Callable:
    """View decorator: anonymous users go to the login page, users without one of `roles` get 403.

    A route about one record passes `visible`, the access helper that fetches it for a user from the
    view's URL arguments (e.g. ``lambda user, pk: customer_get_for_user(user=user, customer_id=pk)``).
    A user without the role is then refused with 404 for a record outside their visibility, whatever
    the method, exactly as for a missing record; only a record they may see gets 403. Without it, a
    sales user could tell "not yours" from "no such record" by the status (issue 15).
    """
    allowed = roles or ALL_ROLES

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user_has_role(user, allowed):
                if visible is not None and user_has_role(user, ALL_ROLES):
                    visible(user, **kwargs)  # Http404 for what the user may not see
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapped.allowed_roles = tuple(allowed)
        wrapped.visible_lookup = visible
        return wrapped

    return decorator


class RoleRequiredMixin:
    """Class-based counterpart of `role_required`; set `allowed_roles` on the view."""

    allowed_roles: tuple[str, ...] = ALL_ROLES

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not user_has_role(request.user, self.allowed_roles):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)


def platform_admin_required(view):
    """Public-site views: only platform admins (superusers of the public schema)."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (user.is_active and user.is_superuser):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped
