"""Managers' reports: the overview with a comparison period, cohort retention, segment migration, and
the list behind every number. Every role may open them; a sales user sees figures of their own
customers only (the scope's querysets are `visible_to` the user)."""

from __future__ import annotations

from datetime import date, timedelta

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from crm.accounts.permissions import role_required
from crm.numbers import NumberError, parse_id, parse_int
from crm.reportcache import as_of, poll_answer
from interactions.labels import Channel as InteractionChannel

from . import analyses, exporting, figures
from .caching import Figures, cached
from .exporting import export_query
from .periods import COMPARISONS, PRESETS, Period, parse_selection
from .reports import period_param, selection_params
from .scope import FILTER_KEYS, Scope, filter_options, parse_filters

PAGE_SIZE = 50
MIGRATION_KEYS = {"rfm": "segments", "stage": "stages"}


def _today() -> date:
    return timezone.localdate()


def _scope(request: HttpRequest) -> Scope:
    return Scope(user=request.user, filters=parse_filters(request.GET, request.user))


def _query(params: dict) -> str:
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def _preset_labels() -> dict[str, str]:
    return {
        "30d": _("Last 30 days"),
        "90d": _("Last 90 days"),
        "month": _("This month"),
        "last_month": _("Last month"),
        "quarter": _("This quarter"),
        "year": _("This year"),
        "last_year": _("Last year"),
        "custom": _("Custom range"),
    }


def _comparison_labels() -> dict[str, str]:
    return {
        "previous": _("Previous period"),
        "last_year": _("Same period last year"),
        "none": _("No comparison"),
    }


def _figures(request: HttpRequest, name: str, params: dict) -> Figures:
    """A report's figures (dashboards.caching.cached: maybe stale, with a refresh on its way); an
    export waits for fresh ones, since a file carries no "as of"."""
    return cached(name, request.user, params, stale_ok=not exporting.wanted(request))


def _base_context(request: HttpRequest, scope: Scope) -> dict:
    return {
        "filters": scope.filters,
        "options": filter_options(request.user),
        "filter_query": _query(scope.filters.as_params()),
    }


@role_required()
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    scope = _scope(request)
    selection = parse_selection(request.GET, _today())
    shown = _figures(
        request, "overview-and-chart", {**selection_params(selection), **scope.filters.as_params()}
    )
    if (answer := poll_answer(request, shown)) is not None:
        return answer
    values, series = shown.value["values"], shown.value["series"]
    fmt = exporting.wanted(request)
    if fmt and request.GET.get("table") == "revenue":  # the chart's data
        header = [_("From"), _("Revenue"), _("Earlier period")]
        earlier = series["earlier"] + [None] * (len(series["current"]) - len(series["earlier"]))
        table = [list(row) for row in zip(series["days"], series["current"], earlier, strict=True)]
        return exporting.table_response(fmt, "revenue", header, table)
    if fmt:
        header = [_("Figure"), _("Value"), _("Earlier period"), _("Change (%)")]
        table = [[v.definition.label, v.value, v.previous, v.change] for v in values]
        return exporting.table_response(fmt, "overview", header, table)
    period_params = {"range": selection.preset, "compare": selection.comparison}
    if selection.preset == "custom":
        period_params |= {"from": selection.period.first.isoformat(), "to": selection.period.last.isoformat()}
    query = _query(period_params | scope.filters.as_params())
    cards = []
    for value in values:
        link = reverse("dashboards:figure", args=[value.definition.key]) + f"?{query}"
        previous_link = (
            f"{link}&period=compared" if selection.compared and value.definition.per_period else ""
        )
        cards.append({"figure": value, "link": link, "previous_link": previous_link})
    return render(
        request,
        "dashboards/overview.html",
        {
            **_base_context(request, scope),
            "selection": selection,
            "cards": cards,
            "presets": [(p, _preset_labels()[p]) for p in PRESETS],
            "comparisons": [(c, _comparison_labels()[c]) for c in COMPARISONS],
            "range_error": bool(selection.errors),
            "query": query,
            "chart": _revenue_chart(series, compared=selection.compared is not None),
            "chart_unit": series["unit"],
            "revenue_export": query + "&table=revenue",
            **_exports(request),
            **as_of(request, shown),
        },
    )


