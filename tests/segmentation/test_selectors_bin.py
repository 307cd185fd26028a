"""The segment pages' figures leave the customers in the bin out (score_list leaves them out by id,
not through a join with every customer): both roles."""

from decimal import Decimal

import pytest
from django.utils import timezone

from segmentation.models import CustomerScore
from segmentation.selectors import clv_distribution, score_list, segment_overview
from tests.factories import CustomerFactory


@pytest.mark.parametrize("user_key", ["manager_user", "sales_user"])
def test_scores_of_binned_customers_are_left_out(tenant, request, user_key, sales_user):
    now = timezone.now()
    live = CustomerFactory(owner=sales_user)
    binned = CustomerFactory(owner=sales_user, deleted_at=now)
    for customer, clv in ((live, "120.00"), (binned, "9000.00")):
        CustomerScore.objects.create(
            customer=customer,
            predicted_clv=Decimal(clv),
            rfm_segment="loyal",
            window_revenue=Decimal(clv),
            stage_since=now,
            computed_at=now,
        )
    user = request.getfixturevalue(user_key)
    assert list(score_list(user=user).values_list("customer_id", flat=True)) == [live.pk]
    rows, totals = segment_overview(user=user)
    loyal = next(row for row in rows if row.key == "loyal")
    assert (loyal.customers, loyal.revenue, loyal.average_clv) == (1, Decimal("120.00"), Decimal("120.00"))
    assert clv_distribution(user=user)["n"] == 1


def test_top_customers_by_clv_highest_first_ties_by_id_without_the_unscored_or_binned(tenant, manager_user):
    from segmentation.selectors import top_customers_by_clv

    now = timezone.now()
    customers = [CustomerFactory() for _ in range(5)]
    for customer, clv in zip(customers, ("100.00", "500.00", None, "500.00", "900.00"), strict=True):
        CustomerScore.objects.create(
            customer=customer,
            predicted_clv=None if clv is None else Decimal(clv),
            stage_since=now,
            computed_at=now,
        )
    customers[4].deleted_at = now
    customers[4].save(update_fields=["deleted_at"])
    top = top_customers_by_clv(user=manager_user)
    assert [s.customer_id for s in top] == [customers[1].pk, customers[3].pk, customers[0].pk]
    assert [s.customer_id for s in top_customers_by_clv(user=manager_user, limit=1)] == [customers[1].pk]
