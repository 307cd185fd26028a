"""The cached reports, by name (dashboards.caching.cached): one module-level function each that
computes a report from its user and JSON-safe parameters, the only arguments a background refresh
(dashboards.tasks.report_refresh_task) has. The page and the refresh call the same function with the
same parameters, so they cannot compute different figures.

Parameters: a period chosen by its preset ("last 30 days") as the preset's name, resolved when the
figures are computed (`selection_params`: the entry is the same from one day to the next, and the
reports that take it are daily, so the first visit of a day gets the day before's figures at once,
labelled, while they are brought up to date), a custom period as [first, last] ISO dates
(`period_param`), dates as ISO text, the page's filters as `Filters.as_params()` gives them, and
"_zone", the time zone the figures are cut in (added by `cached()`, and active while the function
runs: "today" is today there).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.utils import timezone

from . import analyses, figures
from .caching import CLOCK_TIMEOUT, REPORTS, Report
from .periods import Period, Selection, parse_selection
from .scope import Filters, Scope
from .selectors import dashboard_context
from .team import team_rows


def period_param(period: Period | None) -> list[str] | None:
    return [period.first.isoformat(), period.last.isoformat()] if period is not None else None


def _period(value: list[str] | None) -> Period | None:
    return Period(date.fromisoformat(value[0]), date.fromisoformat(value[1])) if value else None


def selection_params(selection: Selection, *, compared: bool = True) -> dict[str, Any]:
    """A report's parameters for the period the page shows: a preset by its name (and the comparison
    by its name), so that "last 30 days" is one entry from day to day, or a custom range by its dates
    (and the compared period's). `compared=False` for a report without a comparison."""
    if selection.preset != "custom":
        return {"range": selection.preset, **({"compare": selection.comparison} if compared else {})}
    return {
        "period": period_param(selection.period),
        **({"compared": period_param(selection.compared)} if compared else {}),
    }


def _periods(params: dict[str, Any]) -> tuple[Period, Period | None]:
    """The period and the compared period of `selection_params`, a preset's as of today."""
    if "range" in params:
        chosen = {"range": params["range"], "compare": params.get("compare")}
        selection = parse_selection(chosen, timezone.localdate())
        return selection.period, selection.compared
    return _period(params["period"]), _period(params.get("compared"))


def _scope(user, params: dict[str, Any]) -> Scope:
    return Scope(user=user, filters=Filters.from_params(params))


def overview_and_chart(user, params: dict[str, Any]) -> dict:
    """The overview's figures and its chart, which share their passes over the purchases."""
    return figures.overview(_scope(user, params), *_periods(params))


def cohorts(user, params: dict[str, Any]) -> list:
    """The last `months` cohorts up to today (a daily report; "today" named by parameters of earlier
    code)."""
    today = date.fromisoformat(params["today"]) if params.get("today") else timezone.localdate()
    return analyses.cohort_matrix(_scope(user, params), months=params["months"], today=today)


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
    start, end = _periods(params)[0].bounds(scope.zone)
    return analyses.funnel_rows(scope, start=start, end=end)


def home(user, params: dict[str, Any]) -> dict:
    """The start page's figures (`dashboards.selectors.dashboard_context`): the days up to today, a
    daily report (its entry of an earlier day is stale)."""
    return dashboard_context(user=user)


# The entries of a daily report (the start page, the reports of a preset period) may be served, stale
# and labelled, for a week: the first visit after a quiet weekend gets Friday's figures at once while
# they are brought up to date.
DAILY_MAX_AGE = 7 * 24 * 60 * 60

# The names are the cache's: an entry cached under "overview" by earlier code held the figures only.
REPORTS.update(
    {
        "overview-and-chart": Report(overview_and_chart, max_age=DAILY_MAX_AGE, daily=True),
        "cohorts": Report(cohorts, max_age=DAILY_MAX_AGE, daily=True),
        "migration": Report(migration),
        "team": Report(team, max_age=CLOCK_TIMEOUT),  # "overdue now" moves with the clock, not only the data
        "funnel": Report(funnel, max_age=DAILY_MAX_AGE, daily=True),
        "home": Report(home, max_age=DAILY_MAX_AGE, daily=True),
    }
)
