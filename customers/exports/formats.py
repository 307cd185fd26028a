"""Spreadsheet-safe cell values and the CSV / XLSX writers shared by every export.

Text a spreadsheet would run as a formula ("CSV injection", the rule is crm.spreadsheets') is prefixed
with an apostrophe in CSV; the import takes it off again, so an export round-trips through an import
unchanged. XLSX text is written as string cells, which a spreadsheet never runs, so it keeps its text as
it is (a phone number `+8613912345679` stays exactly that in both formats).
"""

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any

from crm.spreadsheets import escape_formula

__all__ = ["CSV_BOM", "CsvWriter", "cell_text", "csv_lines", "escape_formula", "write_xlsx", "xlsx_value"]

CSV_BOM = "\ufeff"
# Characters XLSX (XML) cannot hold; openpyxl refuses them.
_XLSX_ILLEGAL = re.compile(r"[\000-\010\013\014\016-\037]")


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
    """A value for an XLSX cell: numbers and dates stay typed; text is cleaned (`write_xlsx` stores it
    as a string cell, so it needs no formula prefix)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        # Excel has no time zones: write the wall-clock time of the value as given.
        return value.replace(tzinfo=None)
    if isinstance(value, int | float | Decimal | date):
        return value
    return _XLSX_ILLEGAL.sub("", str(value))


def write_xlsx(
    target, header: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str = "Customers"
) -> int:
    """Write a one-sheet workbook to `target` (a path or binary file). Returns the number of rows."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31])

    def cells(values: Sequence[Any]) -> list:
        out = []
        for value in map(xlsx_value, values):
            if isinstance(value, str):
                # openpyxl reads text starting with "=" as a formula; a string cell is only ever text
                value = WriteOnlyCell(sheet, value=value)
                value.data_type = "s"
            out.append(value)
        return out

    sheet.append(cells(header))
    count = 0
    for row in rows:
        sheet.append(cells(row))
        count += 1
    workbook.save(target)
    return count