def _revenue_chart(series: dict, *, compared: bool) -> dict:
    """The overview chart's data for Chart.js: labels in the viewer's language, money as numbers."""
    unit = series["unit"]
    fmt = "YEAR_MONTH_FORMAT" if unit == "month" else "MONTH_DAY_FORMAT"
    return {
        "labels": [date_format(day, fmt) for day in series["days"]],
        "current": [float(v) for v in series["current"]],
        "earlier": [float(v) for v in series["earlier"]] if compared else [],
    }


def _keyset(qs, request: HttpRequest):
    """Newest first by id; `cursor` is the last id of the previous page."""
    before = parse_id(request.GET.get("cursor"))
    page_qs = qs.order_by("-pk")
    if before:
        page_qs = page_qs.filter(pk__lt=before)
    items = list(page_qs[: PAGE_SIZE + 1])
    more = len(items) > PAGE_SIZE
    items = items[:PAGE_SIZE]
    return items, (items[-1].pk if more and items else None)


def _small_int(raw, minimum: int, maximum: int) -> int | None:
    try:
        return parse_int(raw, minimum=minimum, maximum=maximum, max_length=4)
    except NumberError:
        return None


def _parse_month(raw) -> date | None:
    text = str(raw or "")[:7]
    try:
        year, month = text.split("-")
        return date(int(year), int(month), 1) if 2000 <= int(year) <= 2100 and 1 <= int(month) <= 12 else None
    except ValueError:
        return None


def _parse_day(raw) -> date | None:
    text = str(raw or "").strip()
    if len(text) != 10:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return day if date(2000, 1, 1) <= day <= date(2100, 12, 31) else None


def _list_page(
    request: HttpRequest,
    scope: Scope,
    qs,
    *,
    kind: str,
    title: str,
    explanation: str,
    back: str,
    back_keep: tuple[str, ...] | None = None,
    back_drop: tuple[str, ...] = (),
    period: Period | None = None,
) -> HttpResponse:
    """The list behind a number: its count, a keyset page of its rows and the way back to the report
    (`back_keep`/`back_drop` choose which of this page's parameters the report gets back)."""
    items, next_before = _keyset(qs, request)
    params = {k: v for k, v in request.GET.items() if k != "cursor"}
    back_params = {
        k: v for k, v in params.items() if (back_keep is None or k in back_keep) and k not in back_drop
    }
    return render(
        request,
        "dashboards/figure_list.html",
        {
            **_base_context(request, scope),
            "title": title,
            "explanation": explanation,
            "period": period,
            "kind": kind,
            "items": items,
            "total": qs.count(),
            "next_link": f"?{_query(params | {'cursor': next_before})}" if next_before else "",
            "back_link": reverse(back) + f"?{_query(back_params)}",
        },
    )


@role_required()
@require_GET
def figure_list(request: HttpRequest, key: str) -> HttpResponse:
    """The orders or customers behind one overview figure (same period, same filters)."""
    if key not in figures.FIGURES:
        raise Http404
    definition = figures.FIGURES[key]
    scope = _scope(request)
    selection = parse_selection(request.GET, _today())
    period: Period = selection.period
    if request.GET.get("period") == "compared" and selection.compared is not None and definition.per_period:
        period = selection.compared
    qs = figures.rows(key, scope, period)
    if definition.rows_kind in ("followups", "tickets"):
        qs = qs.select_related("customer", "assignee")
    elif definition.rows_kind in ("orders", "members", "responses"):
        qs = qs.select_related("customer")
    return _list_page(
        request,
        scope,
        qs,
        kind=definition.rows_kind,
        title=definition.label,
        explanation=definition.explanation,
        period=period if definition.per_period else None,
        back="dashboards:overview",
    )


