"""Every report table can be downloaded as CSV or XLSX (`?export=csv|xlsx` on the report's own URL):
the same rows the page shows, formula-escaped by the shared export writers. Reports are small
(at most a few hundred rows), so the file is built in the request."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from customers.exports.formats import csv_lines, write_xlsx

FORMATS = ("csv", "xlsx")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def wanted(request) -> str | None:
    value = request.GET.get("export")
    return value if value in FORMATS else None


def table_response(fmt: str, name: str, header: Sequence[Any], rows: Sequence[Sequence[Any]]):
    stamp = timezone.localdate().isoformat()
    filename = f"{name}-{stamp}.{fmt}"
    header = [str(h) for h in header]
    if fmt == "csv":
        response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    else:
        buffer = io.BytesIO()
        write_xlsx(buffer, header, rows, title=name)
        response = HttpResponse(buffer.getvalue(), content_type=XLSX_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def export_query(request, fmt: str) -> str:
    params = request.GET.copy()
    params["export"] = fmt
    params.pop("cursor", None)
    return params.urlencode()
