from django.http import FileResponse, Http404
from django.shortcuts import render

from crm.accounts.permissions import role_required

from .selectors import job_get_for_user


@role_required()
def job_status(request, job_id: int):
    """The job's progress bar; htmx polls this fragment every second until the job ends."""
    job = job_get_for_user(user=request.user, job_id=job_id)
    return render(request, "jobs/partials/_job_progress.html", {"job": job})


@role_required()
def job_download(request, job_id: int):
    job = job_get_for_user(user=request.user, job_id=job_id)
    if not job.output_file:
        raise Http404
    return FileResponse(
        job.output_file.open("rb"), as_attachment=True, filename=job.output_file.name.rsplit("/", 1)[-1]
    )
