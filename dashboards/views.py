"""The start page of a tenant's site (URL name "home"): every role, figures within what they see, kept
in the reports' cache like a report (dashboards.reports, "home"): on a big company's first visit of
the day, the day before's figures at once, labelled "as of", while they are brought up to date."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from crm.accounts.permissions import role_required
from crm.reportcache import as_of, cached, poll_answer


@role_required()
def home(request: HttpRequest) -> HttpResponse:
    shown = cached("home", request.user, {})
    if (answer := poll_answer(request, shown)) is not None:
        return answer
    return render(request, "dashboards/home.html", {**shown.value, **as_of(request, shown)})
