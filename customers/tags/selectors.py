"""Reading tags for the management page and the recycle bin."""

from django.db.models import Count, QuerySet
from django.http import Http404

from customers.models import Tag


def tag_list_with_counts(*, search: str = "") -> QuerySet[Tag]:
    """Live tags with the number of live customers carrying each, in one query (LEFT JOIN + GROUP BY)."""
    qs = Tag.objects.live()
    if search:
        qs = qs.filter(name__icontains=search[:60])
    return qs.annotate(customer_count=_live_customer_count()).order_by("name", "pk")


def tag_bin_list() -> QuerySet[Tag]:
    """Tags in the recycle bin, newest first, with who binned them and how many customers they keep."""
    return (
        Tag.objects.filter(deleted_at__isnull=False)
        .select_related("deleted_by")
        .annotate(customer_count=_live_customer_count())
        .order_by("-deleted_at", "-pk")
    )


def _live_customer_count():
    from django.db.models import Q

    return Count("customers", filter=Q(customers__deleted_at__isnull=True))


def tag_get(*, tag_id, binned: bool | None = False) -> Tag:
    """A live tag (binned=True: one in the bin; None: either); Http404 for anything else. The page's role
    check comes first (managers and admins), so there is no per-user visibility to apply here."""
    qs = Tag.objects.all() if binned is None else Tag.objects.filter(deleted_at__isnull=not binned)
    try:
        return qs.get(pk=int(tag_id))
    except (Tag.DoesNotExist, TypeError, ValueError):
        raise Http404 from None
