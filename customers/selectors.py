"""Reads of customer data, always through the user's visibility scope.

The customer list is built for 100,000 customers: filters use indexed columns (the trigram GIN index
on `search_text`, the JSONB GIN index for custom fields), pages are fetched by keyset (the cursor is the
sort value plus the id of the last row) instead of OFFSET, and the total is an estimate
(`pg_class.reltuples`) or an exact count capped at COUNT_CAP, never a full COUNT(*) of a big result.
"""

import base64
import binascii
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from django.contrib.postgres.expressions import ArraySubquery
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    ExpressionWrapper,
    F,
    Prefetch,
    Q,
    QuerySet,
    Sum,
    prefetch_related_objects,
)
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.accounts.models import User
from crm.accounts.permissions import MANAGERS, user_has_role, visible_to
from crm.audit.labels import choice_label
from crm.audit.models import AuditEvent
from crm.expressions import InArray
from crm.numbers import parse_decimal, parse_id

from .labels import action_title, field_label
from .models import Customer, CustomFieldDefinition, Order, Refund, SecondaryContact, Tag
from .phone import try_normalise_phone
from .registry import TimelineEntry, registry
from .search import normalise_query
from .search_index import (
    SEARCH_COLUMNS,
    han_grams_contain,
    inner_han_contain,
    is_short_han,
    served_by_an_index,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
COUNT_CAP = 10_000
# A list the planner expects to hold more customers than this shows its estimate, uncounted.
ESTIMATE_FROM = COUNT_CAP
# A cursor is a short base64 JSON pair; anything longer is not one of ours.
MAX_CURSOR_LENGTH = 1000
# A page of a search too big to count walks the sort's index across this many live customers first
# (`customer_page(bounded_walk=)`); then, if it found some matches there, once more across as many as
# their density says the page still needs (twice that, at most MAX_WALK in all); then it reads the
# rest of its matches through the search's index.
WALK_BOUND = 5_000
MAX_WALK = 20 * WALK_BOUND
# A one-character Chinese search sorted by name is read in two parts (`customer_page(han_prefix=)`)
# when the planner expects at most this many of its matches, or a tenth of them, not to begin with
# the character.
HAN_PREFIX_REST = 5_000


# --- access helpers --------------------------------------------------------------------------------


def customer_get_for_user(*, user: User, customer_id: Any, include_deleted: bool = False) -> Customer:
    """One customer the user may see; Http404 alike for missing, forbidden and (by default) binned."""
    qs = Customer.objects.select_related("owner", "deleted_by")
    if not include_deleted:
        qs = qs.filter(deleted_at__isnull=True)
    try:
        return visible_to(qs, user).get(pk=int(customer_id))
    except (Customer.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def customer_visible(user: User, pk: Any) -> Customer:
    """`role_required(visible=...)` for a route on one customer: Http404 when the user may not see it."""
    return customer_get_for_user(user=user, customer_id=pk)


def customer_get_in_bin_for_user(*, user: User, customer_id: Any) -> Customer:
    try:
        return bin_list(user=user).get(pk=int(customer_id))
    except (Customer.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def order_get_for_user(*, user: User, order_id: Any) -> Order:
    try:
        return visible_to(
            Order.objects.select_related("customer").filter(customer__deleted_at__isnull=True), user
        ).get(pk=int(order_id))
    except (Order.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


# --- the list --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortOption:
    key: str
    label: Any
    path: str  # ORM path used in ORDER BY and in keyset comparisons
    nullable: bool = False


CORE_SORTS = {
    "name": SortOption("name", _("Name"), "name"),
    "created": SortOption("created", _("Created"), "created_at"),
    "last_order": SortOption("last_order", _("Last purchase"), "last_order_at", nullable=True),
    "total_spent": SortOption("total_spent", _("Total spent"), "total_spent"),
    "orders": SortOption("orders", _("Orders"), "orders_count"),
}
DEFAULT_SORT = "-created"


def sort_options() -> dict[str, SortOption]:
    """Core sorts plus every registered column that names a sort_field (nullable: it may be missing)."""
    options = dict(CORE_SORTS)
    for column in registry.sorted_columns():
        if column.sort_field and column.key not in options:
            options[column.key] = SortOption(column.key, column.label, column.sort_field, nullable=True)
    return options


def parse_sort(value: str | None) -> tuple[SortOption, bool]:
    """'-total_spent' -> (option, descending). Unknown values fall back to newest first."""
    value = (value or "").strip()
    descending = value.startswith("-")
    option = sort_options().get(value.lstrip("-"))
    if option is None:
        return CORE_SORTS["created"], True
    return option, descending


def _apply_custom_field_filter(qs: QuerySet, definition: CustomFieldDefinition, value: Any) -> QuerySet:
    key = definition.key
    kind = definition.field_type
    path = f"custom_fields__{key}"
    if kind == CustomFieldDefinition.FieldType.TEXT:
        return qs.filter(**{f"{path}__icontains": str(value)})
    if kind in (CustomFieldDefinition.FieldType.NUMBER, CustomFieldDefinition.FieldType.DATE):
        low, high = value if isinstance(value, list | tuple) else (value, value)
        if isinstance(low, date):
            low = low.isoformat()
        if isinstance(high, date):
            high = high.isoformat()
        if isinstance(low, Decimal):
            low = float(low)
        if isinstance(high, Decimal):
            high = float(high)
        if low not in (None, ""):
            qs = qs.filter(**{f"{path}__gte": low})
        if high not in (None, ""):
            qs = qs.filter(**{f"{path}__lte": high})
        return qs
    if kind == CustomFieldDefinition.FieldType.CHOICE:
        return qs.filter(custom_fields__contains={key: str(value)})
    if kind == CustomFieldDefinition.FieldType.MULTI_CHOICE:
        return qs.filter(custom_fields__contains={key: [str(value)]})
    if kind == CustomFieldDefinition.FieldType.BOOLEAN:
        if value:
            return qs.filter(custom_fields__contains={key: True})
        return qs.exclude(custom_fields__contains={key: True})
    return qs


def _is_blank(value: Any) -> bool:
    if value is None or value == "" or value == [] or value == ():
        return True
    return isinstance(value, list | tuple) and all(v in (None, "") for v in value)


def customer_search(qs: QuerySet[Customer], query: str) -> QuerySet[Customer]:
    """Substring search on search_text, plus an exact E.164 / email match and merged-in contacts.

    Every arm of the OR is served by an index, so PostgreSQL combines them in one BitmapOr and reads
    only the matching rows (EXPLAIN plans at 100,000 customers: docs/search-plans.md):
      - search_text LIKE '%needle%': the trigram GIN index; a needle of one or two Han characters (a
        surname, a given name) has no trigram and goes to the Han grams index instead, which gives
        the same rows (customers.search_index);
      - secondary contacts: `id = ANY(ARRAY(...))`, evaluated once, on the primary key. (A plain
        `id IN (subquery)` inside the OR made PostgreSQL test every customer row against it.)
      - phone = E.164 and email = address: their btree indexes.
    """
    needle = normalise_query(query)
    if not needle:
        return qs
    if is_short_han(needle):
        # The grams alone: PostgreSQL takes the rows from the index without re-testing them. (With a
        # LIKE beside it in the same arm, the whole OR became a filter run on every candidate row,
        # and the grams expression, five regular expressions, cost 100 ms on a surname's 9,500 rows.)
        condition = Q(han_grams_contain(needle))
    else:
        condition = Q(search_text__contains=needle)
    condition |= _merged_in(needle)
    phone = try_normalise_phone(query)
    if phone:
        condition |= Q(phone=phone)
    if "@" in query:
        condition |= Q(email=query.strip().lower())
    return qs.filter(condition)


def _merged_in(needle: str) -> Q:
    """The customers with a merged-in contact that contains `needle` (`id = ANY(ARRAY(...))`)."""
    merged_in = (
        SecondaryContact.objects.filter(search_value__contains=needle).order_by().values("customer_id")
    )
    return Q(InArray("pk", ArraySubquery(merged_in)))


def customer_list(*, user: User, filters: Mapping[str, Any] | None = None) -> QuerySet[Customer]:
    """The customers `user` may see, not in the bin, narrowed by `filters`.

    `filters` keys (all optional; blank values are ignored):
      q: search text; owner: a User or "none" (unassigned); tag: a Tag; source: a Source value;
      city: exact city; email_consent / sms_consent: True or False;
      orders_min: at least this many purchases (the customer's order count);
      created_from: a date; customers created on or after its start in the current time zone;
      custom_fields: {key: value} where value is a str (text contains; choice / multi choice equals),
        a (min, max) pair (number, date; either may be None) or True/False (yes/no);
      sort: e.g. "-total_spent" (applied by customer_page, accepted here for convenience);
      and any key of a filter registered in customers.registry (its `apply` is called).
    """
    filters = filters or {}
    live = Customer.objects.filter(deleted_at__isnull=True)
    qs = visible_to(live, user)
    if filters.get("q"):
        qs = customer_search(qs, str(filters["q"]))
    owner = filters.get("owner")
    if owner == "none":
        qs = qs.filter(owner__isnull=True)
    elif owner:
        qs = qs.filter(owner=owner)
    if filters.get("tag"):
        qs = qs.filter(tags=filters["tag"])
    if filters.get("source"):
        qs = qs.filter(source=filters["source"])
    if filters.get("city"):
        qs = qs.filter(city__iexact=str(filters["city"]).strip())
    for consent in ("email_consent", "sms_consent"):
        if filters.get(consent) is not None and filters.get(consent) != "":
            qs = qs.filter(**{consent: bool(filters[consent])})
    if not _is_blank(filters.get("orders_min")):
        qs = qs.filter(orders_count__gte=int(filters["orders_min"]))
    if not _is_blank(filters.get("created_from")):
        start = datetime.combine(filters["created_from"], time.min)
        qs = qs.filter(created_at__gte=timezone.make_aware(start))
    custom = {k: v for k, v in (filters.get("custom_fields") or {}).items() if not _is_blank(v)}
    if custom:
        definitions = {d.key: d for d in CustomFieldDefinition.objects.filter(key__in=list(custom))}
        for key, value in custom.items():
            if key in definitions:
                qs = _apply_custom_field_filter(qs, definitions[key], value)
    for item in registry.sorted_filters():
        value = filters.get(item.key)
        if not _is_blank(value) and value is not False:
            qs = item.apply(qs, value, user)
    return qs


def filters_are_empty(filters: Mapping[str, Any]) -> bool:
    ignored = {"sort", "columns", "cursor", "direction"}
    for key, value in filters.items():
        if key in ignored:
            continue
        if key == "custom_fields":
            if any(not _is_blank(v) for v in (value or {}).values()):
                return False
        elif not _is_blank(value) and value is not False:
            return False
    return True


# --- keyset pagination -----------------------------------------------------------------------------


def _encode_value(value: Any) -> list:
    if value is None:
        return ["n", None]
    if isinstance(value, datetime):
        return ["dt", value.isoformat()]
    if isinstance(value, date):
        return ["d", value.isoformat()]
    if isinstance(value, Decimal):
        return ["dec", str(value)]
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int | float):
        return ["num", value]
    return ["s", str(value)]


def _decode_value(tagged: list) -> Any:
    kind, raw = tagged
    if kind == "n":
        return None
    if kind == "dt":
        return datetime.fromisoformat(raw)
    if kind == "d":
        return date.fromisoformat(raw)
    if kind == "dec":
        return parse_decimal(raw, max_digits=30, thousands=False)
    if kind == "b":
        return bool(raw)
    if kind == "num":
        if not isinstance(raw, int | float) or isinstance(raw, bool) or not abs(raw) < 1e16:
            raise ValueError("bad number")  # also NaN and Infinity, which json.loads accepts
        return raw
    if kind == "s":
        return str(raw)
    raise ValueError("unknown cursor value")


def encode_cursor(value: Any, pk: int) -> str:
    payload = json.dumps([_encode_value(value), int(pk)], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[Any, int] | None:
    """(sort value, id) from a cursor string; None for a missing or malformed one (first page)."""
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        tagged, pk = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        pk = parse_id(pk)
        if pk is None:
            raise ValueError("bad id")
        return _decode_value(tagged), pk
    except (
        ValueError,
        TypeError,
        binascii.Error,
        InvalidOperation,
        UnicodeDecodeError,
        json.JSONDecodeError,
    ):
        return None


def _segments(option: SortOption) -> list[Q]:
    """The list in sort order is a concatenation of segments, each ordered by (sort value, id):
    for a nullable sort, rows with a value come first and rows without one (ordered by id) last.
    Querying segment by segment keeps every query a plain index range scan (no OR with IS NULL)."""
    if not option.nullable:
        return [Q()]
    return [Q(**{f"{option.path}__isnull": False}), Q(**{f"{option.path}__isnull": True})]


def _segment_index(option: SortOption, value: Any) -> int:
    return 1 if option.nullable and value is None else 0


def _position(path: str, value: Any, pk: int, *, descending: bool, in_null_segment: bool) -> Q:
    """Rows strictly after (value, pk) within one segment ordered by path, id in one direction."""
    cmp = "lt" if descending else "gt"
    if in_null_segment:
        return Q(**{f"pk__{cmp}": pk})
    # The leading "<=" / ">=" gives PostgreSQL an index range; the rest settles ties on the id.
    return Q(**{f"{path}__{cmp}e": value}) & (
        Q(**{f"{path}__{cmp}": value}) | Q(**{path: value, f"pk__{cmp}": pk})
    )


def _up_to(path: str, value: Any, pk: int, *, descending: bool, in_null_segment: bool) -> Q:
    """Rows up to and including (value, pk) within one segment ordered by path, id in one direction:
    what `_position` leaves out, spelled as a range an index can serve."""
    cmp = "gt" if descending else "lt"
    if in_null_segment:
        return Q(**{f"pk__{cmp}e": pk})
    return Q(**{f"{path}__{cmp}e": value}) & (
        Q(**{f"{path}__{cmp}": value}) | Q(**{path: value, f"pk__{cmp}e": pk})
    )


def _walk_bound(
    option: SortOption, segment: Q, after: Q | None, ordering: list, *, stretch: int, in_null_segment: bool
) -> tuple[Any, int] | None:
    """(value, pk) of the `stretch`-th live customer of the segment after `after`, in the page's
    order, whoever may see it; None when fewer are left. Read from the sort's own index (only the
    core sorts, columns of the customer table with an index, are bounded): a few ms."""
    qs = Customer.objects.filter(deleted_at__isnull=True).filter(segment)
    if after is not None:
        qs = qs.filter(after)
    found = list(
        qs.order_by(*ordering).values_list("pk" if in_null_segment else option.path, "pk")[
            stretch - 1 : stretch
        ]
    )
    return found[0] if found else None


def _bounded_walk(
    segment_qs: QuerySet,
    option: SortOption,
    segment: Q,
    after: Q | None,
    *,
    wanted: int,
    descending: bool,
    in_null_segment: bool,
) -> tuple[list, QuerySet | None]:
    """The rows a bounded walk finds (see `customer_page`), in order, at most `wanted`, and the
    segment's rows past its last bound when it stopped short (None when the walk reached the end of
    the segment or filled the page): the caller reads those from their matches."""
    path, rows, walked = option.path, [], 0  # two stretches at most: four queries
    ordering = _segment_order(path, descending=descending, in_null_segment=in_null_segment)
    stretch = WALK_BOUND
    for attempt in range(2):
        bound = _walk_bound(
            option, segment, after, ordering, stretch=stretch, in_null_segment=in_null_segment
        )
        stretch_qs = segment_qs if after is None else segment_qs.filter(after)
        if bound is None:  # the rest of the segment is shorter than the stretch: walk it all
            rows.extend(stretch_qs.order_by(*ordering)[: wanted - len(rows)])
            return rows, None
        found = list(
            stretch_qs.filter(
                _up_to(path, *bound, descending=descending, in_null_segment=in_null_segment)
            ).order_by(*ordering)[: wanted - len(rows)]
        )
        rows.extend(found)
        walked += stretch
        after = _position(path, *bound, descending=descending, in_null_segment=in_null_segment)
        if len(rows) >= wanted:
            return rows, None
        if not found or walked >= MAX_WALK or attempt:
            break
        # As many customers again as the matches found so far say the page still needs, twice over.
        stretch = min(MAX_WALK - walked, -(-2 * (wanted - len(rows)) * stretch // len(found)))
    return rows, segment_qs.filter(after)


def _han_prefix_rows(segment_qs: QuerySet, needle: str, *, descending: bool, wanted: int) -> list:
    """The first `wanted` rows of `segment_qs`, a one-Han-character search sorted by name, in order:
    the names that begin with `needle` walked along the name index from it (they lie side by side,
    `_names_in_code_point_order`, and every one matches), and the matches whose name does not begin
    with it, read through the index of the characters other than the name's first
    (`search_text_inner_han`, and the merged-in contacts) and sorted; the two merged here, by name
    and id as PostgreSQL orders them. Two queries, whatever the page."""
    ordering = _segment_order("name", descending=descending, in_null_segment=False)
    prefixed = segment_qs.filter(name__gte=needle, name__lt=chr(ord(needle) + 1)).order_by(*ordering)
    rest = segment_qs.filter(Q(inner_han_contain(needle)) | _merged_in(needle))
    sorted_rest = _segment_order("name", descending=descending, in_null_segment=False, matches_first=True)
    rest_ids = rest.order_by(*sorted_rest).values("pk")[:wanted]
    rest = rest.filter(InArray("pk", ArraySubquery(rest_ids))).order_by(*ordering)
    rows = {row.pk: row for row in [*prefixed[:wanted], *rest[:wanted]]}
    return sorted(rows.values(), key=lambda row: (row.name, row.pk), reverse=descending)[:wanted]


def _segment_order(
    path: str, *, descending: bool, in_null_segment: bool, matches_first: bool = False
) -> list:
    """ORDER BY for one segment. `matches_first`: the same order, spelled so that no index can give it.

    Every btree index returns rows ascending with NULLs last or descending with NULLs first (forwards
    or backwards), so "ascending, NULLs first" and "descending, NULLs last" can only come from a sort:
    PostgreSQL then reads the rows that match through the search's index and sorts them (top-N)
    instead of walking a sort index until a page has matched. The values ordered are never NULL (the
    NULL segment is ordered by id alone), so where the NULLs would go changes nothing."""
    keys = ["pk"] if in_null_segment else [path, "pk"]
    if matches_first:
        return [F(key).desc(nulls_last=True) if descending else F(key).asc(nulls_first=True) for key in keys]
    sign = "-" if descending else ""
    return [f"{sign}{key}" for key in keys]


@dataclass
class KeysetPage:
    rows: list
    next_cursor: str | None
    previous_cursor: str | None
    sort: str
    is_first: bool
    page_size: int = PAGE_SIZE
    extra: dict = field(default_factory=dict)

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_previous(self) -> bool:
        return self.previous_cursor is not None


def customer_page(
    qs: QuerySet[Customer],
    *,
    sort: str | None = None,
    cursor: str | None = None,
    direction: str = "next",
    page_size: int = PAGE_SIZE,
    columns: list[str] | None = None,
    last_rows: int | None = None,
    matches_first: bool = False,
    bounded_walk: bool = False,
    han_prefix: str | None = None,
    ordered: tuple | None = None,
) -> KeysetPage:
    """One page of `qs` by keyset: `cursor` is the last row of the previous page (direction "next") or
    the first row of the following page (direction "prev"). Rows come with owner and tags loaded, and
    with what the registered `columns` prepare, in a constant number of queries (one per segment
    touched, normally one, plus one for the tags).

    `matches_first` (see `page_reads_matches_first`): read every row of `qs` through its own indexes
    and sort them, rather than let PostgreSQL walk the sort's index and test each row until the page
    is full. The rows, their order and the cursors are the same either way.

    `bounded_walk` (see `page_walks_a_bounded_stretch`): let PostgreSQL walk the sort's index, but
    only across the next WALK_BOUND live customers in sort order, and once more across as many as
    the matches found there say the page still needs (see MAX_WALK); if the page is not full by
    then, the rest of it is read from the matches past that point, as `matches_first` reads them. A
    walk is quick when the matches lie evenly along the sort order and slow, unbounded, when they
    cluster far along it (a surname sorted by name passes every Latin name and every earlier one).

    `han_prefix` (see `page_han_prefix`): `qs` is a search for this one Han character; sorted by
    name, its page is read in two parts, the names that begin with it and the other matches
    (`_han_prefix_rows`). Other sorts ignore it.

    `ordered` (`TotalEstimate.ordered`, with `matches_first`): every match's id in this sort's order,
    as `customer_count` read them; the page's rows are then read by id."""
    option, descending = parse_sort(sort)
    sort_key = f"{'-' if descending else ''}{option.key}"
    path = option.path
    # direction "last": the final page, read backwards from the end of the order (no cursor needed).
    to_last = direction == "last"
    position = None if to_last else decode_cursor(cursor)
    backwards = (direction == "prev" and position is not None) or to_last
    for column in registry.sorted_columns():
        if column.key in (columns or []) or column.key == option.key:
            qs = column.prepare(qs)
    # The search columns are for finding, never shown: a page does not read them.
    qs = qs.select_related("owner").annotate(_sort_value=F(path)).defer("search_text", *SEARCH_COLUMNS)

    segments = _segments(option)
    order = list(range(len(segments)))
    start = (
        _segment_index(option, position[0]) if position is not None else (len(order) - 1 if to_last else 0)
    )
    # Walking forward visits segments start, start+1, ...; walking back start, start-1, ... reversed.
    visit = order[start:] if not backwards else list(reversed(order[: start + 1]))
    query_descending = descending != backwards
    # The last page holds what is left over (`last_rows`, from an exact total), so its rows and the
    # pages before it line up with the pages read forwards.
    size = min(last_rows, page_size) if to_last and last_rows else page_size
    wanted = size + 1
    rows: list[Customer] = []
    keys = None
    if ordered is not None and matches_first and option.key in CORE_SORTS:
        keys = _cut(ordered, position, backwards=backwards, wanted=wanted)
    if keys is not None:
        # The position's row comes along: where it stands in the list is where the cursor points
        # only while its value is still the cursor's (a row that moved since would repeat a page).
        at = [position[1]] if position is not None else []
        found = {row.pk: row for row in qs.filter(pk__in=keys + at)}
        mark = found.pop(position[1], None) if position is not None else None
        if position is None or (mark is not None and mark._sort_value == position[0]):
            rows = [found[pk] for pk in keys if pk in found]
            visit = []
    for index in visit:
        in_null = option.nullable and index == 1
        segment_qs = qs.filter(segments[index])
        after = None
        if position is not None and index == start:
            value, pk = position
            after = _position(path, value, pk, descending=query_descending, in_null_segment=in_null)
            segment_qs = segment_qs.filter(after)
        ordering = _segment_order(
            path, descending=query_descending, in_null_segment=in_null, matches_first=matches_first
        )
        if han_prefix and option.key == "name":
            rest = wanted - len(rows)
            rows.extend(_han_prefix_rows(segment_qs, han_prefix, descending=query_descending, wanted=rest))
            break
        read_matches_first = matches_first
        if bounded_walk and not matches_first and option.key in CORE_SORTS:
            walked, rest = _bounded_walk(
                qs.filter(segments[index]),
                option,
                segments[index],
                after,
                wanted=wanted - len(rows),
                descending=query_descending,
                in_null_segment=in_null,
            )
            rows.extend(walked)
            if rest is None:
                if len(rows) >= wanted:
                    break
                continue
            segment_qs, read_matches_first = rest, True
            ordering = _segment_order(
                path, descending=query_descending, in_null_segment=in_null, matches_first=True
            )
        limit = wanted - len(rows)
        if read_matches_first:
            # The page's ids first, sorted from the matches alone; the joins and annotations of the
            # columns then for those rows only (joined before the sort, the scores of every match
            # were read). One query: the ids are an InitPlan.
            page_ids = segment_qs.order_by(*ordering).values("pk")[:limit]
            segment_qs = segment_qs.filter(InArray("pk", ArraySubquery(page_ids)))
        rows.extend(segment_qs.order_by(*ordering)[:limit])
        if len(rows) >= wanted:
            break
    has_more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    prefetch_related_objects(rows, Prefetch("tags", queryset=Tag.objects.live().order_by("name")))
    if not rows:
        return KeysetPage([], None, None, sort_key, is_first=position is None, page_size=page_size)
    first, last = rows[0], rows[-1]
    if backwards:
        next_cursor = None if to_last else encode_cursor(last._sort_value, last.pk)
        previous_cursor = encode_cursor(first._sort_value, first.pk) if has_more else None
    else:
        next_cursor = encode_cursor(last._sort_value, last.pk) if has_more else None
        previous_cursor = encode_cursor(first._sort_value, first.pk) if position is not None else None
    return KeysetPage(
        rows, next_cursor, previous_cursor, sort_key, is_first=previous_cursor is None, page_size=page_size
    )


@dataclass(frozen=True)
class TotalEstimate:
    value: int
    exact: bool  # False: an estimate ("about"), or capped ("10,000+")
    capped: bool = False
    # Counted exactly for a page in a core sort (`customer_count(sort=)`): every match's id, in the
    # list's order. The page is cut from it (`customer_page(ordered=)`), not read again.
    ordered: tuple | None = field(default=None, compare=False, repr=False)


def customer_table_estimate() -> int:
    """PostgreSQL's own row estimate for the tenant's customer table (-1 if never analysed)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [Customer._meta.db_table]
        )
        row = cursor.fetchone()
    return int(row[0]) if row else -1


def search_estimate(qs: QuerySet[Customer]) -> int:
    """The planner's row estimate for `qs` (EXPLAIN, nothing is read)."""
    sql, params = qs.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def _list_order(option: SortOption, descending: bool) -> list:
    """ORDER BY for the whole list in one query, spelled so that no index can give it (PostgreSQL reads
    the matches through the search's index and sorts them): rows with a value first, by value (NULLs
    last), then the rows without one; the id settles ties, in the same direction."""
    has_no_value = ExpressionWrapper(Q(**{f"{option.path}__isnull": True}), output_field=BooleanField())
    value = F(option.path).desc(nulls_last=True) if descending else F(option.path).asc(nulls_last=True)
    return [has_no_value.asc(), value, F("pk").desc() if descending else F("pk").asc()]


def _cut(ordered: tuple, position: tuple[Any, int] | None, *, backwards: bool, wanted: int) -> list | None:
    """Up to `wanted` ids of `ordered` after the position's row (before it, nearest first, when
    `backwards`; the last ones when there is no position), as `customer_page` would read them. None
    when the position's row is not in the list (it no longer matches): the page is then read from
    the database."""
    if position is None:
        return list(reversed(ordered[-wanted:])) if backwards else list(ordered[:wanted])
    try:
        at = ordered.index(position[1])
    except ValueError:
        return None
    if backwards:
        return list(reversed(ordered[max(0, at - wanted) : at]))
    return list(ordered[at + 1 : at + 1 + wanted])


def customer_count(
    *, user: User, qs: QuerySet[Customer], filters: Mapping[str, Any], sort: str | None = None
) -> TotalEstimate:
    """A total for the list header in one query: the planner's estimate for a manager's unfiltered
    list of a large table, else an exact count capped at COUNT_CAP ("10,000+").

    Any other list the planner expects to hold more customers than ESTIMATE_FROM (the cap) is not
    counted either: its estimate is shown ("about 95,800"). Counting even up to the cap reads 10,001
    rows spread over the whole table (a surname at 1,000,000 customers: 0.9 s, 32,000 blocks; city
    上海 with e-mail consent: 227,000 rows read in 0.2-0.7 s; a sales rep's "qq.com" with e-mail
    consent, 14,500 matches: 90 ms). The estimates are close: search_text's 1,000-value histogram,
    the grams index's element frequencies, the columns' statistics and upper(city)'s own statistics
    object gave 0.84-1.17 times the true count for 18 searches and filters, as a manager and as a
    sales rep, at 1,000,000 customers (docs/search-plans.md). A sales rep's scope is estimated as
    what they own, as their shares are an array of a few ids (`visible_to`); the planner guessed
    half the table for the `IN (sub-query)` it replaced.

    `sort` (the page's, when it will read a search's matches first: `page_reads_matches_first`, a
    core sort): the count reads every match's id in the list's order instead (ids only: decoding
    8,400 timestamps cost more than the second read saved), `TotalEstimate.ordered`, and the page is
    cut from them. Counted and then read for the page, the
    matches were read twice through the same indexes: a sales rep's 王 + 上海 sorted by total spent
    at 1,000,000 customers ANDed three bitmaps (96,000, 121,000 and 300,000 rows) twice, 55 ms each.
    The sort needs every match before the first row: a search estimated under the cap that has many
    more matches sorts them all before it knows it is capped (the estimates were within a fifth).
    """
    if user_has_role(user, MANAGERS) and filters_are_empty(filters):
        estimate, threshold = customer_table_estimate(), COUNT_CAP
    else:
        estimate, threshold = search_estimate(qs), ESTIMATE_FROM
    if estimate > threshold:
        return TotalEstimate(estimate, exact=False)
    option, descending = parse_sort(sort)
    if sort is not None and _search_served(filters) and option.key in CORE_SORTS:
        keys = qs.order_by(*_list_order(option, descending)).values_list("pk", flat=True)
        ordered = tuple(keys[: COUNT_CAP + 1])
        if len(ordered) > COUNT_CAP:
            return TotalEstimate(COUNT_CAP, exact=False, capped=True)
        return TotalEstimate(len(ordered), exact=True, ordered=ordered)
    counted = qs.order_by()[: COUNT_CAP + 1].count()
    if counted > COUNT_CAP:
        return TotalEstimate(COUNT_CAP, exact=False, capped=True)
    return TotalEstimate(counted, exact=True)


def _search_served(filters: Mapping[str, Any]) -> bool:
    """Whether the list has a search that an index serves (trigrams, or the Han grams)."""
    needle = normalise_query(str(filters.get("q") or ""))
    return bool(needle) and served_by_an_index(needle)


def page_reads_matches_first(*, filters: Mapping[str, Any], total: TotalEstimate) -> bool:
    """Whether the list's page should read a search's matches first (`customer_page(matches_first=)`).

    Yes when an index serves the search and its matches were just counted exactly (at most
    COUNT_CAP): the page then costs about what the count cost, reading the same rows (now cached)
    through the search's index, whatever the sort. Left to the planner, a search plus a sort often
    walked the sort's index testing every row until 51 matched, which is quick only when the matches
    lie evenly along the sort order. Chinese names sort after every Latin one, so 王 sorted by name
    walked 6,245 rows at 10,000 customers (computing the grams on each), "qq.com" with e-mail consent
    1,696; the walk grows with the table, the matches-first read with the matches (plans:
    docs/search-plans.md). A search counted past the cap or only estimated keeps the planner's
    choice: it matches so many customers that reading them all would cost more than the walk. So does
    a search no index serves (one or two Latin letters, "li"): reading its matches is reading every
    customer."""
    return total.exact and _search_served(filters)


def page_walks_a_bounded_stretch(*, filters: Mapping[str, Any], total: TotalEstimate) -> bool:
    """Whether the list's page walks the sort's index only so far (`customer_page(bounded_walk=)`):
    for a search an index serves that was not counted exactly (estimated, or past the cap), the
    pages `page_reads_matches_first` leaves to the planner's walk. Its matches are many, so a walk
    usually fills a page within a few hundred rows; where they cluster far along the sort order the
    walk stops after WALK_BOUND rows and reads the rest through the search's index (王 sorted by name
    at 1,000,000 customers: the walk passed some 600,000 names first)."""
    return not total.exact and _search_served(filters)


@cache
def _names_in_code_point_order() -> bool:
    """Whether the database sorts text by code point (collation C, POSIX or C.UTF-8 of the C library),
    so that the names beginning with a character lie between it and the next one, and Python's order
    of two names is PostgreSQL's (`_han_prefix_rows`)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT datcollate, datlocprovider FROM pg_database WHERE datname = current_database()"
        )
        collation, provider = cursor.fetchone()
    return provider == "c" and collation in ("C", "POSIX", "C.UTF-8", "C.utf8")


def page_han_prefix(
    *, user: User, filters: Mapping[str, Any], total: TotalEstimate, sort: str | None
) -> str | None:
    """The Han character at which the list's page is read in two parts (`customer_page(han_prefix=)`),
    or None.

    For a search of one Han character sorted by name (ascending or descending) that was not counted
    exactly (counted, its matches are read first: `page_reads_matches_first`), when the planner
    expects at most HAN_PREFIX_REST of its matches, or a tenth, not to begin with the character: the
    matches it expects (`total`) less the names it expects to begin with it (one EXPLAIN; name has a
    1,000-value histogram for it: 94,132 estimated for 王's 95,930 at 1,000,000). A surname is the
    case: at 1,000,000 customers every one of 王's 96,000 matches begins with it, and sorted by name
    they lie after every Latin name and every name beginning with an earlier character; neither a
    walk of the name index (600,000 names before them) nor reading all the matches (96,000 rows
    spread over 70,000 blocks) is quick. A character of given names (明) is everywhere in the order:
    the bounded walk finds its matches."""
    needle = normalise_query(str(filters.get("q") or ""))
    option, _descending = parse_sort(sort)
    if total.exact or option.key != "name" or len(needle) != 1 or not is_short_han(needle):
        return None
    if not _names_in_code_point_order():
        return None
    unsearched = customer_list(user=user, filters={**filters, "q": ""})
    prefixed = search_estimate(unsearched.filter(name__gte=needle, name__lt=chr(ord(needle) + 1)))
    return needle if total.value - prefixed <= max(HAN_PREFIX_REST, total.value // 10) else None


# --- choices for forms -----------------------------------------------------------------------------


def assignable_users() -> QuerySet[User]:
    return User.objects.filter(is_active=True).order_by("full_name", "email")


def tag_list() -> QuerySet[Tag]:
    """Tags offered by pickers and filters: not the ones in the recycle bin."""
    return Tag.objects.live().order_by("name")


def custom_field_list(*, active_only: bool = True) -> QuerySet[CustomFieldDefinition]:
    qs = CustomFieldDefinition.objects.all()
    return qs.filter(is_active=True) if active_only else qs


def custom_field_get(*, definition_id: Any) -> CustomFieldDefinition:
    try:
        return CustomFieldDefinition.objects.get(pk=int(definition_id))
    except (CustomFieldDefinition.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


# --- duplicates while typing ----------------------------------------------------------------------


@dataclass(frozen=True)
class ExistingMatch:
    field: str  # "email" or "phone"
    customer: Customer | None  # set only when the user may see it


def customer_find_existing(
    *, user: User, email: str = "", phone: str = "", exclude_id: int | None = None
) -> list[ExistingMatch]:
    """Customers (in any scope, bin excluded) that already have this email or phone. A customer the
    user may not see is reported without any detail, so the check reveals only that one exists."""
    matches: list[ExistingMatch] = []
    checks = []
    email = (email or "").strip().lower()
    if email and "@" in email:
        checks.append(("email", Q(email=email)))
    phone_e164 = try_normalise_phone(phone) if phone else ""
    if phone_e164:
        checks.append(("phone", Q(phone=phone_e164)))
    for field_name, condition in checks:
        qs = Customer.objects.filter(condition, deleted_at__isnull=True)
        if exclude_id:
            qs = qs.exclude(pk=exclude_id)
        visible = visible_to(qs, user).order_by("pk").first()
        if visible is not None:
            matches.append(ExistingMatch(field_name, visible))
        elif qs.exists():
            matches.append(ExistingMatch(field_name, None))
    return matches


# --- the 360° page ---------------------------------------------------------------------------------


def customer_order_count(*, customer: Customer) -> int:
    """Every order of the customer, whatever its status (the Orders tab's badge; `orders_count` on
    the customer counts purchases only)."""
    return Order.objects.filter(customer=customer).count()


def customer_orders(*, customer: Customer, page: Any = 1, per_page: int = 10):
    """The customer's orders, newest first, with lines and refunds, as a Django Page."""
    qs = (
        Order.objects.filter(customer=customer)
        .prefetch_related("lines", Prefetch("refunds", queryset=Refund.objects.order_by("refunded_at")))
        .order_by("-placed_at", "-id")
    )
    return Paginator(qs, per_page).get_page(page)


@dataclass(frozen=True)
class HistoryChange:
    field: str
    label: str
    old: Any
    new: Any


@dataclass(frozen=True)
class HistoryEntry:
    when: datetime
    actor: str
    action: str
    action_label: str
    changes: list[HistoryChange]


def customer_audit_events(*, customer: Customer) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(target_type=Customer._meta.label_lower, target_id=str(customer.pk))


CUSTOMER_LABEL = "customers.customer"


def customer_history(
    *, customer: Customer, limit: int = 100, definitions: Iterable[CustomFieldDefinition] | None = None
) -> list[HistoryEntry]:
    """The customer's audit records, newest first: who, when, and each field's old and new value.
    `definitions`: every custom field definition, when the caller has read them already (the 360
    page reads them once for the profile card and the history)."""
    if definitions is None:
        definitions = CustomFieldDefinition.objects.all()
    definitions = {d.key: d for d in definitions}
    entries = []
    for event in customer_audit_events(customer=customer).order_by("-created_at", "-id")[:limit]:
        changes = []
        if isinstance(event.changes, dict):
            for name, change in sorted(event.changes.items()):
                if isinstance(change, dict) and ("old" in change or "new" in change):
                    old, new = change.get("old"), change.get("new")
                    changes.append(
                        HistoryChange(
                            name,
                            field_label(name, definitions),
                            # A choice by its name ("zh-hans" -> "Simplified Chinese"), as the form shows it.
                            choice_label(CUSTOMER_LABEL, name, old) or old,
                            choice_label(CUSTOMER_LABEL, name, new) or new,
                        )
                    )
        label = action_title(event.action)[0]
        entries.append(HistoryEntry(event.created_at, event.actor_label, event.action, label, changes))
    return entries


def customer_timeline(
    *, customer: Customer, user: User, before: datetime | None = None, limit: int = 20
) -> tuple[list[TimelineEntry], datetime | None]:
    """Entries from every registered provider, merged newest first. Returns (entries, cursor for the
    next "load more": the time of the last entry, or None when there is no more)."""
    collected: list[TimelineEntry] = []
    for key, provider in registry.timeline_providers.items():
        try:
            collected.extend(provider(customer=customer, before=before, limit=limit + 1))
        except Exception:  # one app's broken provider must not take the customer page down
            logger.exception("Timeline provider %s failed for customer %s", key, customer.pk)
    if before is not None:
        collected = [e for e in collected if e.when < before]
    collected.sort(key=lambda e: e.when, reverse=True)
    page = collected[:limit]
    more = len(collected) > limit
    return page, (page[-1].when if page and more else None)


# --- recycle bin -----------------------------------------------------------------------------------


def bin_list(*, user: User) -> QuerySet[Customer]:
    """Customers in the recycle bin: managers and admins see all; sales see the ones they own."""
    qs = Customer.objects.filter(deleted_at__isnull=False).select_related("owner", "deleted_by")
    if not user_has_role(user, MANAGERS):  # every other role is sales (Role has three)
        qs = qs.filter(owner=user)
    return qs.order_by("-deleted_at", "-id")


# --- figures for the start page (dashboards) ------------------------------------------------------
# Period figures aggregate orders with the `placed_at` / `(customer, placed_at)` indexes; per-customer
# figures read the stored order figures on Customer, so the page stays quick at a million orders. The
# start page keeps what these give in the reports' cache (dashboards.reports, "home").

PURCHASE_STATUSES = [str(s) for s in Order.PURCHASE_STATUSES]


@dataclass(frozen=True)
class PeriodFigures:
    revenue: Decimal
    orders: int
    customers: int

    @property
    def average_order_value(self) -> Decimal | None:
        return (self.revenue / self.orders).quantize(Decimal("0.01")) if self.orders else None


def _orders_for(user: User) -> QuerySet[Order]:
    """Orders the user may see, of customers not in the bin: their few ids left out (as
    `purchase_orders` does), not every order joined to its customer (at 1,000,000 customers that join
    read the whole customer table on every start page: 1.1 s for 30 days of orders, 4.8 s for 12 months)."""
    return visible_to(Order.objects.exclude(customer_id__in=binned_customer_ids()), user)


def period_figures(*, user: User, start: datetime, end: datetime) -> PeriodFigures:
    return periods_figures(user=user, windows=[(start, end)])[0]


def periods_figures(*, user: User, windows: list[tuple[datetime, datetime]]) -> list[PeriodFigures]:
    """`PeriodFigures` of each [start, end) window, in one pass over the purchases of them all."""
    either = Q()
    aggregates: dict[str, Any] = {}
    for i, (start, end) in enumerate(windows):
        inside = Q(placed_at__gte=start, placed_at__lt=end)
        either |= inside
        aggregates |= {
            f"total{i}": Sum("total", filter=inside),
            f"refunded{i}": Sum("refunded_total", filter=inside),
            f"orders{i}": Count("id", filter=inside),
            f"customers{i}": Count("customer_id", distinct=True, filter=inside),
        }
    row = _orders_for(user).filter(either, status__in=PURCHASE_STATUSES).aggregate(**aggregates)
    return [
        PeriodFigures(
            revenue=(row[f"total{i}"] or Decimal("0")) - (row[f"refunded{i}"] or Decimal("0")),
            orders=row[f"orders{i}"],
            customers=row[f"customers{i}"],
        )
        for i in range(len(windows))
    ]


def customer_figures(*, user: User) -> dict:
    customers = visible_to(Customer.objects.filter(deleted_at__isnull=True), user)
    month_start = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    # Two reads, each answered from an index of the live customers: the buying figures from
    # customer_live_orders_idx (orders_count, id) alone, the month's new customers from a range of
    # customer_live_created_idx. One aggregate of all four read every row of the table instead (at
    # 1,000,000 customers a sequential scan of 840 MB, docs/explain-1m.md).
    row = customers.aggregate(
        total=Count("id"),
        buyers=Count("id", filter=Q(orders_count__gte=1)),
        repeat_buyers=Count("id", filter=Q(orders_count__gte=2)),
    )
    row["new_this_month"] = customers.filter(created_at__gte=month_start).count()
    row["repeat_rate"] = round(row["repeat_buyers"] / row["buyers"] * 100, 1) if row["buyers"] else None
    # The customer list behind each figure (the same conditions through the list's filters).
    base = reverse("customers:list")
    row["links"] = {
        "total": base,
        "buyers": f"{base}?orders_min=1",
        "repeat_buyers": f"{base}?orders_min=2",
        "new_this_month": f"{base}?created_from={month_start.date().isoformat()}",
    }
    return row


def monthly_revenue(*, user: User, months: int = 12) -> list[dict]:
    """Net revenue and purchases of each of the last `months` calendar months in the current time zone
    (this month included), months without purchases left out. Each purchase's month is found by a
    binary search among the months' first instants (width_bucket, as the reports' cohorts do), not by
    converting every timestamp to local time and truncating it."""
    now = timezone.localtime()
    this_month = now.date().replace(day=1)
    firsts = [this_month]
    while len(firsts) < months:
        firsts.insert(0, (firsts[0] - timedelta(days=1)).replace(day=1))
    following = (this_month + timedelta(days=31)).replace(day=1)
    bounds = [datetime.combine(day, time.min, tzinfo=now.tzinfo) for day in [*firsts, following]]
    inner, params = (
        _orders_for(user)
        .filter(placed_at__gte=bounds[0], placed_at__lt=bounds[-1], status__in=PURCHASE_STATUSES)
        .order_by()
        .values("placed_at", "total", "refunded_total")
        .query.sql_with_params()
    )
    sql = f"""
        SELECT width_bucket(o.placed_at, %s::timestamptz[]) AS m, sum(o.total - o.refunded_total), count(*)
        FROM ({inner}) AS o GROUP BY 1 ORDER BY 1
    """  # noqa: S608 - the inner statement is the ORM's, every value is a parameter
    with connection.cursor() as cursor:
        cursor.execute(sql, (bounds, *params))
        rows = cursor.fetchall()
    return [
        {"month": firsts[m - 1].strftime("%Y-%m"), "revenue": float(net or 0), "orders": orders}
        for m, net, orders in rows
        if 1 <= m <= months
    ]


# --------------------------------------------------------------------------------------------------
# For the dashboards: the scopes every figure starts from (dashboards never import our models)
# --------------------------------------------------------------------------------------------------
def purchase_orders(*, user: User) -> QuerySet[Order]:
    """Purchases (paid or partly refunded) the user may see, of customers not in the bin.

    The binned customers are few and indexed (customer_deleted_idx): leaving their ids out costs a
    report over a million orders far less than joining every customer to read `deleted_at`."""
    orders = Order.objects.filter(status__in=PURCHASE_STATUSES).exclude(customer_id__in=binned_customer_ids())
    return visible_to(orders, user)


def binned_customer_ids() -> QuerySet[Customer]:
    """The ids of the customers in the bin, for leaving them out of a table that refers to customers
    (`customer_id NOT IN (...)`, read from customer_deleted_idx) instead of joining every customer."""
    return Customer.objects.filter(deleted_at__isnull=False).values("pk")


def customer_scope(*, user: User) -> QuerySet[Customer]:
    """The customers the user may see, not in the bin (no other filter)."""
    return visible_to(Customer.objects.filter(deleted_at__isnull=True), user)


def figure_choices() -> dict[str, list[tuple[str, str]]]:
    """The customer sources and order channels the dashboards filter by, with their labels."""
    return {
        "sources": [(str(v), str(label)) for v, label in Customer.Source.choices],
        "channels": [(str(v), str(label)) for v, label in Order.Channel.choices],
    }
