"""Pages of the surveys. Thin: check the role, parse with a form, call one service or selector.

Reports and the responses list are for every role (sales see their own customers' answers); the
template settings for admins; the bulk send for managers and admins. The answer page is public (no
sign-in) on the tenant's site: a link of another tenant is not found, a changed one is refused, an
expired or answered one says so, and nothing is written for any of them.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from crm.accounts.permissions import ADMINS, ALL_ROLES, MANAGERS, role_required
from crm.errors import SERVICE_ERRORS, show_service_error
from segmentation.selectors import segment_labels

from . import forms, selectors, services
from .models import SurveyKind

# --- reports ----------------------------------------------------------------------------------------------


def _labels() -> dict:
    labels = segment_labels()
    return {"segment": dict(labels["segments"]), "stage": dict(labels["stages"])}


@role_required(*ALL_ROLES)
@require_GET
def reports(request: HttpRequest) -> HttpResponse:
    try:
        months = int(request.GET.get("months", "12")[:2])
    except ValueError:
        months = 12
    report = selectors.survey_report(user=request.user, months=months)
    labels = _labels()
    from interactions.labels import Channel as InteractionChannel
    from interactions.service.models import Channel as TicketChannel

    channel_labels = {**dict(InteractionChannel.choices), **dict(TicketChannel.choices)}
    for row in report["by_month"]:
        row["query"] = "&" + urlencode({"month": timezone.localtime(row["month"]).strftime("%Y-%m")})
    for key, rows in report["breakdowns"].items():
        for row in rows:
            if key in labels:
                row["label"] = labels[key].get(row["value"], row["value"])
            elif key == "channel":
                row["label"] = channel_labels.get(row["value"], row["value"])
            row["query"] = "&" + urlencode({key: "none" if row["value"] in (None, "") else row["value"]})
    titles = {
        "segment": _("By RFM segment"),
        "stage": _("By lifecycle stage"),
        "agent": _("By agent"),
        "channel": _("By channel"),
        "category": _("By ticket category"),
    }
    sections = [(key, titles[key], report["breakdowns"][key]) for key in titles]
    comments = selectors.response_page(
        qs=selectors.response_list(
            user=request.user, filters={"since": report["since"], "with_comment": True}
        ),
        cursor=None,
        size=10,
    )
    return render(
        request,
        "surveys/reports.html",
        {
            "report": report,
            "periods": selectors.PERIODS,
            "comments": comments.rows,
            "sections": sections,
        },
    )


@role_required(*ALL_ROLES)
@require_GET
def responses(request: HttpRequest) -> HttpResponse:
    form = forms.ResponseFilterForm(request.GET)
    form.is_valid()
    filters = {k: v for k, v in form.cleaned_data.items() if v not in (None, "", False) and k != "cursor"}
    months = filters.pop("months", None)
    if "month" not in filters and (months or "customer" not in filters):
        # a figure's answers cover the report's period; one customer's answers go back to the start
        filters["since"] = selectors.report_since(months or 12)
    page = selectors.response_page(
        qs=selectors.response_list(user=request.user, filters=filters), cursor=form.cleaned_data.get("cursor")
    )
    query = request.GET.copy()
    query.pop("cursor", None)
    return render(
        request,
        "surveys/responses.html",
        {
            "page": page,
            "query": query.urlencode(),
            # what the user asked for, as typed (bounded by the form), for the "Filtered" line
            "filters": {k: str(v)[:40] for k, v in query.items() if k in form.fields and v},
            "kinds": dict(SurveyKind.choices),
        },
    )


# --- settings (admins) -------------------------------------------------------------------------------------


def _template_values(form: forms.TemplateForm) -> dict:
    return dict(form.cleaned_data)


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def settings_page(request: HttpRequest) -> HttpResponse:
    form = forms.TemplateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.template_save(actor=request.user, **_template_values(form))
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Survey template added."))
            return redirect("surveys:settings")
    return render(request, "surveys/settings.html", {"templates": selectors.template_list(), "form": form})


@role_required(*ADMINS)
@require_http_methods(["GET", "POST"])
def template_edit(request: HttpRequest, pk: int) -> HttpResponse:
    template = selectors.template_get(template_id=pk)
    form = forms.TemplateForm(request.POST or None, initial=forms.TemplateForm.initial_from(template))
    if request.method == "POST" and form.is_valid():
        try:
            services.template_save(actor=request.user, template=template, **_template_values(form))
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Survey template saved."))
            return redirect("surveys:settings")
    return render(request, "surveys/template_edit.html", {"template": template, "form": form})


# --- bulk send (managers) ---------------------------------------------------------------------


@role_required(*MANAGERS)
@require_http_methods(["GET", "POST"])
def bulk_send(request: HttpRequest) -> HttpResponse:
    from crm.jobs.models import BackgroundJob

    form = forms.BulkSendForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.bulk_send_start(
                actor=request.user,
                template=form.cleaned_data["template"],
                segment=form.cleaned_data["segment"],
            )
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            return redirect(reverse("surveys:bulk_send") + f"?job={job.pk}")
    job = None
    raw = request.GET.get("job", "")
    if raw.isdigit() and len(raw) < 12:
        job = BackgroundJob.objects.filter(pk=int(raw), kind=services.BULK_KIND).first()
    return render(request, "surveys/bulk_send.html", {"form": form, "job": job})


# --- the public answer page ---------------------------------------------------------------------


def _problem(request: HttpRequest, reason: str, status: int, language: str | None = None) -> HttpResponse:
    with translation.override(language or translation.get_language()):
        return render(request, "surveys/link_problem.html", {"reason": reason}, status=status)


@require_http_methods(["GET", "POST"])
def answer(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = services.invitation_from_token(token)
    except services.LinkNotFound:
        raise Http404
    except services.LinkTampered:
        return _problem(request, "tampered", 400)
    language = invitation.language
    state = services.invitation_state(invitation)
    if not state.ok:
        if state.reason == "answered" and request.GET.get("done") == "1":
            return _problem(request, "thanks", 200, language)
        return _problem(request, state.reason, 410 if state.reason == "expired" else 409, language)
    template = invitation.template
    with translation.override(language):
        form = forms.AnswerForm(request.POST or None, kind=template.kind, ask_comment=template.ask_comment)
        if request.method == "POST" and form.is_valid():
            if form.cleaned_data.get("website"):
                # a bot filled the hidden field: answer as if it worked, write nothing
                return _problem(request, "thanks", 200, language)
            try:
                services.response_submit(
                    invitation=invitation,
                    score=form.cleaned_data["score"],
                    comment=form.cleaned_data.get("comment", ""),
                )
            except services.LinkRefused as error:
                return _problem(request, error.code or "answered", 409, language)
            except SERVICE_ERRORS as error:
                show_service_error(form, error)
            else:
                return redirect(reverse("surveys:answer", kwargs={"token": token}) + "?done=1")
        low, high = template.score_range
        return render(
            request,
            "surveys/answer.html",
            {
                "form": form,
                "question": template.question(language),
                "kind": template.kind,
                "low": low,
                "high": high,
            },
            status=400 if request.method == "POST" else 200,
        )
