"""Extension points through which other apps contribute to customer pages and operations.

The customers app owns the customer list, the 360° page and merging, but segmentation, loyalty and
interactions attach their own data to a customer. Rather than customers importing them, each app
registers what it contributes in its AppConfig.ready():

- list filters and columns for the customer list (e.g. RFM segment, lifecycle stage, CLV, tier);
- panels for the customer detail page (e.g. "Value" with RFM scores and CLV);
- timeline entries (orders, interactions, points, stage changes, alerts, edits);
- a merge hook that moves the app's rows from a merged customer to the survivor, and back on undo;
- row actions: small buttons on each row of the customer list (e.g. "Log interaction").
- bulk actions on the customers selected in the list (e.g. "assign a follow-up");
- a personal-data provider: what the app holds about a person, exported and erased on request.

Every callable receives plain arguments and returns plain data, so the registrations are easy to
test on their own.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils.functional import Promise


@dataclass(frozen=True)
class ListFilter:
    """A filter on the customer list.

    `form_field()` builds the form field shown in the filter bar (named `key`; a field with a
    `limit_to(user)` method is given the viewing user, e.g. to offer only what they may use);
    `apply(qs, value, user)` narrows the queryset for a cleaned, non-empty value. It must stay
    index-friendly: use joins or EXISTS subqueries on indexed columns, never Python loops.
    """

    key: str
    label: str | Promise
    form_field: Callable[[], forms.Field]
    apply: Callable[[QuerySet, Any, Any], QuerySet]
    order: int = 100


@dataclass(frozen=True)
class ListColumn:
    """An optional column of the customer list.

    `prepare(qs)` adds what the column needs (select_related / annotate) so a page of rows costs no
    extra query per row; `value(customer)` returns the cell (a string, number, date or None);
    `sort_field` (optional) is an ORM ordering expression, e.g. "segmentation_score__clv".
    """

    key: str
    label: str | Promise
    prepare: Callable[[QuerySet], QuerySet]
    value: Callable[[Any], Any]
    sort_field: str | None = None
    default_visible: bool = False
    order: int = 100


class DetailPage:
    """What the 360° page has read once, shared by its panels so none reads it again.

    `customer` (with its owner) and `user` (the viewer, whose `role` is on the row) are already
    loaded. `once(key, load)` returns `load()` the first time a key is asked for during this request
    and the same object afterwards: panels from several apps that need the same object (the loyalty
    programme, the customer's member row...) read it once. Keys are namespaced by the app
    ("loyalty.programme"). A page lives for one request only, so nothing goes stale.
    """

    def __init__(self, *, customer: Any, user: Any) -> None:
        self.customer = customer
        self.user = user
        self._loaded: dict[str, Any] = {}

    def once(self, key: str, load: Callable[[], Any]) -> Any:
        if key not in self._loaded:
            self._loaded[key] = load()
        return self._loaded[key]


@dataclass(frozen=True)
class DetailPanel:
    """A card on the customer 360° page: `context(customer, user)` returns the template context, or
    None to hide the panel; rendered with `template`.

    With `takes_page`, `context` is called as `context(customer, user, page)` with the request's
    `DetailPage`, through which panels share what they read (see `DetailPage.once`). A panel should
    cost one or two indexed queries: fold a count and a list into one query, and take shared objects
    from the page rather than reading them again.
    """

    key: str
    title: str | Promise
    template: str
    context: Callable[..., dict | None]
    order: int = 100
    takes_page: bool = False

    def context_for(self, page: DetailPage) -> dict | None:
        if self.takes_page:
            return self.context(page.customer, page.user, page)
        return self.context(page.customer, page.user)


@dataclass(frozen=True)
class TimelineEntry:
    when: datetime
    kind: str  # e.g. "order", "edit", "stage_change", "alert", "interaction", "points"
    title: str
    detail: str = ""
    icon: str = "dot"  # a Bootstrap Icons name
    url: str = ""
    actor: str = ""


# A timeline provider is called as provider(customer=..., before=..., limit=...) and returns the
# customer's entries OLDER than `before` (the newest ones when None), at most `limit` of them, newest
# first, in one or two queries; "load more" passes the time of the last entry shown as `before`.
TimelineProvider = Callable[..., Iterable[TimelineEntry]]


@dataclass(frozen=True)
class MergeHook:
    """Moves an app's rows from `merged` to `survivor` when two customers are merged.

    `move(survivor, merged) -> dict` performs the move inside the merge transaction and returns
    JSON-safe undo information (typically the ids of the rows it moved); `undo(survivor, merged,
    info)` moves exactly those rows back. Both run in the tenant's schema within a transaction.
    """

    key: str
    move: Callable[[Any, Any], dict]
    undo: Callable[[Any, Any, dict], None]


@dataclass(frozen=True)
class RowAction:
    """A button on each row of the customer list, so the list template knows no other app.

    `url(customer)` builds the link; with `dialog` the link loads its page into the shared htmx
    dialog (templates/components/dialog.html) and falls back to a normal page without JavaScript;
    `roles` (empty: every role) limits who sees it. `icon` is a Bootstrap Icons name.
    """

    key: str
    label: str | Promise
    url: Callable[[Any], str]
    icon: str = "dot"
    roles: tuple[str, ...] = ()
    dialog: bool = True
    order: int = 100


@dataclass(frozen=True)
class BulkAction:
    """A button in the customer list's bulk bar. It posts the selected ids (`ids`, plus `next`, the
    list's URL) to `url_name`, which belongs to the registering app: that view checks the role again,
    asks for what it needs (a due date...) and acts on the customers the user can see. `roles` limits
    who is offered the button."""

    key: str
    label: str | Promise
    url_name: str
    icon: str = "lightning"
    roles: tuple[str, ...] = ("admin", "manager", "sales")
    order: int = 100


@dataclass(frozen=True)
class PersonalDataProvider:
    """What an app holds about one person, for personal-data requests (PIPL / GDPR;
    `customers.privacy.services`).

    `export(customer)` returns JSON-safe data (a dict or a list of dicts) with everything the app
    keeps about the customer; `erase(customer, actor)` removes the person's identity from the app's
    rows inside the erasure transaction (anonymise or delete; keep what the books need, e.g. order
    amounts) and returns a JSON-safe summary of what it did (counts, never the erased values). It
    runs before the customer record itself is anonymised, so the customer's fields are still there.
    """

    key: str
    label: str | Promise
    export: Callable[[Any], Any]
    erase: Callable[[Any, Any], dict]
    order: int = 100


@dataclass(frozen=True)
class PurgeHook:
    """Runs when customers are deleted for good (the bin's purge, `customers_purge_expired`).

    `before_purge(customer_ids)` runs inside the purge transaction before the customers' rows go (the
    app's rows go with them by CASCADE), so it can still read them; it returns a callable to run after
    the transaction commits (e.g. delete the app's files from the tenant's storage), or None. Files are
    deleted only after the commit: a rolled-back purge keeps them.
    """

    key: str
    before_purge: Callable[[list[int]], Callable[[], None] | None]


@dataclass
class CustomerRegistry:
    list_filters: dict[str, ListFilter] = field(default_factory=dict)
    list_columns: dict[str, ListColumn] = field(default_factory=dict)
    detail_panels: dict[str, DetailPanel] = field(default_factory=dict)
    timeline_providers: dict[str, TimelineProvider] = field(default_factory=dict)
    merge_hooks: dict[str, MergeHook] = field(default_factory=dict)
    row_actions: dict[str, RowAction] = field(default_factory=dict)
    bulk_actions: dict[str, BulkAction] = field(default_factory=dict)
    personal_data: dict[str, PersonalDataProvider] = field(default_factory=dict)
    purge_hooks: dict[str, PurgeHook] = field(default_factory=dict)

    def add_list_filter(self, item: ListFilter) -> None:
        self.list_filters[item.key] = item

    def add_list_column(self, item: ListColumn) -> None:
        self.list_columns[item.key] = item

    def add_detail_panel(self, item: DetailPanel) -> None:
        self.detail_panels[item.key] = item

    def add_timeline_provider(self, key: str, provider: TimelineProvider) -> None:
        self.timeline_providers[key] = provider

    def add_merge_hook(self, item: MergeHook) -> None:
        self.merge_hooks[item.key] = item

    def add_row_action(self, item: RowAction) -> None:
        self.row_actions[item.key] = item

    def row_actions_for(self, user) -> list[RowAction]:
        """The row actions `user` may use, in order."""
        role = getattr(user, "role", None)
        allowed = [a for a in self.row_actions.values() if not a.roles or role in a.roles]
        return sorted(allowed, key=lambda a: (a.order, a.key))

    def add_bulk_action(self, item: BulkAction) -> None:
        self.bulk_actions[item.key] = item

    def sorted_bulk_actions(self) -> list[BulkAction]:
        return sorted(self.bulk_actions.values(), key=lambda a: (a.order, a.key))

    def add_purge_hook(self, item: PurgeHook) -> None:
        self.purge_hooks[item.key] = item

    def add_personal_data(self, item: PersonalDataProvider) -> None:
        self.personal_data[item.key] = item

    def sorted_personal_data(self) -> list[PersonalDataProvider]:
        return sorted(self.personal_data.values(), key=lambda p: (p.order, p.key))

    def sorted_filters(self) -> list[ListFilter]:
        return sorted(self.list_filters.values(), key=lambda f: (f.order, f.key))

    def sorted_columns(self) -> list[ListColumn]:
        return sorted(self.list_columns.values(), key=lambda c: (c.order, c.key))

    def sorted_panels(self) -> list[DetailPanel]:
        return sorted(self.detail_panels.values(), key=lambda p: (p.order, p.key))


registry = CustomerRegistry()
