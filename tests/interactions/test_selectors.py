"""Reads of the interaction log: scope (visible_to), filters, keyset pages, per-customer reads."""

from datetime import timedelta

import pytest
from django.http import Http404
from django.utils import timezone

from customers.selectors import customer_list
from interactions import selectors, services
from interactions.models import Interaction, InteractionOutcome
from segmentation.models import CustomerScore, Segment
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def _log(actor, customer, minutes_ago=60, **extra):
    values = {
        "channel": "phone",
        "direction": "out",
        "occurred_at": timezone.now() - timedelta(minutes=minutes_ago),
    }
    values.update(extra)
    return services.interaction_log(actor=actor, customer=customer, **values)


def _ids(qs):
    return set(qs.values_list("pk", flat=True))


def test_sales_see_interactions_of_their_own_and_shared_customers_managers_all(
    sales_user, sales_user2, manager_user
):
    own = _log(sales_user, CustomerFactory(owner=sales_user))
    shared_customer = CustomerFactory(owner=sales_user2)
    shared_customer.shared_with.add(sales_user)
    shared = _log(sales_user2, shared_customer)
    hidden = _log(sales_user2, CustomerFactory(owner=sales_user2))
    assert _ids(selectors.interaction_list(user=sales_user)) == {own.pk, shared.pk}
    assert _ids(selectors.interaction_list(user=manager_user)) == {own.pk, shared.pk, hidden.pk}
    with pytest.raises(Http404):
        selectors.interaction_get_for_user(user=sales_user, interaction_id=hidden.pk)
    with pytest.raises(Http404):  # missing answers the same
        selectors.interaction_get_for_user(user=sales_user, interaction_id=hidden.pk + 1000)


def test_binned_interactions_and_binned_customers_are_left_out(sales_user, manager_user):
    customer = CustomerFactory(owner=sales_user)
    live = _log(sales_user, customer)
    binned = services.interaction_delete(actor=sales_user, interaction=_log(sales_user, customer))
    gone_customer = CustomerFactory(owner=sales_user, deleted_at=timezone.now())
    Interaction.objects.create(
        customer=gone_customer, channel="sms", direction="in", occurred_at=timezone.now()
    )
    assert _ids(selectors.interaction_list(user=manager_user)) == {live.pk}
    assert _ids(selectors.interaction_list(user=manager_user, filters={"binned": True})) == {binned.pk}
    with pytest.raises(Http404):
        selectors.interaction_get_for_user(user=manager_user, interaction_id=binned.pk)
    assert selectors.interaction_get_for_user(
        user=manager_user, interaction_id=binned.pk, include_deleted=True
    )


def test_filters(sales_user, sales_user2, manager_user, tenant):
    anna = CustomerFactory(owner=sales_user, city="Anna town")
    bo = CustomerFactory(owner=sales_user2)
    interested = InteractionOutcome.objects.get(key="interested")
    call = _log(sales_user, anna, minutes_ago=60 * 24 * 3, outcome=interested)
    chat = _log(sales_user2, bo, channel="wechat", direction="in")
    CustomerScore.objects.create(
        customer=bo, rfm_segment="champions", stage_since=timezone.now(), computed_at=timezone.now()
    )
    everyone = {"user": manager_user}
    assert _ids(selectors.interaction_list(**everyone, filters={"channel": "wechat"})) == {chat.pk}
    assert _ids(selectors.interaction_list(**everyone, filters={"direction": "out"})) == {call.pk}
    assert _ids(selectors.interaction_list(**everyone, filters={"outcome": interested.pk})) == {call.pk}
    assert _ids(selectors.interaction_list(**everyone, filters={"author": sales_user2.pk})) == {chat.pk}
    assert _ids(selectors.interaction_list(**everyone, filters={"customer": anna.pk})) == {call.pk}
    today = timezone.localdate(chat.occurred_at)  # the chat's local day (an hour ago may be yesterday)
    assert _ids(selectors.interaction_list(**everyone, filters={"date_from": today})) == {chat.pk}
    assert _ids(selectors.interaction_list(**everyone, filters={"date_to": today - timedelta(days=1)})) == {
        call.pk
    }
    assert _ids(selectors.interaction_list(**everyone, filters={"rfm_segment": "champions"})) == {chat.pk}
    segment = Segment.objects.create(
        name="Anna only",
        rules={
            "op": "and",
            "rules": [{"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Anna town"}]}],
        },
        created_by=manager_user,
    )
    assert _ids(selectors.interaction_list(**everyone, filters={"segment": segment})) == {call.pk}


def test_keyset_pages_walk_forward_and_back_without_gaps(manager_user, sales_user):
    customer = CustomerFactory(owner=sales_user)
    same_time = timezone.now() - timedelta(hours=2)
    logged = [_log(sales_user, customer, minutes_ago=i) for i in range(5)]
    logged += [_log(sales_user, customer, occurred_at=same_time) for _ in range(3)]  # ties on time
    qs = selectors.interaction_list(user=manager_user)
    expected = list(qs.order_by("-occurred_at", "-pk").values_list("pk", flat=True))
    seen, cursor, pages = [], None, []
    while True:
        page = selectors.interaction_page(qs, cursor=cursor, page_size=3)
        pages.append(page)
        seen += [row.pk for row in page.rows]
        if not page.has_next:
            break
        cursor = page.next_cursor
    assert seen == expected and len(pages) == 3
    back = selectors.interaction_page(qs, cursor=pages[2].previous_cursor, direction="prev", page_size=3)
    assert [r.pk for r in back.rows] == [r.pk for r in pages[1].rows]
    assert selectors.interaction_page(qs, cursor="garbage", page_size=3).rows == pages[0].rows


def test_customers_without_contact_and_last_contact(sales_user, manager_user):
    recent, old, never = (CustomerFactory(owner=sales_user) for _ in range(3))
    _log(sales_user, recent, minutes_ago=60)
    old_interaction = _log(sales_user, old, minutes_ago=60 * 24 * 40)
    deleted_recent = _log(sales_user, old, minutes_ago=30)
    services.interaction_delete(actor=sales_user, interaction=deleted_recent)  # a binned touch does not count
    base = customer_list(user=manager_user)
    assert _ids(selectors.customers_without_contact(base, days=30)) == {old.pk, never.pk}
    annotated = {
        c.pk: c.last_contact_at for c in base.annotate(last_contact_at=selectors.last_contact_subquery())
    }
    assert annotated[old.pk] == old_interaction.occurred_at
    assert annotated[never.pk] is None
