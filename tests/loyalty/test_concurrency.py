"""Concurrent redemptions on the real database: 20 threads, each with its own connection, spend
against a balance that covers 5 of them."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django_tenants.utils import schema_context

from loyalty import services
from loyalty.models import Member, PointsEntry

from .conftest import member_with_balance

pytestmark = pytest.mark.slow


def test_twenty_concurrent_redemptions_against_a_balance_for_five(committed_tenant, django_db_blocker):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        with schema_context(tenant.schema_name):
            member = member_with_balance(100)
        start = threading.Barrier(20)
        outcomes: list[str] = []
        lock = threading.Lock()

        def redeem(index: int) -> None:
            try:
                connection.set_tenant(tenant)
                start.wait()
                try:
                    services.points_redeem(
                        actor=None, member=Member(pk=member.pk), points=20, source_key=f"thread:{index}"
                    )
                    outcome = "ok"
                except ValidationError:
                    outcome = "refused"
                with lock:
                    outcomes.append(outcome)
            finally:
                connection.close()

        threads = [threading.Thread(target=redeem, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        with schema_context(tenant.schema_name):
            member.refresh_from_db()
            entries = list(
                PointsEntry.objects.filter(member=member).values_list("kind", "points", "balance_after")
            )
            differences = services.member_balances_check()
        connection.set_schema_to_public()
    assert sorted(outcomes) == ["ok"] * 5 + ["refused"] * 15
    assert member.balance == 0
    assert sum(points for _kind, points, _after in entries) == member.balance
    redeemed = sorted((after for kind, _points, after in entries if kind == "redeem"), reverse=True)
    assert redeemed == [80, 60, 40, 20, 0]  # each saw the one before it: no lost update
    assert differences == []
