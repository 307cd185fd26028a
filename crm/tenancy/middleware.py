from django.shortcuts import render
from django_tenants.middleware.main import TenantMainMiddleware
from django_tenants.utils import get_public_schema_name


class TenantMiddleware(TenantMainMiddleware):
    """Routes the request to its tenant's schema and stops requests to tenants that are not active.

    A suspended tenant's users get a clear page and cannot log in; its data is untouched. A tenant
    still being provisioned answers "being set up" rather than half-migrated pages.
    """

    def process_request(self, request):
        response = super().process_request(request)
        if response is not None:
            return response
        tenant = getattr(request, "tenant", None)
        if tenant is None or tenant.schema_name == get_public_schema_name():
            return None
        if tenant.status == tenant.Status.DELETED:
            return render(request, "tenancy/tenant_deleted.html", {"tenant": tenant}, status=410)
        if tenant.status == tenant.Status.SUSPENDED:
            return render(request, "tenancy/tenant_suspended.html", {"tenant": tenant}, status=403)
        if tenant.status != tenant.Status.ACTIVE:
            return render(request, "tenancy/tenant_not_ready.html", {"tenant": tenant}, status=503)
        return None
