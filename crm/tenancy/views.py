from django.shortcuts import redirect, render

from crm.accounts.permissions import platform_admin_required


def public_home(request):
    if request.user.is_authenticated and request.user.is_superuser:
        return redirect("tenancy:list")
    return render(request, "tenancy/public_home.html")


@platform_admin_required
def tenant_list(request):
    from .models import Tenant

    return render(
        request, "tenancy/tenant_list.html", {"tenants": Tenant.objects.exclude(schema_name="public")}
    )
