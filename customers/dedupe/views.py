"""Pages for duplicates and merging: the candidate list, the side-by-side merge page, the result with
"Undo merge", and the undo confirmation.

Role decisions: every role may use them within what they can see — managers and admins see every
pair, sales the pairs of customers they can see both of (their own and those shared with them). A
customer outside the user's scope answers 404, exactly like a missing one.
"""

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.accounts.models import User
from crm.accounts.permissions import MANAGERS, role_required, user_has_role, visible_to
from crm.errors import SERVICE_ERRORS, show_service_error

from ..labels import field_title
from ..models import BehaviourEvent, Customer, CustomFieldDefinition, Order
from ..phone import format_phone
from ..registry import registry
from ..selectors import customer_get_for_user
from . import fields, selectors, services
from .scan import DuplicateScan

PAGE_SIZE = 25
# Three or more customers linked by pairs scoring this much are offered as one group to merge.
GROUP_MIN_SCORE = 85
GROUPS_SHOWN = 10
CHOICE_LABELS = (("survivor", gettext_lazy("Keep")), ("merged", gettext_lazy("Take")))
# What the result page calls each hook's rows; another app's hook shows under its key until named here.
HOOK_LABELS = {
    "customers.orders": gettext_lazy("Orders"),
    "customers.events": gettext_lazy("Behaviour events"),
    "customers.tags": gettext_lazy("Tags added"),
    "customers.shares": gettext_lazy("Users it is now shared with"),
    "customers.secondary_contacts": gettext_lazy("Secondary contacts"),
}
CONTACT_KINDS = ("email", "phone")


# --- helpers ---------------------------------------------------------------------------------------


