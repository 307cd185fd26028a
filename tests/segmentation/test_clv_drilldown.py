"""Every bar of the CLV histogram opens the customer list with exactly the customers it counts."""

import random
import re
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from django.urls import reverse
from django.utils import timezone

from customers.selectors import customer_list
from segmentation.models import CustomerScore
from segmentation.selectors import clv_distribution
from tests.factories import CustomerFactory


def test_each_clv_bar_lists_exactly_the_customers_it_counts(tenant, manager_user, manager_client):
    rng = random.Random(5)
    now = timezone.now()
    values = [Decimal(rng.randint(0, 200_000)) / 100 for _ in range(150)]
    values += [Decimal("0.00"), Decimal("5000.00")]  # the lowest edge and a whale above the 99th percentile
    for value in values:
        CustomerScore.objects.create(
            customer=CustomerFactory(), predicted_clv=value, stage_since=now, computed_at=now
        )
    CustomerScore.objects.create(customer=CustomerFactory(), stage_since=now, computed_at=now)  # no CLV

    histogram = clv_distribution(user=manager_user, bins=8)
    assert histogram["n"] == len(values) == sum(histogram["counts"])
    assert len(histogram["links"]) == len(histogram["counts"]) == 9
    for link, count in zip(histogram["links"], histogram["counts"], strict=True):
        filters = {key: Decimal(value[0]) for key, value in parse_qs(urlsplit(link).query).items()}
        assert customer_list(user=manager_user, filters=filters).count() == count, link
    # the last bar ("and above") holds the whale; the page offers the links to the chart
    assert histogram["counts"][-1] >= 1
    page = manager_client.get(reverse("segmentation:clv")).content.decode()
    data = re.search(r'id="clv-chart-data" type="application/json">(.*?)</script>', page, re.S)
    shown = clv_distribution(user=manager_user)  # the page's own (20 bars)
    assert data and all(link.replace("&", "\\u0026") in data.group(1) for link in shown["links"])
