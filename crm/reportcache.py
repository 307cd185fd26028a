"""The plug-in point for figures that take seconds to compute at a big company's size: an app
registers a report by name (`REPORTS[name] = Report(compute)`, in its AppConfig.ready()) and its page
asks for the figures through `cached(name, user, params)`, then shows the "as of" label of stale
figures (`as_of`, with the template `components/figures_as_of.html`) and answers the label's poll
(`poll_answer`).

The cache itself is the reports' (dashboards.caching: per tenant, scope and parameters; stale figures
served while one background refresh computes them again; dropped when the data under them changes),
installed by DashboardsConfig.ready(). Without it, `cached` computes the figures each time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

# How long an entry is kept and may be served: a day (see Report.max_age).
TIMEOUT = 24 * 60 * 60
AS_OF_POLL = "figures-as-of"  # the id of the "as of" label, which polls (components/figures_as_of.html)


@dataclass(frozen=True)
class Report:
    """A cached report: `compute(user, params)` rebuilds its scope, period and parameters from the user
    and JSON-safe parameters (params["_zone"] is the time zone, active while it runs).

    `max_age`: how long after its computation an entry may be served at all, fresh or stale (the
    cache keeps it as long). For figures that move with the clock ("overdue now" on the team page:
    CLOCK_TIMEOUT) this is the rule that keeps them right: never shown more than CLOCK_TIMEOUT after
    they were computed, stale or not, the bound they had before stale figures were served; past it
    the page computes them while it waits (and a refresh that lands later is not needed for that).
    Within it, a stale entry is off by the clock no more than a fresh one of the same age was.

    `daily`: figures of the days up to today (the start page's last 30 days), whose parameters do not
    name the day, so that the first visit of a day finds the day before's entry: an entry computed
    on an earlier day (in the time zone the figures are cut in) is stale, served as such while it is
    refreshed, like an entry of an earlier data version."""

    compute: Callable[[Any, dict[str, Any]], Any]
    max_age: int = TIMEOUT
    daily: bool = False

    def is_current(self, entry: Any, version: str) -> bool:
        """Whether `entry` (with its `version` and `computed_at`) is fresh: computed at the current data
        version (and today, for a daily report, in the active time zone, which is the one its figures
        are cut in)."""
        if entry.version != version:
            return False
        return not self.daily or timezone.localdate(entry.computed_at) == timezone.localdate()


@dataclass(frozen=True)
class Figures:
    """What a page gets: the value, when it was computed, and whether it is stale (computed before
    the latest change; a background refresh is on its way)."""

    value: Any
    computed_at: datetime
    stale: bool = False

    @property
    def stamp(self) -> str:
        """Names the entry shown, for the page's poll: another stamp means newer figures landed."""
        return f"{self.computed_at.timestamp():.6f}"


# The cached reports by name: each app fills it in its AppConfig.ready() (dashboards: dashboards.reports).
REPORTS: dict[str, Report] = {}

_installed: Callable[..., Figures] | None = None


def install(function: Callable[..., Figures]) -> None:
    """Called once by the app that keeps the cache (dashboards): `function(name, user, params,
    stale_ok=...)` gives the figures by its rule."""
    global _installed
    _installed = function


def cached(name: str, user, params: dict[str, Any], *, stale_ok: bool = True) -> Figures:
    """The figures of report `name` for `user` and `params` (JSON-safe), through the installed cache."""
    if _installed is None:
        return Figures(REPORTS[name].compute(user, params), timezone.now())
    return _installed(name, user, params, stale_ok=stale_ok)


def poll_answer(request: HttpRequest, shown: Figures) -> HttpResponse | None:
    """The answer to a stale page's poll (None for any other request): a reload once figures newer
    than the ones the page shows have landed, else nothing (the poll goes on)."""
    if not (request.htmx and request.htmx.trigger == AS_OF_POLL):
        return None
    if request.GET.get("shown") == shown.stamp:
        return HttpResponse(status=204)
    response = HttpResponse()
    response["HX-Refresh"] = "true"
    return response


def as_of(request: HttpRequest, shown: Figures) -> dict:
    """The "as of" label of stale figures and the URL its poll asks (this page, naming what it shows)."""
    if not shown.stale:
        return {"as_of": None}
    query = request.GET.copy()
    query["shown"] = shown.stamp
    today = timezone.localdate(shown.computed_at) == timezone.localdate()
    return {
        "as_of": shown,
        "as_of_today": today,  # the time alone; else the date and time
        "as_of_poll": f"{request.path}?{query.urlencode()}",
    }