@role_required()
@require_GET
def cohorts(request: HttpRequest) -> HttpResponse:
    scope = _scope(request)
    months = _small_int(request.GET.get("months"), 3, analyses.MAX_COHORT_MONTHS) or 12
    metric = "revenue" if request.GET.get("metric") == "revenue" else "share"
    shown = _figures(request, "cohorts", {"months": months, **scope.filters.as_params()})
    if (answer := poll_answer(request, shown)) is not None:
        return answer
    rows = shown.value
    fmt = exporting.wanted(request)
    if fmt:
        header = [_("Cohort"), _("Customers")] + [str(k) for k in range(months)]
        key = "revenue_per_customer" if metric == "revenue" else "share"
        table = [
            [row.month.strftime("%Y-%m"), row.size] + [None if c is None else c[key] for c in row.cells]
            for row in rows
        ]
        return exporting.table_response(fmt, "cohorts", header, table)
    filter_query = _query(scope.filters.as_params())
    base = reverse("dashboards:cohort_customers")
    for row in rows:
        for cell in row.cells:
            if cell is not None:
                cell["heat"] = min(int((cell["share"] or 0) // 5), 20)  # the 21 |heat classes
                cell["link"] = f"{base}?{_query({'cohort': row.month.strftime('%Y-%m'), 'k': cell['k']})}" + (
                    f"&{filter_query}" if filter_query else ""
                )
    return render(
        request,
        "dashboards/cohorts.html",
        {
            **_base_context(request, scope),
            "rows": rows,
            "months": months,
            "month_choices": (6, 12, 24),
            "metric": metric,
            "width": range(months),
            "line": analyses.cohort_line(rows),
            **_exports(request),
            **as_of(request, shown),
        },
    )


@role_required()
@require_GET
def cohort_customers(request: HttpRequest) -> HttpResponse:
    cohort = _parse_month(request.GET.get("cohort"))
    k = _small_int(request.GET.get("k"), 0, analyses.MAX_COHORT_MONTHS)
    if cohort is None or k is None:
        raise Http404
    scope = _scope(request)
    qs = analyses.cohort_customers(scope, cohort=cohort, k=k)
    names = {"cohort": cohort.strftime("%Y-%m"), "k": k}
    return _list_page(
        request,
        scope,
        qs,
        kind="customers",
        title=_("Cohort %(cohort)s, month %(k)s") % names,
        explanation=_(
            "Customers whose first purchase was in %(cohort)s and who bought in month %(k)s after it."
        )
        % names,
        back="dashboards:cohorts",
        back_keep=FILTER_KEYS,
    )


def _migration_dates(request: HttpRequest, today: date) -> tuple[date, date]:
    """The two dates compared: `from` (default 90 days before `to`) and `to` (default today)."""
    second = _parse_day(request.GET.get("to")) or today
    first = _parse_day(request.GET.get("from")) or second - timedelta(days=90)
    return (second, first) if first > second else (first, second)


@role_required()
@require_GET
def migration(request: HttpRequest) -> HttpResponse:
    scope = _scope(request)
    dimension = request.GET.get("dimension") if request.GET.get("dimension") in analyses.DIMENSIONS else "rfm"
    first, second = _migration_dates(request, _today())
    shown = _figures(
        request,
        "migration",
        {
            "dimension": dimension,
            "first": first.isoformat(),
            "second": second.isoformat(),
            **scope.filters.as_params(),
        },
    )
    if (answer := poll_answer(request, shown)) is not None:
        return answer
    counts = shown.value
    options = filter_options(request.user)
    labelled = [("", _("None yet"))] + list(options[MIGRATION_KEYS[dimension]])
    keys = [k for k, _label in labelled]
    known = set(keys)
    base = reverse("dashboards:migration_customers")
    common = {
        "dimension": dimension,
        "from": first.isoformat(),
        "to": second.isoformat(),
    } | scope.filters.as_params()
    rows = []
    for before, before_label in labelled:
        cells = []
        for after, _after_label in labelled:
            n = counts.get((before, after), 0)
            link = f"{base}?{_query(common | {'before': before or '-', 'after': after or '-'})}" if n else ""
            cells.append({"count": n, "stayed": before == after, "link": link})
        total = sum(c["count"] for c in cells)
        if total or before in known:
            rows.append({"key": before, "label": before_label, "cells": cells, "total": total})
    columns = [
        {"key": k, "label": label, "total": sum(counts.get((b, k), 0) for b in keys)} for k, label in labelled
    ]
    moved = sum(n for (b, a), n in counts.items() if b != a)
    fmt = exporting.wanted(request)
    if fmt:
        header = [_("From / to")] + [str(label) for _k, label in labelled] + [_("Total")]
        table = [[str(r["label"])] + [c["count"] for c in r["cells"]] + [r["total"]] for r in rows]
        return exporting.table_response(fmt, "migration", header, table)
    chart = {
        "labels": [str(label) for _k, label in labelled],
        "datasets": [
            {"label": str(label), "data": [counts.get((b, a), 0) if b != a else 0 for b in keys]}
            for a, label in labelled
        ],
    }
    return render(
        request,
        "dashboards/migration.html",
        {
            **_base_context(request, scope),
            "dimension": dimension,
            "first": first,
            "second": second,
            "rows": rows,
            "columns": columns,
            "moved": moved,
            "total": sum(counts.values()),
            "chart": chart,
            **_exports(request),
            **as_of(request, shown),
        },
    )


@role_required()
@require_GET
def migration_customers(request: HttpRequest) -> HttpResponse:
    scope = _scope(request)
    dimension = request.GET.get("dimension")
    if dimension not in analyses.DIMENSIONS:
        raise Http404
    first, second = _migration_dates(request, _today())
    options = filter_options(request.user)
    labels = dict([("", _("None yet"))] + list(options[MIGRATION_KEYS[dimension]]))

    def state(raw) -> str | None:
        value = "" if raw == "-" else str(raw or "")[:40]
        return value if value in labels else None

    before, after = state(request.GET.get("before")), state(request.GET.get("after"))
    if before is None or after is None:
        raise Http404
    qs = analyses.migration_customers(
        scope, dimension=dimension, first=first, second=second, before=before, after=after
    )
    names = {
        "before": labels[before],
        "after": labels[after],
        "first": first.isoformat(),
        "second": second.isoformat(),
    }
    return _list_page(
        request,
        scope,
        qs,
        kind="customers",
        title=_("%(before)s → %(after)s") % names,
        explanation=_("Customers who were in “%(before)s” on %(first)s and in “%(after)s” on %(second)s.")
        % names,
        back="dashboards:migration",
        back_drop=("before", "after"),
    )


def _period_context(request: HttpRequest):
    selection = parse_selection(request.GET, _today())
    period_params = {"range": selection.preset}
    if selection.preset == "custom":
        period_params |= {"from": selection.period.first.isoformat(), "to": selection.period.last.isoformat()}
    return selection, period_params


def _exports(request: HttpRequest) -> dict:
    return {"export_csv": export_query(request, "csv"), "export_xlsx": export_query(request, "xlsx")}


@role_required()
@require_GET
def team(request: HttpRequest) -> HttpResponse:
    """Per rep: interactions by channel, follow-ups, revenue and CLV of their book, tickets, alerts."""
    scope = _scope(request)
    selection, period_params = _period_context(request)
    shown = _figures(request, "team", {"period": period_param(selection.period), **scope.filters.as_params()})
    if (answer := poll_answer(request, shown)) is not None:
        return answer
    rows = shown.value
    channels = [
        (value, label)
        for value, label in InteractionChannel.choices
        if any(r.by_channel.get(value) for r in rows)
    ]
    header = (
        [_("Rep"), _("Interactions")]
        + [label for _v, label in channels]
        + [
            _("Follow-ups done"),
            _("Done on time"),
            _("Overdue now"),
            _("Customers"),
            _("Revenue"),
            _("Predicted CLV"),
            _("Tickets resolved"),
            _("Open tickets"),
            _("Churn alerts raised"),
            _("Churn alerts acted on"),
        ]
    )
    fmt = exporting.wanted(request)
    if fmt:
        table = [
            [r.name, r.interactions]
            + [r.by_channel.get(v, 0) for v, _label in channels]
            + [
                r.followups_done,
                r.followups_on_time,
                r.followups_overdue,
                r.customers,
                r.revenue,
                r.clv,
                r.tickets_resolved,
                r.tickets_open,
                r.alerts_raised,
                r.alerts_acted,
            ]
            for r in rows
        ]
        return exporting.table_response(fmt, "team", header, table)
    revenue_link = reverse("dashboards:figure", args=["revenue"])
    query = _query(period_params | scope.filters.as_params())
    for r in rows:
        r.channel_counts = [r.by_channel.get(v, 0) for v, _label in channels]
        r.revenue_link = (
            f"{revenue_link}?{_query(period_params | scope.filters.as_params() | {'owner': r.user_id})}"
        )
        r.interactions_link = (
            reverse("interactions:index")
            + "?"
            + _query(
                {
                    "author": r.user_id,
                    "date_from": selection.period.first.isoformat(),
                    "date_to": selection.period.last.isoformat(),
                }
            )
        )
    return render(
        request,
        "dashboards/team.html",
        {
            **_base_context(request, scope),
            **_exports(request),
            "selection": selection,
            "presets": [(p, _preset_labels()[p]) for p in PRESETS],
            "range_error": bool(selection.errors),
            "rows": rows,
            "channels": channels,
            "query": query,
            **as_of(request, shown),
        },
    )


@role_required()
@require_GET
def funnel(request: HttpRequest) -> HttpResponse:
    scope = _scope(request)
    selection, period_params = _period_context(request)
    shown = _figures(
        request, "funnel", {**selection_params(selection, compared=False), **scope.filters.as_params()}
    )
    if (answer := poll_answer(request, shown)) is not None:
        return answer
    rows = shown.value
    labels = dict(filter_options(request.user)["stages"])
    fmt = exporting.wanted(request)
    if fmt:
        header = [
            _("Stage"),
            _("Next stage"),
            _("Customers in the stage"),
            _("Moved on"),
            _("Conversion (%)"),
        ]
        table = [[labels[r["stage"]], labels[r["next"]], r["base"], r["converted"], r["rate"]] for r in rows]
        return exporting.table_response(fmt, "funnel", header, table)
    base = reverse("dashboards:funnel_customers")
    common = period_params | scope.filters.as_params()
    for r in rows:
        r["label"], r["next_label"] = labels[r["stage"]], labels[r["next"]]
        r["base_link"] = f"{base}?{_query(common | {'from_stage': r['stage'], 'step': 'base'})}"
        r["converted_link"] = f"{base}?{_query(common | {'from_stage': r['stage'], 'step': 'converted'})}"
    return render(
        request,
        "dashboards/funnel.html",
        {
            **_base_context(request, scope),
            **_exports(request),
            "selection": selection,
            "presets": [(p, _preset_labels()[p]) for p in PRESETS],
            "range_error": bool(selection.errors),
            "rows": rows,
            **as_of(request, shown),
        },
    )


@role_required()
@require_GET
def funnel_customers(request: HttpRequest) -> HttpResponse:
    # "from_stage", not "stage": "stage" is the page filter on the customers' current stage.
    stage, step = request.GET.get("from_stage"), request.GET.get("step")
    if stage not in analyses.FUNNEL[:-1] or step not in ("base", "converted"):
        raise Http404
    scope = _scope(request)
    selection, _params = _period_context(request)
    start, end = selection.period.bounds(scope.zone)
    qs = analyses.funnel_customers(scope, stage=stage, step=step, start=start, end=end)
    labels = dict(filter_options(request.user)["stages"])
    following = labels[analyses.FUNNEL[analyses.FUNNEL.index(stage) + 1]]
    if step == "base":
        title = _("In “%(stage)s” at the start or entering it") % {"stage": labels[stage]}
    else:
        title = _("Moved on from “%(stage)s” to “%(next)s”") % {"stage": labels[stage], "next": following}
    return _list_page(
        request,
        scope,
        qs,
        kind="customers",
        title=title,
        explanation=_("Lifecycle funnel"),
        period=selection.period,
        back="dashboards:funnel",
        back_drop=("from_stage", "step"),
    )
