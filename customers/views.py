"""Customer pages: the list, the 360° page, create/edit, recycle bin and custom field settings.

Every view checks the role on the server; a customer the user may not see answers 404 exactly like a
missing one (customer_get_for_user). Views parse with a form, call one selector or service, render.

Role decisions (documented for the team):
- Sales see their own customers and those shared with them; they create (and own) customers, edit the
  ones they see, tag them (also in bulk), and move their OWN customers to the bin and back.
- Managers and admins see everyone; they also assign owners, share customers, bulk-delete and refund.
- Only admins manage custom fields.
"""

import logging
from datetime import datetime

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.accounts.permissions import ADMINS, MANAGERS, role_required, user_has_role
from crm.errors import SERVICE_ERRORS, show_service_error
from crm.numbers import parse_id

from . import selectors, services
from .forms import (
    BulkActionForm,
    CustomerFilterForm,
    CustomerForm,
    CustomFieldDefinitionForm,
    RefundForm,
    ShareForm,
)
from .registry import DetailPage, registry
from .tags import selectors as tag_selectors

logger = logging.getLogger(__name__)

COLUMNS_SESSION_KEY = "customers.list.columns"
LIST_PAGE_SIZE = selectors.PAGE_SIZE


# --- list ------------------------------------------------------------------------------------------


def core_columns() -> list[dict]:
    """Optional columns of the list (the name is always shown). `sort` names a sort option."""
    return [
        {"key": "email", "label": gettext_lazy("Email"), "sort": None, "default": True},
        {"key": "phone", "label": gettext_lazy("Phone"), "sort": None, "default": True},
        {"key": "city", "label": gettext_lazy("City"), "sort": None, "default": True},
        {"key": "owner", "label": gettext_lazy("Owner"), "sort": None, "default": True},
        {"key": "tags", "label": gettext_lazy("Tags"), "sort": None, "default": True},
        {"key": "source", "label": gettext_lazy("Source"), "sort": None, "default": False},
        {"key": "orders", "label": gettext_lazy("Orders"), "sort": "orders", "default": True},
        {"key": "total_spent", "label": gettext_lazy("Total spent"), "sort": "total_spent", "default": True},
        {"key": "last_order", "label": gettext_lazy("Last purchase"), "sort": "last_order", "default": True},
        {"key": "created", "label": gettext_lazy("Created"), "sort": "created", "default": False},
    ]


def available_columns() -> list[dict]:
    columns = core_columns()
    for column in registry.sorted_columns():
        columns.append(
            {
                "key": column.key,
                "label": column.label,
                "sort": column.key if column.sort_field else None,
                "default": column.default_visible,
                "registered": column,
            }
        )
    return columns


def chosen_columns(request: HttpRequest) -> list[dict]:
    columns = available_columns()
    saved = request.session.get(COLUMNS_SESSION_KEY)
    if not isinstance(saved, list):
        return [c for c in columns if c["default"]]
    by_key = {c["key"]: c for c in columns}
    return [by_key[key] for key in saved if key in by_key]


def _next_sort(current: str, key: str) -> str:
    """Clicking a header: flip the direction of the current sort, else start with the natural one."""
    if current == f"-{key}":
        return key
    if current == key:
        return f"-{key}"
    return key if key == "name" else f"-{key}"


def _querystring(params: QueryDict, **changes) -> str:
    query = params.copy()
    for key, value in changes.items():
        query.pop(key, None)
        if value not in (None, ""):
            query[key] = value
    return query.urlencode()


def _non_empty(params: QueryDict) -> QueryDict:
    """The query without empty values: links built from it carry only the filters in use."""
    query = params.copy()
    for key in list(query.keys()):
        values = [value for value in query.getlist(key) if value.strip()]
        if values:
            query.setlist(key, values)
        else:
            query.pop(key)
    return query


