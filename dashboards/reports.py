"""The cached reports, by name (dashboards.caching.cached): one module-level function each that
computes a report from its user and JSON-safe parameters, the only arguments a background refresh
(dashboards.tasks.report_refresh_task) has. The page and the refresh call the same function with the
same parameters, so they cannot compute different figures.

Parameters: periods as [first, last] ISO dates (`period_param`), dates as ISO text, the page's
filters as `Filters.as_params()` gives them, and "_zone", the time zone the figures are cut in (added
by `cached()`, and active while the function runs).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from . import analyses, figures
from .caching import CLOCK_TIMEOUT, REPORTS, Report
from .periods import Period
from .scope import Filters, Scope
from .selectors import dashboard_context
from .team import team_rows


def period_param(period: Period | None) -> list[str] | None:
    return [period.first.isoformat(), period.last.isoformat()] if period is not None else None


def _period(value: list[str] | None) -> Period | None:
    return Period(date.fromisoformat(value[0]), date.fromisoformat(value[1])) if value else None


def _scope(user, params: dict[str, Any]) -> Scope:
    return Scope(user=user, filters=Filters.from_params(params))


def overview_and_chart(user, params: dict[str, Any]) -> dict:
    """The overview's figures and its chart, which share their passes over the purchases."""
    return figures.overview(_scope(user, params), _period(params["period"]), _period(params["compared"]))


def cohorts(user, params: dict[str, Any]) -> list:
    return analyses.cohort_matrix(
        _scope(user, params), months=params["months"], today=date.fromisoformat(params["today"])
    )


def migration(user, params: dict[str, Any]) -> dict:
    return analyses.migration_matrix(
        _scope(user, params),
        dimension=params["dimension"],
        first=date.fromisoformat(params["first"]),
        second=date.fromisoformat(params["second"]),
    )


def team(user, params: dict[str, Any]) -> list:
    return team_rows(_scope(user, params), _period(params["period"]))


def funnel(user, params: dict[str, Any]) -> list[dict]:
    scope = _scope(user, params)
    start, end = _period(params["period"]).bounds(scope.zone)
    return analyses.funnel_rows(scope, start=start, end=end)


def home(user, params: dict[str, Any]) -> dict:
    """The start page's figures (`dashboards.selectors.dashboard_context`): the days up to today, a
    daily report (its entry of an earlier day is stale)."""
    return dashboard_context(user=user)


# The start page's entry may be served, stale and labelled, for a week: the first visit after a
# quiet weekend gets Friday's figures at once while they are brought up to date.
HOME_MAX_AGE = 7 * 24 * 60 * 60

# The names are the cache's: an entry cached under "overview" by earlier code held the figures only.
REPORTS.update(
    {
        "overview-and-chart": Report(overview_and_chart),
        "cohorts": Report(cohorts),
        "migration": Report(migration),
        "team": Report(team, max_age=CLOCK_TIMEOUT),  # "overdue now" moves with the clock, not only the data
        "funnel": Report(funnel),
        "home": Report(home, max_age=HOME_MAX_AGE, daily=True),
    }
)