def _merged_customer_or_404(user, pk) -> Customer:
    """A customer merged into another (normally in the recycle bin), visible to the user."""
    try:
        return visible_to(
            Customer.objects.select_related("merged_into", "deleted_by").filter(merged_into__isnull=False),
            user,
        ).get(pk=int(pk))
    except (Customer.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def _display(customer: Customer, attribute: str, definitions: dict, users: dict) -> str:
    """A value as the merge page shows it."""
    if attribute.startswith(fields.CUSTOM_PREFIX):
        value = (customer.custom_fields or {}).get(attribute[len(fields.CUSTOM_PREFIX) :])
        if isinstance(value, bool):
            return _("Yes") if value else _("No")
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return "" if value is None else str(value)
    if attribute == "owner":
        owner = users.get(customer.owner_id)
        return owner.get_full_name() if owner else ""
    if attribute in ("email_consent", "sms_consent"):
        given = getattr(customer, attribute)
        when = getattr(customer, f"{attribute}_at")
        if not given:
            return _("No")
        return (
            _("Yes, since %(date)s") % {"date": date_format(when, "SHORT_DATE_FORMAT")} if when else _("Yes")
        )
    value = getattr(customer, attribute)
    if attribute == "phone":
        return format_phone(value)
    if hasattr(customer, f"get_{attribute}_display") and value:
        return str(getattr(customer, f"get_{attribute}_display")())
    if value is None:
        return ""
    if attribute == "birthday":
        return date_format(value, "SHORT_DATE_FORMAT")
    return str(value)


def _comparison_rows(survivor: Customer, merged: Customer, choices: dict) -> list[dict]:
    definitions = {d.key: d for d in CustomFieldDefinition.objects.all()}
    users = User.objects.in_bulk([pk for pk in (survivor.owner_id, merged.owner_id) if pk])
    differing = set(fields.differing_fields(survivor, merged))
    names = [name for name, _attributes in fields.CHOOSABLE_FIELDS] + [
        fields.CUSTOM_PREFIX + key for key in fields.custom_field_keys(survivor, merged)
    ]
    rows = []
    for name in names:
        rows.append(
            {
                "name": name,
                "label": field_title(name, definitions),
                "survivor": _display(survivor, name, definitions, users),
                "merged": _display(merged, name, definitions, users),
                "differs": name in differing,
                "choice": choices.get(name, "survivor"),
            }
        )
    return rows


class MergeForm(forms.Form):
    """One radio group per differing field ("choice__<name>"): keep the survivor's value or take the
    merged customer's."""

    keep_secondary = forms.MultipleChoiceField(
        choices=(
            ("email", gettext_lazy("Keep the other email address as a secondary contact")),
            ("phone", gettext_lazy("Keep the other phone number as a secondary contact")),
        ),
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    def __init__(self, *args, names: list[str], initial_choices: dict, contact_kinds=CONTACT_KINDS, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["keep_secondary"]
        field.choices = [choice for choice in field.choices if choice[0] in contact_kinds]
        field.initial = list(contact_kinds)
        for name in names:
            self.fields[f"choice__{name}"] = forms.ChoiceField(
                choices=CHOICE_LABELS,
                initial=initial_choices.get(name, "survivor"),
                widget=forms.RadioSelect,
                required=False,  # not posted: the survivor's value stays
            )

    def field_choices(self) -> dict:
        return {
            key.removeprefix("choice__"): value
            for key, value in self.cleaned_data.items()
            if key.startswith("choice__") and value
        }


def _counts(customer: Customer) -> dict:
    return {
        "orders": Order.objects.filter(customer=customer).count(),
        "events": BehaviourEvent.objects.filter(customer=customer).count(),
        "tags": customer.tags.count(),
    }


# --- duplicates ------------------------------------------------------------------------------------


@role_required()
@require_GET
def duplicate_list(request: HttpRequest) -> HttpResponse:
    """Candidate pairs, best first; ?customer=<pk> narrows to one customer's pairs and offers a search
    for any other customer to merge with."""
    focus = None
    partners = []
    query = request.GET.get("q", "").strip()[:100]
    if request.GET.get("customer"):
        focus = customer_get_for_user(user=request.user, customer_id=request.GET["customer"])
    found = selectors.duplicate_scan_for_page(user=request.user)
    scan = found.scan or DuplicateScan.empty(found.customers)
    pairs = scan.involving(focus.pk) if focus else scan
    page = Paginator(pairs, PAGE_SIZE).get_page(request.GET.get("page"))
    ids = {pk for pair in page.object_list for pk in (pair.first_id, pair.second_id)}
    # (a scan shown while a newer one runs may name customers moved to the bin since: left out)
    customers = Customer.objects.filter(deleted_at__isnull=True).select_related("owner").in_bulk(ids)
    rows = [
        {"pair": pair, "first": customers[pair.first_id], "second": customers[pair.second_id]}
        for pair in page.object_list
        if pair.first_id in customers and pair.second_id in customers
    ]
    if focus is not None and query:
        partners = selectors.merge_partner_search(user=request.user, customer=focus, query=query)
    groups = []
    if focus is None and page.number == 1:
        id_groups = scan.groups(
            min_score=GROUP_MIN_SCORE, max_size=services.MAX_GROUP_SIZE, limit=GROUPS_SHOWN
        )
        members = Customer.objects.filter(deleted_at__isnull=True).in_bulk(
            {pk for group in id_groups for pk in group}
        )
        groups = [
            {"customers": [members[pk] for pk in group], "ids": ",".join(map(str, group))}
            for group in id_groups
            if all(pk in members for pk in group)
        ]
    querystring = f"customer={focus.pk}" if focus else ""
    return render(
        request,
        "customers/duplicate_list.html",
        {
            "page_obj": page,
            "rows": rows,
            "scan": scan,
            "found": found,
            "focus": focus,
            "query": query,
            "partners": partners,
            "groups": groups,
            "querystring": querystring,
            "is_manager": user_has_role(request.user, MANAGERS),
        },
    )


@role_required()
@require_POST
def duplicate_dismiss(request: HttpRequest, first: int, second: int) -> HttpResponse:
    one = customer_get_for_user(user=request.user, customer_id=first)
    other = customer_get_for_user(user=request.user, customer_id=second)
    services.duplicate_dismiss(actor=request.user, first=one, second=other)
    messages.success(
        request,
        _("%(first)s and %(second)s will no longer be offered as duplicates.")
        % {"first": one.name, "second": other.name},
    )
    return redirect("customers:duplicates")


# --- merge -----------------------------------------------------------------------------------------


@role_required()
@require_http_methods(["GET", "POST"])
def customer_merge(request: HttpRequest, survivor_pk: int, merged_pk: int) -> HttpResponse:
    """Side by side: `survivor_pk` stays, `merged_pk` is merged into it (a link swaps the two)."""
    survivor = customer_get_for_user(user=request.user, customer_id=survivor_pk)
    merged = customer_get_for_user(user=request.user, customer_id=merged_pk)
    if survivor.pk == merged.pk:
        messages.error(request, _("A customer cannot be merged with itself."))
        return redirect("customers:detail", pk=survivor.pk)
    defaults = fields.default_choices(survivor, merged)
    names = fields.differing_fields(survivor, merged)
    # Offered only where both records have a value and they differ: one of them loses.
    contact_kinds = [
        kind for kind in CONTACT_KINDS if kind in names and getattr(survivor, kind) and getattr(merged, kind)
    ]
    form = MergeForm(request.POST or None, names=names, initial_choices=defaults, contact_kinds=contact_kinds)
    if request.method == "POST" and form.is_valid():
        try:
            result = services.customer_merge(
                actor=request.user,
                survivor=survivor,
                merged=merged,
                field_choices=form.field_choices(),
                keep_secondary=form.cleaned_data["keep_secondary"],
            )
        except SERVICE_ERRORS as error:
            show_service_error(request, error)
        else:
            messages.success(
                request,
                _("%(merged)s was merged into %(survivor)s.")
                % {"merged": result.merged.name, "survivor": result.survivor.name},
            )
            return redirect("customers:merge_result", pk=result.merged.pk)
    choices = form.field_choices() if form.is_bound and form.is_valid() else defaults
    rows = _comparison_rows(survivor, merged, choices)
    for row in rows:
        row["field"] = form[f"choice__{row['name']}"] if row["differs"] else None
    return render(
        request,
        "customers/merge_form.html",
        {
            "survivor": survivor,
            "merged": merged,
            "form": form,
            "rows": rows,
            "survivor_counts": _counts(survivor),
            "merged_counts": _counts(merged),
            "survivor_tags": list(survivor.tags.all()),
            "merged_tags": list(merged.tags.all()),
            "hooks": list(registry.merge_hooks),
        },
    )


@role_required()
@require_GET
def merge_result(request: HttpRequest, pk: int) -> HttpResponse:
    """What a merge did, with "Undo merge"."""
    merged = _merged_customer_or_404(request.user, pk)
    event = selectors.merge_event_for(merged)
    info = event.changes if event else {}
    moved_info = info.get("moved") or {}
    order = [key for key in info.get("hook_order") or [] if key in moved_info]
    order += [key for key in moved_info if key not in order]
    moved = [
        {"key": key, "label": HOOK_LABELS.get(key, key), "count": selectors.moved_count(moved_info[key])}
        for key in order
    ]
    # Only what actually moved (a hook that reports no counts is listed when it reports anything).
    moved = [item for item in moved if item["count"] or (item["count"] is None and moved_info[item["key"]])]
    definitions = {d.key: d for d in CustomFieldDefinition.objects.all()}
    changed = [
        field_title(name, definitions) for name in fields.choice_names_of(info.get("survivor_before") or {})
    ]
    return render(
        request,
        "customers/merge_result.html",
        {
            "merged": merged,
            "survivor": merged.merged_into,
            "event": event,
            "moved": moved,
            "changed": changed,
        },
    )


@role_required()
@require_http_methods(["GET", "POST"])
def merge_undo(request: HttpRequest, pk: int) -> HttpResponse:
    merged = _merged_customer_or_404(request.user, pk)
    if request.method == "POST":
        try:
            result = services.customer_merge_undo(actor=request.user, merged=merged)
        except SERVICE_ERRORS as error:
            show_service_error(request, error)
            return redirect("customers:merge_result", pk=merged.pk)
        definitions = {d.key: d for d in CustomFieldDefinition.objects.all()}
        messages.success(
            request,
            _("The merge was undone: %(merged)s and %(survivor)s are separate customers again.")
            % {"merged": result.merged.name, "survivor": result.survivor.name},
        )
        if result.kept_fields:
            messages.warning(
                request,
                _("Edited since the merge and therefore kept on %(survivor)s: %(fields)s.")
                % {
                    "survivor": result.survivor.name,
                    "fields": ", ".join(field_title(name, definitions) for name in result.kept_fields),
                },
            )
        for note in result.notes:
            messages.warning(request, note)
        return redirect("customers:detail", pk=result.merged.pk)
    return render(
        request,
        "customers/merge_undo_confirm.html",
        {"merged": merged, "survivor": merged.merged_into, "event": selectors.merge_event_for(merged)},
    )


# --- merging a group (three-way duplicates and more) ---------------------------------------------


class GroupMergeForm(forms.Form):
    survivor = forms.TypedChoiceField(coerce=int, choices=())
    keep_secondary = forms.MultipleChoiceField(
        choices=(
            ("email", gettext_lazy("Keep the other email addresses as secondary contacts")),
            ("phone", gettext_lazy("Keep the other phone numbers as secondary contacts")),
        ),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        initial=["email", "phone"],
    )

    def __init__(self, *args, customers: list[Customer], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["survivor"].choices = [(c.pk, c.name) for c in customers]
        self.fields["survivor"].widget = forms.RadioSelect(choices=self.fields["survivor"].choices)
        self.fields["survivor"].initial = customers[0].pk if customers else None


def _group_ids(request: HttpRequest) -> list[int]:
    """The ids of `?ids=` (repeated or comma-separated), bounded before parsing, in order, once each."""
    raw = request.POST.getlist("ids") if request.method == "POST" else request.GET.getlist("ids")
    pieces = [piece for value in raw[: services.MAX_GROUP_SIZE + 1] for piece in value[:200].split(",")]
    ids: list[int] = []
    for piece in pieces[: services.MAX_GROUP_SIZE + 1]:
        if not piece.strip().isdigit() or len(piece.strip()) > 12:
            raise Http404
        if int(piece) not in ids:
            ids.append(int(piece))
    return ids


@role_required()
@require_http_methods(["GET", "POST"])
def merge_group(request: HttpRequest) -> HttpResponse:
    """Merge three or more customers (?ids=1,2,3) into one in a single step; undone in one step too."""
    ids = _group_ids(request)
    if len(ids) < 2 or len(ids) > services.MAX_GROUP_SIZE:
        raise Http404
    # every one must be visible: one that is not answers like a missing one
    customers = [customer_get_for_user(user=request.user, customer_id=pk) for pk in ids]
    # the one with most orders (then the oldest) is offered to stay
    customers.sort(key=lambda c: (-c.orders_count, c.created_at, c.pk))
    form = GroupMergeForm(request.POST or None, customers=customers)
    if request.method == "POST" and form.is_valid():
        survivor_pk = form.cleaned_data["survivor"]
        survivor = next(c for c in customers if c.pk == survivor_pk)
        try:
            result = services.customer_merge_group(
                actor=request.user,
                survivor=survivor,
                others=[c for c in customers if c.pk != survivor_pk],
                keep_secondary=form.cleaned_data["keep_secondary"],
            )
        except SERVICE_ERRORS as error:
            show_service_error(request, error)
        else:
            messages.success(
                request,
                _("%(count)d customers were merged into %(survivor)s.")
                % {"count": len(result.merged), "survivor": result.survivor.name},
            )
            return redirect("customers:merge_group_undo", pk=result.survivor.pk)
    return render(
        request,
        "customers/merge_group.html",
        {"customers": customers, "form": form, "ids": ",".join(str(c.pk) for c in customers)},
    )


@role_required()
@require_http_methods(["GET", "POST"])
def merge_group_undo(request: HttpRequest, pk: int) -> HttpResponse:
    """The survivor's latest group merge: what it did, and "Undo all" (each merge, last first)."""
    survivor = customer_get_for_user(user=request.user, customer_id=pk)
    event = services.group_merge_event_for(survivor)
    if event is None:
        raise Http404
    merged_ids = (event.changes or {}).get("merged_ids", [])
    merged = list(Customer.objects.filter(pk__in=merged_ids, merged_into_id=survivor.pk).order_by("pk"))
    if request.method == "POST":
        try:
            results = services.customer_merge_group_undo(actor=request.user, survivor=survivor)
        except SERVICE_ERRORS as error:
            show_service_error(request, error)
        else:
            messages.success(
                request,
                _("The group merge was undone: %(count)d customers are separate again.")
                % {"count": len(results)},
            )
            return redirect("customers:detail", pk=survivor.pk)
    return render(
        request, "customers/merge_group_result.html", {"survivor": survivor, "merged": merged, "event": event}
    )


def merge_undo_url(customer: Customer) -> str:
    """For other pages (the recycle bin): where "Undo merge" of a merged customer goes."""
    return reverse("customers:merge_undo", args=[customer.pk])


# --- the detail-page panel ---------------------------------------------------------------------------


def _duplicates_panel_context(customer: Customer, user) -> dict | None:
    """Shown on a customer's page only when other customers have the same email or phone (one
    indexed query); the full finder, with names, is one click away."""
    matches = selectors.exact_matches(user=user, customer=customer)
    if not matches:
        return None
    return {"matches": matches}


def register_detail_panel() -> None:
    from ..registry import DetailPanel

    registry.add_detail_panel(
        DetailPanel(
            key="customers.duplicates",
            title=gettext_lazy("Possible duplicates"),
            template="customers/partials/_merge_panel.html",
            context=_duplicates_panel_context,
            order=5,
        )
    )
