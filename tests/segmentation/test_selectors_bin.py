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