def _paging(request: HttpRequest, *, page, total) -> dict:
    """Page numbers for the keyset pages: the list walks by cursor (OFFSET would slow down deep pages
    of 100,000 customers), so it cannot jump to page 37, but it offers first, previous, next and last,
    and says "page N of M" when the total is exact. N travels in the link (`page=`) as a display hint
    only: the rows always come from the cursor."""
    count = max(1, -(-total.value // page.page_size)) if total.exact else None
    if page.is_first:
        number = 1
    elif not page.has_next and count is not None:
        number = count
    else:
        try:
            number = int(request.GET.get("page", ""))
        except ValueError:
            number = None
        if number is not None and not (1 < number <= (count or number)):
            number = None
    return {
        "number": number,
        "count": count,
        "next_number": number + 1 if number is not None else None,
        "previous_number": number - 1 if number is not None and number > 2 else None,
    }


@role_required()
@require_GET
def customer_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    definitions = list(selectors.custom_field_list())
    owners = list(selectors.assignable_users())
    tags = list(selectors.tag_list())
    form = CustomerFilterForm(
        request.GET or None, user=user, definitions=definitions, owners=owners, tags=tags
    )
    form.is_valid()
    filters = form.filters()
    columns = chosen_columns(request)
    qs = selectors.customer_list(user=user, filters=filters)
    sort = filters.get("sort") or request.GET.get("sort")
    total = selectors.customer_count(user=user, qs=qs, filters=filters, sort=sort or "")
    page = selectors.customer_page(
        qs,
        sort=sort,
        cursor=request.GET.get("cursor"),
        direction=request.GET.get("direction", "next"),
        page_size=LIST_PAGE_SIZE,
        columns=[c["key"] for c in columns],
        last_rows=(total.value % LIST_PAGE_SIZE or LIST_PAGE_SIZE) if total.exact else None,
        matches_first=selectors.page_reads_matches_first(filters=filters, total=total),
        bounded_walk=selectors.page_walks_a_bounded_stretch(filters=filters, total=total),
        han_prefix=selectors.page_han_prefix(user=user, filters=filters, total=total, sort=sort),
        ordered=total.ordered,
    )
    base_query = _non_empty(request.GET)
    for key in ("cursor", "direction", "page"):
        base_query.pop(key, None)
    paging = _paging(request, page=page, total=total)
    context = {
        "form": form,
        "page": page,
        "total": total,
        "columns": columns,
        "all_columns": available_columns(),
        "chosen_keys": [c["key"] for c in columns],
        "sort": page.sort,
        "base_query": base_query.urlencode(),
        "paging": paging,
        "next_query": _querystring(
            base_query, cursor=page.next_cursor, direction="next", page=paging["next_number"]
        ),
        "prev_query": _querystring(
            base_query, cursor=page.previous_cursor, direction="prev", page=paging["previous_number"]
        ),
        "last_query": _querystring(base_query, direction="last", page=paging["count"]),
        "sort_queries": {
            c["sort"]: _querystring(base_query, sort=_next_sort(page.sort, c["sort"]))
            for c in [{"sort": "name"}, *columns]
            if c.get("sort")
        },
        "is_manager": user_has_role(user, MANAGERS),
        "owners": owners,
        "tags": tags,
        "bulk_actions": BulkActionForm.action_choices(user),
        "row_actions": registry.row_actions_for(user),
        "extra_bulk_actions": [
            {"label": action.label, "url": reverse(action.url_name), "icon": action.icon, "key": action.key}
            for action in registry.sorted_bulk_actions()
            if user_has_role(user, action.roles)
        ],
    }
    if request.htmx and request.htmx.target == "customer-results":
        return render(request, "customers/partials/_list_results.html", context)
    return render(request, "customers/customer_list.html", context)


@role_required()
@require_POST
def customer_columns(request: HttpRequest) -> HttpResponse:
    keys = {c["key"] for c in available_columns()}
    chosen = [key for key in request.POST.getlist("columns") if key in keys]
    request.session[COLUMNS_SESSION_KEY] = chosen
    return redirect(_safe_next(request, reverse("customers:list")))


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}):
        return target
    return default


@role_required()
@require_POST
def customer_bulk(request: HttpRequest) -> HttpResponse:
    form = BulkActionForm(request.POST, user=request.user)
    back = _safe_next(request, reverse("customers:list"))
    if not form.is_valid():
        for error in form.errors.values():
            messages.error(request, " ".join(error))
        return redirect(back)
    action = form.cleaned_data["action"]
    ids = form.selected_ids()
    try:
        if action in ("tag_add", "tag_remove"):
            tag = services.tag_get_or_create(name=form.cleaned_data["tag"])
            count = services.customers_bulk_tag(
                actor=request.user, customer_ids=ids, tag=tag, remove=action == "tag_remove"
            )
            text = (
                _("Tag “%(tag)s” added to %(count)d customers.")
                if action == "tag_add"
                else _("Tag “%(tag)s” removed from %(count)d customers.")
            )
            messages.success(request, text % {"tag": tag.name, "count": count})
        elif action == "assign":
            owner = form.cleaned_data.get("owner_user")
            count = services.customers_bulk_assign_owner(actor=request.user, customer_ids=ids, owner=owner)
            messages.success(request, _("%(count)d customers assigned.") % {"count": count})
        elif action == "delete":
            count = services.customers_bulk_delete(actor=request.user, customer_ids=ids)
            messages.success(request, _("%(count)d customers moved to the recycle bin.") % {"count": count})
    except (*SERVICE_ERRORS, PermissionDenied) as error:  # a bulk action may include others' customers
        show_service_error(request, error)
    return redirect(back)


