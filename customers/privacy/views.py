"""Personal-data requests for one customer (admins): the page, the JSON export, the erasure."""

import json

from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from crm.accounts.permissions import ADMINS, role_required
from crm.errors import SERVICE_ERRORS, show_service_error
from customers.registry import registry
from customers.selectors import customer_get_for_user, customer_visible

from . import services
from .forms import EraseForm


def _page(request, customer, form, status=200):
    return render(
        request,
        "customers/customer_privacy.html",
        {"customer": customer, "form": form, "providers": registry.sorted_personal_data()},
        status=status,
    )


@role_required(*ADMINS, visible=customer_visible)
@require_GET
def customer_privacy(request, pk: int):
    customer = customer_get_for_user(user=request.user, customer_id=pk)
    return _page(request, customer, EraseForm())


@role_required(*ADMINS, visible=customer_visible)
@require_POST
def customer_privacy_export(request, pk: int):
    customer = customer_get_for_user(user=request.user, customer_id=pk)
    document = services.customer_personal_data_export(actor=request.user, customer=customer)
    body = json.dumps(document, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = (
        f'attachment; filename="customer-{customer.pk}-personal-data-{stamp}.json"'
    )
    response["Cache-Control"] = "no-store"
    return response


@role_required(*ADMINS, visible=customer_visible)
@require_POST
def customer_privacy_erase(request, pk: int):
    customer = customer_get_for_user(user=request.user, customer_id=pk)
    form = EraseForm(request.POST)
    if form.is_valid():
        try:
            services.customer_erase(
                actor=request.user, customer=customer, confirmation=form.cleaned_data["confirmation"]
            )
        except SERVICE_ERRORS as exc:
            show_service_error(form, exc)
        else:
            messages.success(
                request, _("The customer's personal data has been erased. Their orders are kept.")
            )
            return redirect("customers:detail", pk=customer.pk)
    return _page(request, customer, form)
