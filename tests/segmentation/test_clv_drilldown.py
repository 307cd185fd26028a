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
    assert len(histogram["links"]) == len(histogram["counts"]) >= 5
    for link, count in zip(histogram["links"], histogram["counts"], strict=True):
        filters = {key: Decimal(value[0]) for key, value in parse_qs(urlsplit(link).query).items()}
        assert customer_list(user=manager_user, filters=filters).count() == count, link
    # the last bar ("and above") holds the whale; the page offers the links to the chart
    assert histogram["counts"][-1] >= 1
    page = manager_client.get(reverse("segmentation:clv")).content.decode()
    data = re.search(r'id="clv-chart-data" type="application/json">(.*?)</script>', page, re.S)
    shown = clv_distribution(user=manager_user)  # the page's own (20 bars)
    assert data and all(link.replace("&", "\\u0026") in data.group(1) for link in shown["links"])


def test_a_skewed_clv_spreads_over_log_buckets_instead_of_filling_the_first_bar(tenant, manager_user):
    """Issue 15: 1,300 of 2,000 customers sat in the first of 20 equal bars (0 to the 99th percentile)
    because CLV is heavy-tailed. Buckets on a 1-2-5 log scale show the shape: no bar holds most of
    the customers, and the bars' edges are round numbers growing by steps of 2-2.5x."""
    rng = random.Random(11)
    now = timezone.now()
    values = [Decimal(str(round(rng.lognormvariate(4.5, 1.2), 2))) for _ in range(300)]
    for value in values:
        CustomerScore.objects.create(
            customer=CustomerFactory(), predicted_clv=value, stage_since=now, computed_at=now
        )
    histogram = clv_distribution(user=manager_user)
    assert sum(histogram["counts"]) == len(values)
    assert max(histogram["counts"]) < len(values) * 0.35, histogram["counts"]
    assert histogram["counts"][0] < len(values) * 0.2
    assert histogram["scale"] == "log"
    assert histogram["labels"][1:4] in (["10–20", "20–50", "50–100"], ["5–10", "10–20", "20–50"]), histogram
