from django.shortcuts import render
from django.utils import translation
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
        if tenant.status == tenant.Status.ACTIVE:
            return None
        # These pages are answered before sessions and LocaleMiddleware run: they speak the company's
        # language (its users read it), not whatever language the worker process last activated.
        if tenant.status == tenant.Status.DELETED:
            template, status = "tenancy/tenant_deleted.html", 410
        elif tenant.status == tenant.Status.SUSPENDED:
            template, status = "tenancy/tenant_suspended.html", 403
        else:
            template, status = "tenancy/tenant_not_ready.html", 503
        with translation.override(tenant.default_language or None):
            response = render(request, template, {"tenant": tenant}, status=status)
            response.headers.setdefault("Content-Language", translation.get_language())
        return response
