"""Reads of the surveys, always in the user's scope: managers and admins see every answer, sales staff
the answers of customers they can see (`visible_to` on the response's customer).

The reports are GROUP BY queries in PostgreSQL (one per breakdown), never rows summed in Python.
NPS = % promoters (9-10) - % detractors (0-6); CSAT = mean score and % satisfied (4-5).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, TruncMonth
from django.http import Http404
from django.utils import timezone

from crm.accounts.models import User
from crm.accounts.permissions import visible_to
from customers.models import Customer
from customers.selectors import decode_cursor, encode_cursor

from .models import SurveyInvitation, SurveyKind, SurveyResponse, SurveyTemplate

PAGE_SIZE = 50
PERIODS = (3, 6, 12, 24)  # months a report covers

# the breakdowns of the report: key -> (ORM path of the group, path of its label or None)
DIMENSIONS = {
    "segment": ("customer__score__rfm_segment", None),
    "stage": ("customer__score__lifecycle_stage", None),
    "agent": ("agent_id", "agent__full_name"),
    "channel": ("channel", None),
    "category": ("category_id", "category__name"),
}

TEXT_DIMENSIONS = ("segment", "stage", "channel")

NPS = Q(kind=SurveyKind.NPS)
CSAT = Q(kind=SurveyKind.CSAT)
FIGURES = {
    "nps_n": Count("pk", filter=NPS),
    "promoters": Count("pk", filter=NPS & Q(score__gte=9)),
    "detractors": Count("pk", filter=NPS & Q(score__lte=6)),
    "csat_n": Count("pk", filter=CSAT),
    "csat_avg": Avg("score", filter=CSAT),
    "csat_satisfied": Count("pk", filter=CSAT & Q(score__gte=4)),
}


def template_list() -> QuerySet[SurveyTemplate]:
    return SurveyTemplate.objects.prefetch_related("after_outcomes").order_by("kind", "name", "pk")


def template_get(*, template_id: Any) -> SurveyTemplate:
    try:
        return SurveyTemplate.objects.get(pk=int(template_id))
    except (SurveyTemplate.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404


def responses_visible(*, user: User) -> QuerySet[SurveyResponse]:
    return visible_to(SurveyResponse.objects.all(), user)


def _figures(row: dict) -> dict:
    """NPS and CSAT of one aggregated row (None where nobody answered)."""
    nps_n, csat_n = row["nps_n"], row["csat_n"]
    return {
        "nps_n": nps_n,
        "nps": round(100 * (row["promoters"] - row["detractors"]) / nps_n) if nps_n else None,
        "promoters": row["promoters"],
        "detractors": row["detractors"],
        "csat_n": csat_n,
        "csat": round(float(row["csat_avg"]), 2) if csat_n else None,
        "csat_satisfied": round(100 * row["csat_satisfied"] / csat_n) if csat_n else None,
    }


def report_since(months: int, now: datetime | None = None) -> datetime:
    now = timezone.localtime(now or timezone.now())
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    year, month = first.year, first.month - (months - 1)
    while month <= 0:
        month += 12
        year -= 1
    return first.replace(year=year, month=month)


def survey_report(*, user: User, months: int = 12, now: datetime | None = None) -> dict[str, Any]:
    """Every figure of the reports page over the last `months` calendar months (this one included)."""
    months = months if months in PERIODS else 12
    since = report_since(months, now)
    scoped = responses_visible(user=user).filter(answered_at__gte=since)
    total = _figures(scoped.aggregate(**FIGURES))
    by_month = [
        {"month": row["month"], **_figures(row)}
        for row in scoped.annotate(month=TruncMonth("answered_at"))
        .values("month")
        .annotate(**FIGURES)
        .order_by("month")
    ]
    breakdowns = {}
    for key, (group, label) in DIMENSIONS.items():
        fields = [group] + ([label] if label else [])
        rows = scoped.values(*fields).annotate(**FIGURES).order_by(group)
        breakdowns[key] = [
            {"value": row[group], "label": row[label] if label else row[group], **_figures(row)}
            for row in rows
        ]
    invitations = visible_to(SurveyInvitation.objects.filter(sent_at__gte=since), user).aggregate(
        sent=Count("pk"), answered=Count("pk", filter=Q(answered_at__isnull=False))
    )
    rate = round(100 * invitations["answered"] / invitations["sent"]) if invitations["sent"] else None
    return {
        "months": months,
        "since": since,
        "total": total,
        "by_month": by_month,
        "breakdowns": breakdowns,
        "sent": invitations["sent"],
        "answered": invitations["answered"],
        "response_rate": rate,
    }


# --- the drill-down list ---------------------------------------------------------------------------------

GROUPS = {
    "promoters": NPS & Q(score__gte=9),
    "passives": NPS & Q(score__in=(7, 8)),
    "detractors": (NPS & Q(score__lte=6)) | (CSAT & Q(score__lte=2)),
    "satisfied": CSAT & Q(score__gte=4),
}


def response_list(*, user: User, filters: dict[str, Any]) -> QuerySet[SurveyResponse]:
    """The answers behind a figure: `filters` are cleaned by forms.ResponseFilterForm."""
    qs = responses_visible(user=user)
    if filters.get("kind"):
        qs = qs.filter(kind=filters["kind"])
    if filters.get("month"):
        start = filters["month"]
        end = (start + timedelta(days=32)).replace(day=1)
        qs = qs.filter(answered_at__gte=start, answered_at__lt=end)
    elif filters.get("since"):
        qs = qs.filter(answered_at__gte=filters["since"])
    for key, (group, _label) in DIMENSIONS.items():
        if key in filters and filters[key] is not None and filters[key] != "":
            value = filters[key]
            if value == "none":
                empty = Q(**{f"{group}__isnull": True})
                if key in TEXT_DIMENSIONS:
                    empty |= Q(**{group: ""})
                qs = qs.filter(empty)
            else:
                qs = qs.filter(**{group: value})
    if filters.get("group") in GROUPS:
        qs = qs.filter(GROUPS[filters["group"]])
    if filters.get("customer"):
        qs = qs.filter(customer_id=filters["customer"])
    if filters.get("with_comment"):
        qs = qs.exclude(comment="")
    return qs.select_related("customer", "template", "agent", "category", "ticket").order_by(
        "-answered_at", "-id"
    )


@dataclass
class ResponsePage:
    rows: list[SurveyResponse]
    next_cursor: str | None


def response_page(*, qs: QuerySet[SurveyResponse], cursor: str | None, size: int = PAGE_SIZE) -> ResponsePage:
    position = decode_cursor(cursor)
    if position is not None and isinstance(position[0], datetime):
        answered_at, pk = position
        qs = qs.filter(Q(answered_at__lt=answered_at) | Q(answered_at=answered_at, pk__lt=pk))
    rows = list(qs[: size + 1])
    has_next = len(rows) > size
    rows = rows[:size]
    return ResponsePage(rows, encode_cursor(rows[-1].answered_at, rows[-1].pk) if has_next else None)


# --- for other pages ---------------------------------------------------------------------------------------


def customer_survey_summary(*, customer) -> dict[str, Any] | None:
    """The customer's last scores and last few answers (None: never answered nor invited), in two
    queries: the scores and the count of open invitations ride on one row of the customer."""
    pending = (
        SurveyInvitation.objects.filter(
            customer=OuterRef("pk"), answered_at=None, expires_at__gt=timezone.now()
        )
        .order_by()
        .values("customer")
        .annotate(n=Count("pk"))
        .values("n")
    )
    facts = (
        Customer.objects.filter(pk=customer.pk)
        .annotate(pending=Coalesce(Subquery(pending), 0))
        .values("pending", "survey_score__last_nps", "survey_score__last_csat")
        .first()
    )
    recent = list(
        SurveyResponse.objects.filter(customer=customer)
        .select_related("template")
        .order_by("-answered_at", "-id")[:3]
    )
    if facts is None or (not recent and not facts["pending"]):  # a score comes with an answer
        return None
    score = {"last_nps": facts["survey_score__last_nps"], "last_csat": facts["survey_score__last_csat"]}
    return {"score": score, "recent": recent, "pending": facts["pending"]}


def csat_by_agent(*, user: User, since: datetime) -> dict[int, dict[str, Any]]:
    """agent id -> {"csat": mean, "n": answers} for the service figures (one GROUP BY)."""
    rows = (
        responses_visible(user=user)
        .filter(kind=SurveyKind.CSAT, answered_at__gte=since, agent__isnull=False)
        .values("agent_id")
        .annotate(n=Count("pk"), avg=Avg("score"))
    )
    return {row["agent_id"]: {"csat": round(float(row["avg"]), 2), "n": row["n"]} for row in rows}
