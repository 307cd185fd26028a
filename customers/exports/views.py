"""Export pages. Everyone may export the customers they can see (the list's filters apply); up to
STREAM_LIMIT rows are sent at once, more run as a background job offered for download. Managers and
admins may export all of the tenant's customer data as a zip."""

from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from crm.accounts.permissions import MANAGERS, role_required, user_has_role
from crm.jobs.selectors import job_get_for_user, job_list_for_user

from . import services

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _query_without_format(request):
    query = request.GET.copy()
    for key in ("format", "cursor", "direction"):
        query.pop(key, None)
    return query


@role_required()
@require_http_methods(["GET", "POST"])
def export(request):
    query = _query_without_format(request)
    if request.method == "POST":
        file_format = request.POST.get("format", "csv")
        if file_format not in services.FORMATS:
            file_format = "csv"
        count = services.export_count(user=request.user, query=query)
        if count > services.STREAM_LIMIT:
            job = services.export_start(actor=request.user, query=query, file_format=file_format)
            return redirect("customers:export_job", job_id=job.pk)
        filename = services.export_filename(file_format)
        if file_format == "xlsx":
            response = HttpResponse(
                services.export_xlsx_bytes(user=request.user, query=query), content_type=XLSX_TYPE
            )
        else:
            response = StreamingHttpResponse(
                services.export_stream_csv(user=request.user, query=query),
                content_type="text/csv; charset=utf-8",
            )
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    count = services.export_count(user=request.user, query=query)
    return render(
        request,
        "customers/export_start.html",
        {
            "query": query.urlencode(),
            "count": count,
            "background": count > services.STREAM_LIMIT,
            "stream_limit": services.STREAM_LIMIT,
            "can_export_all": user_has_role(request.user, MANAGERS),
            "recent": job_list_for_user(user=request.user, kind_prefix="customers.export")[:5],
        },
    )


@role_required()
def export_job(request, job_id: int):
    job = job_get_for_user(user=request.user, job_id=job_id)
    if job.kind not in (services.EXPORT_KIND, services.EXPORT_ALL_KIND):
        raise Http404
    return render(request, "customers/export_job.html", {"job": job})


@role_required(*MANAGERS)
@require_http_methods(["GET", "POST"])
def export_all(request):
    if request.method == "POST":
        job = services.export_all_start(actor=request.user)
        return redirect("customers:export_job", job_id=job.pk)
    return render(
        request,
        "customers/export_all.html",
        {"recent": job_list_for_user(user=request.user, kind_prefix=services.EXPORT_ALL_KIND)[:5]},
    )