# --- create / edit ---------------------------------------------------------------------------------


def _resolve_tags(form: CustomerForm) -> list:
    tags = list(form.cleaned_data.get("tags") or [])
    for name in form.new_tag_names():
        tag = services.tag_get_or_create(name=name)
        if tag not in tags:
            tags.append(tag)
    return tags


@role_required()
@require_http_methods(["GET", "POST"])
def customer_create(request: HttpRequest) -> HttpResponse:
    form = CustomerForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            data = form.service_data()
            customer = services.customer_create(actor=request.user, tags=_resolve_tags(form), **data)
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Customer %(name)s created.") % {"name": customer.name})
            return redirect("customers:detail", pk=customer.pk)
    return render(request, "customers/customer_form.html", {"form": form, "customer": None})


@role_required()
@require_http_methods(["GET", "POST"])
def customer_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Full-page edit, or (htmx) swap the profile card into a form and back."""
    customer = selectors.customer_get_for_user(user=request.user, customer_id=pk)
    form = CustomerForm(request.POST or None, user=request.user, customer=customer)
    inline = bool(request.htmx)
    if request.method == "POST" and form.is_valid():
        try:
            data = form.service_data()
            data["tags"] = _resolve_tags(form)
            customer = services.customer_update(actor=request.user, customer=customer, data=data)
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            if inline:
                customer = selectors.customer_get_for_user(user=request.user, customer_id=pk)
                response = render(
                    request, "customers/partials/_profile_card.html", _profile_context(request, customer)
                )
                response["HX-Trigger"] = "customer-updated"
                return response
            messages.success(request, _("Changes saved."))
            return redirect("customers:detail", pk=customer.pk)
    if inline:
        return render(request, "customers/partials/_profile_form.html", {"form": form, "customer": customer})
    return render(request, "customers/customer_form.html", {"form": form, "customer": customer})


@role_required()
@require_GET
def customer_profile_card(request: HttpRequest, pk: int) -> HttpResponse:
    """The read-only profile card (htmx: "Cancel" on the in-place edit form)."""
    customer = selectors.customer_get_for_user(user=request.user, customer_id=pk)
    return render(request, "customers/partials/_profile_card.html", _profile_context(request, customer))


@role_required()
@require_GET
def check_duplicate(request: HttpRequest) -> HttpResponse:
    """htmx: warn while typing an email or phone that another customer already has."""
    exclude = request.GET.get("customer_id", "")
    matches = selectors.customer_find_existing(
        user=request.user,
        email=request.GET.get("email", "")[:254],
        phone=request.GET.get("phone", "")[:40],
        exclude_id=parse_id(exclude),
    )
    return render(request, "customers/partials/_duplicate_warning.html", {"matches": matches})


# --- detail ----------------------------------------------------------------------------------------


def _profile_context(request: HttpRequest, customer) -> dict:
    definitions = list(selectors.custom_field_list(active_only=False))
    values = customer.custom_fields or {}
    custom = [
        {"label": d.label, "value": values.get(d.key), "definition": d}
        for d in definitions
        if d.is_active or d.key in values
    ]
    return {
        "customer": customer,
        "custom_definitions": definitions,
        "custom_values": custom,
        "tags": list(customer.tags.live().order_by("name")),
        "shared_with": list(customer.shared_with.all()),
        "secondary_contacts": list(customer.secondary_contacts.all()),
        "can_delete": services.can_delete(request.user, customer),
        "is_manager": user_has_role(request.user, MANAGERS),
    }


def _panels(request: HttpRequest, customer) -> list[dict]:
    page = DetailPage(customer=customer, user=request.user)
    panels = []
    for panel in registry.sorted_panels():
        try:
            context = panel.context_for(page)
        except Exception:  # one app's panel must not take the page down
            logger.exception("Detail panel %s failed for customer %s", panel.key, customer.pk)
            continue
        if context is not None:
            # Rendered here so the panel's template gets its own context variables (safe, autoescaped).
            html = render_to_string(panel.template, {"customer": customer, **context}, request=request)
            panels.append({"key": panel.key, "title": panel.title, "html": html})
    return panels


@role_required()
@require_GET
def customer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    customer = selectors.customer_get_for_user(user=request.user, customer_id=pk)
    context = _profile_context(request, customer)
    # The timeline asks every app registered in customers.registry (a query or two each) and sits
    # below the panels, so the page loads it with htmx when it scrolls into view; ?timeline=1 (the
    # link shown until then, for browsers without JavaScript) renders it here instead.
    timeline_inline = request.GET.get("timeline") == "1"
    entries, next_before = [], None
    if timeline_inline:
        entries, next_before = selectors.customer_timeline(customer=customer, user=request.user)
    # The Orders and History tabs are hidden until clicked: each loads with htmx when it is first
    # shown (their own views below), so the page reads neither the orders with their lines and
    # refunds nor the audit records unless they are looked at. An ?orders_page= link (the pager's
    # href) still renders the orders here.
    orders_inline = "orders_page" in request.GET
    context.update(
        {
            "orders": selectors.customer_orders(customer=customer, page=request.GET.get("orders_page", 1))
            if orders_inline
            else None,
            "orders_inline": orders_inline,
            "orders_total": selectors.customer_order_count(customer=customer),
            "timeline_inline": timeline_inline,
            "timeline": entries,
            "next_before": next_before.isoformat() if next_before else "",
            "panels": _panels(request, customer),
            "share_form": ShareForm(customer=customer, initial={"users": context["shared_with"]})
            if context["is_manager"]
            else None,
            "refund_form": RefundForm() if context["is_manager"] else None,
            "purge_days": services.BIN_RETENTION_DAYS,
        }
    )
    return render(request, "customers/customer_detail.html", context)


@role_required()
@require_GET
def customer_history(request: HttpRequest, pk: int) -> HttpResponse:
    """htmx: the History tab again after an edit on the page ("customer-updated"), so a change shows
    without a reload."""
    customer = selectors.customer_get_for_user(user=request.user, customer_id=pk)
    return render(
        request,
        "customers/partials/_history.html",
        {"history": selectors.customer_history(customer=customer, limit=50)},
    )


@role_required()
@require_GET
def customer_timeline(request: HttpRequest, pk: int) -> HttpResponse:
    """htmx "load more" on the timeline: entries older than ?before=<ISO time>."""
    customer = selectors.customer_get_for_user(user=request.user, customer_id=pk)
    before = None
    raw = request.GET.get("before", "")
    if raw:
        try:
            before = datetime.fromisoformat(raw)
        except ValueError:
            before = None
    entries, next_before = selectors.customer_timeline(customer=customer, user=request.user, before=before)
    return render(
        request,
        "customers/partials/_timeline.html",
        {
            "customer": customer,
            "timeline": entries,
            "next_before": next_before.isoformat() if next_before else "",
        },
    )


@role_required()
@require_GET
def customer_orders(request: HttpRequest, pk: int) -> HttpResponse:
    customer = selectors.customer_get_for_user(user=request.user, customer_id=pk)
    return render(
        request,
        "customers/partials/_orders.html",
        {
            "customer": customer,
            "orders": selectors.customer_orders(customer=customer, page=request.GET.get("orders_page", 1)),
            "refund_form": RefundForm() if user_has_role(request.user, MANAGERS) else None,
        },
    )


@role_required(*MANAGERS, visible=lambda user, pk: selectors.order_get_for_user(user=user, order_id=pk))
@require_POST
def order_refund(request: HttpRequest, pk: int) -> HttpResponse:
    order = selectors.order_get_for_user(user=request.user, order_id=pk)
    form = RefundForm(request.POST)
    if form.is_valid():
        try:
            services.order_refund(
                actor=request.user,
                order=order,
                amount=form.cleaned_data["amount"],
                reason=form.cleaned_data["reason"],
            )
        except SERVICE_ERRORS as error:
            show_service_error(request, error)
        else:
            messages.success(request, _("Refund recorded for order %(number)s.") % {"number": order.number})
    else:
        messages.error(request, " ".join(m for errors in form.errors.values() for m in errors))
    return redirect(reverse("customers:detail", args=[order.customer_id]) + f"#order-{order.pk}")


@role_required(*MANAGERS, visible=selectors.customer_visible)
@require_POST
def customer_share(request: HttpRequest, pk: int) -> HttpResponse:
    customer = selectors.customer_get_for_user(user=request.user, customer_id=pk)
    form = ShareForm(request.POST, customer=customer)
    if form.is_valid():
        services.customer_share(actor=request.user, customer=customer, users=form.cleaned_data["users"])
        messages.success(request, _("Sharing saved."))
    else:
        messages.error(request, _("Choose users from the list."))
    return redirect("customers:detail", pk=customer.pk)


# --- recycle bin -----------------------------------------------------------------------------------


@role_required()
@require_POST
def customer_delete(request: HttpRequest, pk: int) -> HttpResponse:
    customer = selectors.customer_get_for_user(user=request.user, customer_id=pk)
    try:
        services.customer_delete(actor=request.user, customer=customer)
    except PermissionDenied as error:  # not the owner: refused with the service's reason
        show_service_error(request, error)
        return redirect("customers:detail", pk=customer.pk)
    messages.success(
        request,
        _("%(name)s moved to the recycle bin. It can be restored for %(days)d days.")
        % {"name": customer.name, "days": services.BIN_RETENTION_DAYS},
    )
    return redirect("customers:list")


@role_required()
@require_GET
def customer_bin(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.bin_list(user=request.user), 50).get_page(request.GET.get("page"))
    rows = [
        {"customer": c, "purge_at": services.purge_date(c), "undo_merge_url": _undo_merge_url(c)}
        for c in page.object_list
    ]
    # Binned tags (Settings > Tags) for those who manage tags: one more query, the newest first.
    binned_tags = (
        list(tag_selectors.tag_bin_list()[:BINNED_TAGS_SHOWN])
        if user_has_role(request.user, MANAGERS)
        else None
    )
    return render(
        request,
        "customers/customer_bin.html",
        {
            "page_obj": page,
            "rows": rows,
            "retention_days": services.BIN_RETENTION_DAYS,
            "binned_tags": binned_tags,
            "binned_tags_shown": BINNED_TAGS_SHOWN,
        },
    )


BINNED_TAGS_SHOWN = 100


def _undo_merge_url(customer) -> str | None:
    """A customer binned by a merge comes back through "undo merge" (which moves its rows back too)."""
    if not customer.merged_into_id:
        return None
    return reverse("customers:merge_undo", args=[customer.pk])


@role_required()
@require_POST
def customer_restore(request: HttpRequest, pk: int) -> HttpResponse:
    customer = selectors.customer_get_in_bin_for_user(user=request.user, customer_id=pk)
    try:
        services.customer_restore(actor=request.user, customer=customer)
    except PermissionDenied as error:
        show_service_error(request, error)
        return redirect("customers:bin")
    messages.success(request, _("%(name)s restored.") % {"name": customer.name})
    return redirect("customers:detail", pk=customer.pk)


# --- custom fields (Settings) ----------------------------------------------------------------------


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def custom_field_list(request: HttpRequest) -> HttpResponse:
    form = CustomFieldDefinitionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            definition = services.custom_field_create(actor=request.user, **form.cleaned_data)
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Custom field “%(label)s” added.") % {"label": definition.label})
            return redirect("customers:custom_fields")
    # in the order forms, the profile and exports show them (inactive ones stay in their place, greyed)
    definitions = selectors.custom_field_list(active_only=False).order_by("position", "label", "pk")
    return render(request, "customers/customfield_list.html", {"form": form, "definitions": definitions})


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def custom_field_edit(request: HttpRequest, pk: int) -> HttpResponse:
    definition = selectors.custom_field_get(definition_id=pk)
    form = CustomFieldDefinitionForm(request.POST or None, definition=definition)
    if request.method == "POST" and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items() if k not in ("key", "field_type")}
        try:
            services.custom_field_update(actor=request.user, definition=definition, data=data)
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Custom field saved."))
            return redirect("customers:custom_fields")
    return render(request, "customers/customfield_form.html", {"form": form, "definition": definition})


@role_required(*ADMINS)
@require_POST
def custom_field_move(request: HttpRequest, pk: int) -> HttpResponse:
    definition = selectors.custom_field_get(definition_id=pk)
    try:
        services.custom_field_move(
            actor=request.user, definition=definition, direction=request.POST.get("direction", "")[:10]
        )
    except SERVICE_ERRORS as error:
        show_service_error(request, error)
    return redirect(reverse("customers:custom_fields") + f"#field-{definition.pk}")


@role_required(*ADMINS)
@require_POST
def custom_field_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    definition = selectors.custom_field_get(definition_id=pk)
    definition = services.custom_field_set_active(
        actor=request.user, definition=definition, active=not definition.is_active
    )
    if definition.is_active:
        messages.success(request, _("“%(label)s” is active again.") % {"label": definition.label})
    else:
        messages.success(
            request,
            _("“%(label)s” deactivated. Stored values are kept and come back if you reactivate it.")
            % {"label": definition.label},
        )
    return redirect("customers:custom_fields")
