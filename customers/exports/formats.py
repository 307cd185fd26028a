"""Spreadsheet-safe cell values and the CSV / XLSX writers shared by every export.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a formula by Excel
and LibreOffice ("CSV injection"), so such text is prefixed with an apostrophe in both formats. The
import takes that apostrophe off again (customers.imports.values.unescape_formula), so an export
round-trips through an import unchanged.
"""

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
CSV_BOM = "\ufeff"
# Characters XLSX (XML) cannot hold; openpyxl refuses them.
_XLSX_ILLEGAL = re.compile(r"[\000-\010\013\014\016-\037]")


def escape_formula(value: Any) -> Any:
    """Prefix text that a spreadsheet would run as a formula with "'"; other values pass unchanged."""
    if isinstance(value, str) and value and value[0] in FORMULA_TRIGGERS:
        return "'" + value
    return value


def cell_text(value: Any) -> str:
    """A value as the text of a CSV cell (dates ISO, booleans yes/no, None empty), escaped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return escape_formula(str(value))


class CsvWriter:
    """Writes rows as CSV text in UTF-8 with a byte-order mark (so Excel shows Chinese correctly)."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.stream.write(CSV_BOM)
        self.writer = csv.writer(stream)

    def writerow(self, row: Sequence[Any]) -> None:
        self.writer.writerow([cell_text(v) for v in row])


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]], *, batch: int = 500):
    """Yield the CSV (BOM first) in pieces, for a streaming response."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    yield CSV_BOM
    writer.writerow([cell_text(v) for v in header])
    for count, row in enumerate(rows, start=1):
        writer.writerow([cell_text(v) for v in row])
        if count % batch == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate(0)
    yield buffer.getvalue()


def xlsx_value(value: Any) -> Any:
    """A value for an XLSX cell: numbers and dates stay typed; text is escaped and cleaned."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        # Excel has no time zones: write the wall-clock time of the value as given.
        return value.replace(tzinfo=None)
    if isinstance(value, int | float | Decimal | date):
        return value
    text = _XLSX_ILLEGAL.sub("", str(value))
    return escape_formula(text)


def write_xlsx(
    target, header: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str = "Customers"
) -> int:
    """Write a one-sheet workbook to `target` (a path or binary file). Returns the number of rows."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31])
    sheet.append([xlsx_value(h) for h in header])
    count = 0
    for row in rows:
        sheet.append([xlsx_value(v) for v in row])
        count += 1
    workbook.save(target)
    return count
