"""Import pages (managers and admins): upload -> mapping -> preview -> import.

The job id is in every URL, so each page survives a reload; while a task works, the page shows the
progress fragment, which reloads the page once the task has finished.
"""

import csv
import io

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from crm.accounts.permissions import MANAGERS, role_required
from crm.errors import SERVICE_ERRORS, show_service_error
from crm.jobs.models import BackgroundJob
from crm.jobs.selectors import job_get_for_user, job_list_for_user

from . import parsing, services
from .columns import BUILTIN_TARGETS, target_label
from .forms import ConfirmForm, MappingForm, UploadForm
from .services import import_context

ACTIVE_STAGES = (services.STAGE_VALIDATING, services.STAGE_IMPORTING)


def _import_job(request, job_id: int) -> BackgroundJob:
    job = job_get_for_user(user=request.user, job_id=job_id)
    if job.kind != services.JOB_KIND:
        raise Http404
    return job


@role_required(*MANAGERS)
@require_http_methods(["GET", "POST"])
def import_start(request):
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.import_upload(actor=request.user, uploaded_file=form.cleaned_data["file"])
        except SERVICE_ERRORS as error:
            show_service_error(form, error, field="file")
        else:
            return redirect("customers:import_mapping", job_id=job.pk)
    recent = job_list_for_user(user=request.user, kind_prefix=services.JOB_KIND)[:10]
    return render(
        request,
        "customers/import_start.html",
        {
            "form": form,
            "recent": recent,
            "max_mb": parsing.MAX_UPLOAD_BYTES // (1024 * 1024),
            "max_rows": settings.IMPORT_MAX_ROWS,
            "max_csv_mb": parsing.upload_bound(large_csv=True) // (1024 * 1024),
            "max_csv_rows": settings.IMPORT_MAX_CSV_ROWS,
        },
    )


@role_required(*MANAGERS)
def import_template(request):
    """A CSV with every importable header (UTF-8 with BOM), as a starting point."""
    context, _labels = import_context()
    headers = [str(t.label) for t in BUILTIN_TARGETS] + [spec.label for spec in context.custom_fields]
    out = io.StringIO()
    csv.writer(out).writerow(headers)
    response = HttpResponse(
        ("\ufeff" + out.getvalue()).encode("utf-8"), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = 'attachment; filename="customer-import-template.csv"'
    return response


@role_required(*MANAGERS)
@require_http_methods(["GET", "POST"])
def import_mapping(request, job_id: int):
    job = _import_job(request, job_id)
    params = job.params or {}
    if job.is_active or params.get("stage") not in (
        services.STAGE_MAPPING,
        services.STAGE_PREVIEW,
        services.STAGE_VALIDATING,
    ):
        return redirect("customers:import_preview", job_id=job.pk)
    context, _labels = import_context()
    headers = params.get("headers", [])
    initial = {f"col_{i}": key for i, key in enumerate(params.get("mapping", []))}
    initial["policy"] = params.get("policy", "update")
    initial["default_owner"] = params.get("default_owner_id")
    form = MappingForm(
        request.POST or None,
        headers=headers,
        samples=params.get("sample", []),
        custom_fields=context.custom_fields,
        initial=initial,
    )
    if request.method == "POST" and form.is_valid():
        owner = form.cleaned_data.get("default_owner")
        try:
            services.import_set_mapping(
                actor=request.user,
                job=job,
                mapping=form.mapping(),
                policy=form.cleaned_data["policy"],
                default_owner_id=owner.pk if owner else None,
            )
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            return redirect("customers:import_preview", job_id=job.pk)
    return render(request, "customers/import_mapping.html", {"job": job, "form": form, "params": params})


@role_required(*MANAGERS)
def import_preview(request, job_id: int):
    """The job's page: progress while a task works, then the preview, then the outcome."""
    job = _import_job(request, job_id)
    params = job.params or {}
    stage = params.get("stage")
    if stage == services.STAGE_MAPPING:
        return redirect("customers:import_mapping", job_id=job.pk)
    context, _labels = import_context()
    result = job.result or {}
    preview = result.get("preview") or {}
    mapping = params.get("mapping", [])
    headers = params.get("headers", [])
    mapped = [
        (header, target_label(key, context.custom_fields))
        for header, key in zip(headers, mapping, strict=False)
        if key
    ]
    return render(
        request,
        "customers/import_preview.html",
        {
            "job": job,
            "params": params,
            "stage": stage,
            "preview": preview,
            "counts": preview.get("counts", {}),
            "outcome": result if stage == services.STAGE_DONE else None,
            "errors": preview.get("errors", []),
            "errors_hidden": max(0, preview.get("errors_total", 0) - len(preview.get("errors", []))),
            "mapped": mapped,
            "confirm_form": ConfirmForm(),
            "working": job.is_active and stage in ACTIVE_STAGES,
        },
    )


@role_required(*MANAGERS)
def import_status(request, job_id: int):
    """Polled by the progress wrapper: nothing while the task works, a page reload once it is done."""
    job = _import_job(request, job_id)
    response = HttpResponse("")
    if not job.is_active:
        response["HX-Refresh"] = "true"
    return response


@role_required(*MANAGERS)
@require_POST
def import_confirm(request, job_id: int):
    job = _import_job(request, job_id)
    form = ConfirmForm(request.POST)
    form.is_valid()
    try:
        services.import_confirm(
            actor=request.user, job=job, skip_invalid=form.cleaned_data.get("skip_invalid", False)
        )
    except SERVICE_ERRORS as error:
        show_service_error(request, error)
    return redirect("customers:import_preview", job_id=job.pk)


@role_required(*MANAGERS)
@require_POST
def import_cancel(request, job_id: int):
    job = _import_job(request, job_id)
    try:
        services.import_cancel(actor=request.user, job=job)
    except SERVICE_ERRORS as error:
        show_service_error(request, error)
        return redirect("customers:import_preview", job_id=job.pk)
    messages.info(request, _("Nothing was imported. Fix the file and upload it again."))
    return redirect("customers:import_start")
