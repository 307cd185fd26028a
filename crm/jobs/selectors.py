from django.db.models import QuerySet
from django.http import Http404

from crm.accounts.models import User

from .models import BackgroundJob


def job_list_for_user(*, user: User, kind_prefix: str = "") -> QuerySet[BackgroundJob]:
    """Managers and admins see every job of the tenant; sales staff only the jobs they started."""
    qs = BackgroundJob.objects.select_related("created_by")
    if kind_prefix:
        qs = qs.filter(kind__startswith=kind_prefix)
    if not user.is_manager_or_admin:
        qs = qs.filter(created_by=user)
    return qs


def job_get_for_user(*, user: User, job_id: int) -> BackgroundJob:
    try:
        return job_list_for_user(user=user).get(pk=job_id)
    except BackgroundJob.DoesNotExist:
        raise Http404
