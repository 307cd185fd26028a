from django.http import FileResponse, Http404
from django.shortcuts import render

from crm.accounts.permissions import role_required

from .selectors import job_get_for_user


@role_required()
def job_status(request, job_id: int):
    """The job's progress bar; htmx polls this fragment every second until the job ends.

    With `?then=reload` (the bar was included with `reload_when_done=True`), the poll that sees the
    job succeed tells htmx to reload the whole page, so the page shows what the job produced."""
    job = job_get_for_user(user=request.user, job_id=job_id)
    reload_when_done = request.GET.get("then") == "reload"
    response = render(
        request, "jobs/partials/_job_progress.html", {"job": job, "reload_when_done": reload_when_done}
    )
    if reload_when_done and job.status == job.Status.SUCCEEDED:
        response["HX-Refresh"] = "true"
    return response


@role_required()
def job_download(request, job_id: int):
    job = job_get_for_user(user=request.user, job_id=job_id)
    if not job.output_file and (job.result or {}).get("files_deleted_at"):
        # past the retention period (crm.jobs.services.job_files_delete_expired): say so
        return render(request, "jobs/file_deleted.html", {"job": job}, status=410)
    if not job.output_file:
        raise Http404
    return FileResponse(
        job.output_file.open("rb"), as_attachment=True, filename=job.output_file.name.rsplit("/", 1)[-1]
    )
