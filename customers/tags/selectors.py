"""Reading tags for the management page and the recycle bin."""

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404

from customers.models import Customer, Tag


def tag_search(*, search: str = "") -> QuerySet[Tag]:
    """Live tags by name (what the paginator counts: no join)."""
    qs = Tag.objects.live()
    if search:
        qs = qs.filter(name__icontains=search[:60])
    return qs.order_by("name", "pk")


def tag_list_with_counts(*, search: str = "") -> QuerySet[Tag]:
    """Live tags with the number of live customers carrying each, in one query (see
    `with_customer_counts`): only the tags of the page are counted."""
    return with_customer_counts(tag_search(search=search))


def tag_bin_list() -> QuerySet[Tag]:
    """Tags in the recycle bin, newest first, with who binned them and how many customers they keep."""
    return with_customer_counts(
        Tag.objects.filter(deleted_at__isnull=False)
        .select_related("deleted_by")
        .order_by("-deleted_at", "-pk")
    )


def with_customer_counts(qs: QuerySet[Tag]) -> QuerySet[Tag]:
    """Annotate `customer_count`: the tag's links (an index-only count on the link table's tag index)
    minus the links of binned customers (few; found through the customers' deleted_at), so no link
    is joined to its customer row."""
    through = Customer.tags.through.objects

    def counted(links):
        return Coalesce(Subquery(links.order_by().values("tag_id").annotate(n=Count("*")).values("n")), 0)

    binned = Customer.objects.filter(deleted_at__isnull=False).values("pk")
    return qs.annotate(
        customer_count=counted(through.filter(tag_id=OuterRef("pk")))
        - counted(through.filter(tag_id=OuterRef("pk"), customer_id__in=binned))
    )


def tag_get(*, tag_id, binned: bool | None = False) -> Tag:
    """A live tag (binned=True: one in the bin; None: either); Http404 for anything else. The page's role
    check comes first (managers and admins), so there is no per-user visibility to apply here."""
    qs = Tag.objects.all() if binned is None else Tag.objects.filter(deleted_at__isnull=not binned)
    try:
        return qs.get(pk=int(tag_id))
    except (Tag.DoesNotExist, TypeError, ValueError):
        raise Http404 from None
