"""How far to trust the alerts: run the evaluation harness (`analytics.evaluate`) on the tenant's
purchases at a past cut-off, or on simulated purchase histories whose truth is known, and store the
figures (`AlertEvaluation`) for the lifecycle page.

The tenant's purchases are read exactly as the recompute reads them (paid or partly refunded orders of
customers not in the recycle bin, binary COPY through the tenant's cursor), up to the end of the
outcome window; the harness cuts them at the cut-off before it computes anything. The lifecycle rule
is replayed with the tenant's own settings.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.accounts.models import User
from crm.errors import ApplicationError

from .analytics import evaluate as evaluate_analytics
from .analytics import simulate
from .models import AlertEvaluation
from .recompute import Config, load_customer_ids, load_purchases
from .services import settings_get

OUTCOME_DAYS = evaluate_analytics.DEFAULT_OUTCOME_DAYS
SIMULATED_CUSTOMERS = 5_000
MAX_SIMULATED_CUSTOMERS = 200_000


def latest_possible_cutoff(today: date | None = None) -> date:
    """The last cut-off whose 90-day outcome window is over (it ends yesterday)."""
    today = today or timezone.now().date()
    return today - timedelta(days=OUTCOME_DAYS + 1)


def _store(
    result: evaluate_analytics.AlertEvaluation, *, source: str, seed: int | None, actor
) -> AlertEvaluation:
    figures = result.to_dict()
    return AlertEvaluation.objects.create(
        source=source,
        seed=seed,
        cutoff=date.fromisoformat(result.cutoff),
        outcome_days=result.outcome_days,
        customers=result.customers,
        flagged=result.rules.flagged,
        lapsed=result.rules.lapsed,
        precision=figures["rules"]["precision"],
        recall=figures["rules"]["recall"],
        naive_flagged=result.naive.flagged,
        naive_precision=figures["naive"]["precision"],
        naive_recall=figures["naive"]["recall"],
        model_used=result.model_used if result.model_used in ("bgnbd_gg", "historical") else "",
        figures=figures,
        created_by=actor,
    )


@transaction.atomic
def alert_evaluation_for_tenant(*, actor: User | None = None, cutoff: date | None = None) -> AlertEvaluation:
    """Evaluate the rules on the current tenant's purchases at `cutoff` (default: the latest cut-off
    whose outcome window is over) and store the figures."""
    latest = latest_possible_cutoff()
    cutoff = cutoff or latest
    if cutoff > latest:
        raise ApplicationError(
            _("The cut-off must be on or before %(date)s: the 90 days after it must be over.")
            % {"date": latest.isoformat()},
            field="cutoff",
        )
    window_end = cutoff + timedelta(days=OUTCOME_DAYS)
    as_of = datetime.combine(window_end, time.max, tzinfo=UTC)
    purchases = load_purchases(as_of=as_of, customer_ids=load_customer_ids())
    if not (purchases["placed_at"] <= pd.Timestamp(datetime.combine(cutoff, time.max, tzinfo=UTC))).any():
        raise ApplicationError(
            _("There are no purchases on or before the cut-off to evaluate."), field="cutoff"
        )
    cfg = Config.from_settings(settings_get())
    result = evaluate_analytics.evaluate_alerts(
        purchases,
        cutoff=pd.Timestamp(cutoff),
        observation_end=pd.Timestamp(window_end),
        outcome_days=OUTCOME_DAYS,
        date_col="placed_at",
        stage_params=cfg.lifecycle_params(),
    )
    return _store(result, source=AlertEvaluation.Source.TENANT, seed=None, actor=actor)


def evaluate_simulated(
    *, seed: int, customers: int = SIMULATED_CUSTOMERS
) -> evaluate_analytics.AlertEvaluation:
    """The rules with their default settings on simulated purchase histories (known truth)."""
    if not 1 <= customers <= MAX_SIMULATED_CUSTOMERS:
        raise ApplicationError(
            _("Simulate between 1 and %(max)s customers.") % {"max": f"{MAX_SIMULATED_CUSTOMERS:,}"},
            field="customers",
        )
    transactions, observation_end = simulate.simulate_purchase_histories(customers, seed=seed)
    cutoff = observation_end - pd.Timedelta(days=OUTCOME_DAYS)
    return evaluate_analytics.evaluate_alerts(transactions, cutoff=cutoff, observation_end=observation_end)


@transaction.atomic
def alert_evaluation_simulated(
    *, seed: int, customers: int = SIMULATED_CUSTOMERS, actor: User | None = None
) -> AlertEvaluation:
    """:func:`evaluate_simulated`, stored in the current tenant (labelled as simulated on the page)."""
    result = evaluate_simulated(seed=seed, customers=customers)
    return _store(result, source=AlertEvaluation.Source.SIMULATED, seed=seed, actor=actor)
