"""What a dashboard counts: the user's visible customers and purchases, narrowed by the page's filters
(owner, source, channel, RFM segment, lifecycle stage, loyalty tier). Every figure and every drill-down
list starts from these two querysets, so a figure and the list behind it can never disagree on who is
counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from crm.accounts.models import User
from crm.numbers import parse_id
from customers.selectors import assignable_users, customer_scope, figure_choices, purchase_orders
from loyalty.selectors import tier_choices, tier_member_customers
from segmentation.selectors import segment_labels

FILTER_KEYS = ("owner", "source", "channel", "segment", "stage", "tier")


@dataclass(frozen=True)
class Filters:
    owner: int | None = None
    source: str = ""
    channel: str = ""
    segment: str = ""
    stage: str = ""
    tier: int | None = None  # a loyalty tier: its members

    def as_params(self) -> dict[str, str]:
        values = {key: getattr(self, key) for key in FILTER_KEYS}
        return {key: str(value) for key, value in values.items() if value not in (None, "")}

    @classmethod
    def from_params(cls, params: dict) -> Filters:
        """The filters back from `as_params()` (as a background refresh gets them): checked when the
        page parsed them, and the scope's querysets apply the user's visibility whatever they hold."""
        owner, tier = params.get("owner"), params.get("tier")
        return cls(
            owner=int(owner) if owner else None,
            tier=int(tier) if tier else None,
            **{key: str(params.get(key) or "") for key in ("source", "channel", "segment", "stage")},
        )

    @property
    def active(self) -> bool:
        return bool(self.as_params())


def filter_options(user: User) -> dict:
    choices = figure_choices()
    labels = segment_labels()
    owners = (
        list(assignable_users().values_list("pk", "full_name", "email")) if user.sees_all_customers else []
    )
    return {
        "owners": [(pk, name or email) for pk, name, email in owners],
        "sources": choices["sources"],
        "channels": choices["channels"],
        "segments": labels["segments"],
        "stages": labels["stages"],
        "tiers": tier_choices(),
    }


def parse_filters(params, user: User) -> Filters:
    """Only known values are kept: anything else is ignored (as if the filter were not set)."""
    options = filter_options(user)

    def pick(key: str, choices) -> str:
        value = str(params.get(key) or "")[:40]
        return value if value in {str(v) for v, _label in choices} else ""

    owner = parse_id(params.get("owner"))  # only managers are offered owners: a sales user's is ignored
    if owner is not None and owner not in {pk for pk, _name in options["owners"]}:
        owner = None
    tier = parse_id(params.get("tier"))
    if tier is not None and tier not in {pk for pk, _name in options["tiers"]}:
        tier = None
    return Filters(
        owner=owner,
        tier=tier,
        source=pick("source", options["sources"]),
        channel=pick("channel", options["channels"]),
        segment=pick("segment", options["segments"]),
        stage=pick("stage", options["stages"]),
    )


@dataclass(frozen=True)
class Scope:
    user: User
    filters: Filters

    @property
    def zone(self):
        return timezone.get_current_timezone()

    def orders(self) -> QuerySet:
        """Purchases counted by money figures: the channel filter applies to the order itself."""
        qs = purchase_orders(user=self.user)
        f = self.filters
        if f.owner:
            qs = qs.filter(customer__owner_id=f.owner)
        if f.source:
            qs = qs.filter(customer__source=f.source)
        if f.channel:
            qs = qs.filter(channel=f.channel)
        if f.segment:
            qs = qs.filter(customer__score__rfm_segment=f.segment)
        if f.stage:
            qs = qs.filter(customer__score__lifecycle_stage=f.stage)
        if f.tier:
            qs = qs.filter(customer_id__in=tier_member_customers(tier_id=f.tier))
        return qs

    def orders_between(self, start: datetime, end: datetime) -> QuerySet:
        return self.orders().filter(placed_at__gte=start, placed_at__lt=end)

    def customers(self) -> QuerySet:
        """Customers counted by customer figures; with a channel filter, those who ever bought through it."""
        qs = customer_scope(user=self.user)
        f = self.filters
        if f.owner:
            qs = qs.filter(owner_id=f.owner)
        if f.source:
            qs = qs.filter(source=f.source)
        if f.segment:
            qs = qs.filter(score__rfm_segment=f.segment)
        if f.stage:
            qs = qs.filter(score__lifecycle_stage=f.stage)
        if f.tier:
            qs = qs.filter(pk__in=tier_member_customers(tier_id=f.tier))
        if f.channel:
            qs = qs.filter(pk__in=self.orders().values("customer_id"))
        return qs
