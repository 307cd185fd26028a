"""Settings > Tags, for managers and admins: the list with counts, rename and colour, merge, bin."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.accounts.permissions import MANAGERS, role_required
from crm.errors import SERVICE_ERRORS, show_service_error

from . import selectors, services
from .forms import TagForm, TagMergeForm, TagSearchForm

PAGE_SIZE = 50


@role_required(*MANAGERS)
@require_GET
def tag_list(request: HttpRequest) -> HttpResponse:
    search = TagSearchForm(request.GET or None)
    q = search.cleaned_data.get("q", "").strip() if search.is_valid() else ""
    paginator = Paginator(selectors.tag_list_with_counts(search=q), PAGE_SIZE)
    paginator.count = selectors.tag_search(search=q).count()  # counted without the per-tag subqueries
    page = paginator.get_page(request.GET.get("page"))
    return render(
        request,
        "customers/tags_list.html",
        {
            "search": search,
            "page_obj": page,
            "querystring": urlencode({"q": q}) if q else "",
            "customers_url": reverse("customers:list"),
        },
    )


@role_required(*MANAGERS)
@require_http_methods(["GET", "POST"])
def tag_edit(request: HttpRequest, pk: int) -> HttpResponse:
    tag = selectors.tag_get(tag_id=pk)
    form = TagForm(request.POST or None, initial={"name": tag.name, "color": tag.color})
    if request.method == "POST" and form.is_valid():
        try:
            services.tag_update(actor=request.user, tag=tag, **form.cleaned_data)
        except SERVICE_ERRORS as error:
            show_service_error(form, error)
        else:
            messages.success(request, _("Tag “%(name)s” saved.") % {"name": tag.name})
            return redirect("customers:tags")
    return _edit_page(request, tag, form=form, merge_form=TagMergeForm(tag=tag))


def _edit_page(request, tag, *, form, merge_form, status: int = 200) -> HttpResponse:
    count = selectors.tag_list_with_counts().get(pk=tag.pk).customer_count
    return render(
        request,
        "customers/tags_edit.html",
        {"tag": tag, "form": form, "merge_form": merge_form, "customer_count": count},
        status=status,
    )


@role_required(*MANAGERS)
@require_POST
def tag_merge(request: HttpRequest, pk: int) -> HttpResponse:
    tag = selectors.tag_get(tag_id=pk)
    merge_form = TagMergeForm(request.POST, tag=tag)
    if merge_form.is_valid():
        target = merge_form.cleaned_data["target"]
        try:
            counts = services.tag_merge(actor=request.user, source=tag, target=target)
        except SERVICE_ERRORS as error:
            show_service_error(merge_form, error)
        else:
            messages.success(
                request,
                _(
                    "“%(source)s” merged into “%(target)s”: %(moved)d customers moved, "
                    "%(already)d already had it."
                )
                % {
                    "source": tag.name,
                    "target": target.name,
                    "moved": counts["moved"],
                    "already": counts["already_tagged"],
                },
            )
            return redirect("customers:tags")
    form = TagForm(initial={"name": tag.name, "color": tag.color})
    return _edit_page(request, tag, form=form, merge_form=merge_form)


@role_required(*MANAGERS)
@require_POST
def tag_delete(request: HttpRequest, pk: int) -> HttpResponse:
    tag = selectors.tag_get(tag_id=pk, binned=None)  # sent twice: already in the bin, nothing more to do
    services.tag_delete(actor=request.user, tag=tag)
    messages.success(
        request,
        _("Tag “%(name)s” moved to the recycle bin. Its customers keep it there until you restore it.")
        % {"name": tag.name},
    )
    return redirect("customers:tags")


@role_required(*MANAGERS)
@require_POST
def tag_restore(request: HttpRequest, pk: int) -> HttpResponse:
    tag = selectors.tag_get(tag_id=pk, binned=None)  # sent twice: already restored
    try:
        services.tag_restore(actor=request.user, tag=tag)
    except SERVICE_ERRORS as error:
        show_service_error(request, error)
        return redirect(reverse("customers:bin") + "#binned-tags")
    messages.success(request, _("Tag “%(name)s” restored.") % {"name": tag.name})
    return redirect("customers:tags")
