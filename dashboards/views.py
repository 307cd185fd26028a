"""The start page of a tenant's site (URL name "home"): every role, figures within what they see."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from crm.accounts.permissions import role_required

from .selectors import dashboard_context


@role_required()
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboards/home.html", dashboard_context(user=request.user))
