"""Read an uploaded CSV or XLSX file into a header and rows of strings.

No Django models here: the functions take bytes or a binary file and return plain data, so they are
quick to test. Every problem a user can cause raises `ImportFileError` with a message for them.

Row numbers are the ones a spreadsheet shows: the header is row 1, the first data row is row 2.
"""

import codecs
import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import BinaryIO

from django.utils.translation import gettext as _

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_DATA_ROWS = 200_000
MAX_COLUMNS = 200
# Larger than any field accepts, so an over-long cell is reported by validation (with its row and
# column) rather than breaking the parser; beyond this the file is refused as a whole.
MAX_CELL_CHARS = 1_000_000
# Marks a cell whose bytes were not valid text in the file's encoding (see `decode_csv_bytes`).
UNDECODABLE = "\ufffd"

csv.field_size_limit(MAX_CELL_CHARS)


class ImportFileError(Exception):
    """The file as a whole cannot be read; `message` is meant for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class ParsedFile:
    headers: list[str]
    # (row number, cells) for every non-blank data row, cells padded/truncated to len(headers)
    rows: list[tuple[int, list[str]]]
    file_format: str  # "csv" or "xlsx"
    encoding: str = ""  # for CSV: "utf-8", "utf-8-sig" or "gb18030"
    # Row numbers containing bytes that were not valid in the file's encoding.
    undecodable_rows: set[int] = field(default_factory=set)
    # For a partly read workbook: the number of rows the sheet says it has.
    estimated_rows: int | None = None

    @property
    def row_count(self) -> int:
        return self.estimated_rows if self.estimated_rows is not None else len(self.rows)


def detect_format(filename: str, head: bytes) -> str:
    """ "xlsx" or "csv", from the content first (an XLSX file is a zip), then the name."""
    name = (filename or "").lower()
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportFileError(
            _("Old Excel files (.xls) are not supported. Save the sheet as .xlsx or CSV and upload it again.")
        )
    if name.endswith((".xlsx", ".xlsm")):
        raise ImportFileError(_("The file is not a valid Excel (.xlsx) workbook."))
    if name.endswith(".xls"):
        raise ImportFileError(
            _("Old Excel files (.xls) are not supported. Save the sheet as .xlsx or CSV and upload it again.")
        )
    return "csv"


def decode_csv_bytes(data: bytes) -> tuple[str, str]:
    """Decode a CSV file: strict UTF-8 (with or without BOM), else strict GB18030.

    A file that is clearly UTF-8 but has a few broken bytes (one row pasted from elsewhere) is decoded
    with those bytes replaced by U+FFFD, so validation can name the rows instead of refusing the file.
    Returns (text, encoding).
    """
    if b"\x00" in data[:65536]:
        # UTF-16 text or a binary file: GB18030 would "decode" it into nonsense.
        raise ImportFileError(
            _("The file is not UTF-8 or GB18030 text. Save it as CSV (UTF-8) and try again.")
        )
    try:
        text = data.decode("utf-8-sig")
        return text, "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"
    except UnicodeDecodeError:
        pass
    lenient = data.decode("utf-8-sig", errors="replace")
    replaced = lenient.count(UNDECODABLE)
    decoded_non_ascii = sum(1 for ch in lenient if ord(ch) > 127) - replaced
    if decoded_non_ascii > 0 and replaced < decoded_non_ascii // 4 + 1:
        return lenient, "utf-8"
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError:
        pass
    # Neither decodes: if the broken bytes sit in one line in a hundred (a row pasted from elsewhere),
    # read it as UTF-8 and let validation name those rows; otherwise the file is in another encoding.
    lines = lenient.splitlines()
    broken_lines = sum(1 for line in lines if UNDECODABLE in line)
    if broken_lines <= max(1, len(lines) // 100):
        return lenient, "utf-8"
    raise ImportFileError(_("The file is not UTF-8 or GB18030 text. Save it as CSV (UTF-8) and try again."))


def _sniff_delimiter(sample: str) -> str:
    first_line = sample.split("\n", 1)[0]
    counts = {d: first_line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def _normalise_row(cells: list[str], width: int) -> list[str]:
    if len(cells) < width:
        return [c.strip() for c in cells] + [""] * (width - len(cells))
    return [c.strip() for c in cells[:width]]


def _collect(
    records: Iterator[tuple[int, list[str]]], limit: int | None = None
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and non-blank data rows; with `limit`, stop after that many data rows."""
    headers: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for row_number, cells in records:
        if headers is None:
            if not any(c.strip() for c in cells):
                continue
            headers = [c.strip() for c in cells]
            while headers and not headers[-1]:
                headers.pop()
            if len(headers) > MAX_COLUMNS:
                raise ImportFileError(
                    _("The file has %(count)d columns; at most %(max)d are supported.")
                    % {"count": len(headers), "max": MAX_COLUMNS}
                )
            continue
        if not any(c.strip() for c in cells):
            continue
        rows.append((row_number, _normalise_row(cells, len(headers))))
        if limit is not None and len(rows) >= limit:
            break
        if len(rows) > MAX_DATA_ROWS:
            raise ImportFileError(
                _("The file has more than %(max)s data rows. Split it into smaller files.")
                % {"max": f"{MAX_DATA_ROWS:,}"}
            )
    if headers is None:
        raise ImportFileError(_("The file is empty."))
    if not rows:
        raise ImportFileError(_("The file has a header row but no data rows."))
    return headers, rows


def parse_csv(data: bytes) -> ParsedFile:
    text, encoding = decode_csv_bytes(data)
    if text.startswith("\ufeff"):
        text = text[1:]
    skipped_lines = 0
    first_line = text[:20].split("\n", 1)[0].strip()
    if first_line.lower().startswith("sep=") and len(first_line) == 5:
        # Excel's "sep=;" hint line names the delimiter; row numbers still count it.
        delimiter = first_line[4]
        text = text.split("\n", 1)[1] if "\n" in text else ""
        skipped_lines = 1
    else:
        delimiter = _sniff_delimiter(text[:4096])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)

    def records() -> Iterator[tuple[int, list[str]]]:
        row_number = skipped_lines
        try:
            for cells in reader:
                row_number += 1
                yield row_number, cells
        except csv.Error as exc:
            raise ImportFileError(
                _("Row %(row)d could not be read as CSV (%(error)s).") % {"row": row_number + 1, "error": exc}
            )

    headers, rows = _collect(records())
    undecodable = (
        {number for number, cells in rows if any(UNDECODABLE in c for c in cells)}
        if UNDECODABLE in text
        else set()
    )
    return ParsedFile(
        headers=headers, rows=rows, file_format="csv", encoding=encoding, undecodable_rows=undecodable
    )


def xlsx_cell_text(value) -> str:
    """A cell value from openpyxl as the text a user would have typed."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, float):
        # Phone numbers and ids typed into Excel come back as floats: 13800138000.0
        if value.is_integer() and abs(value) < 1e17:
            return str(int(value))
        return format(Decimal(repr(value)).normalize(), "f")
    if isinstance(value, int):
        return str(value)
    return str(value)


def parse_xlsx(stream: BinaryIO, *, limit: int | None = None) -> ParsedFile:
    """The first sheet of a workbook. With `limit` (a quick look at an upload), only that many data
    rows are read and `estimated_rows` comes from the sheet's stated size."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(stream, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
        raise ImportFileError(
            _("The file is not a valid Excel (.xlsx) workbook (%(error)s).") % {"error": exc}
        )
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            raise ImportFileError(_("The workbook has no sheets."))

        def records() -> Iterator[tuple[int, list[str]]]:
            for row_number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                yield row_number, [xlsx_cell_text(v) for v in values[: MAX_COLUMNS + 1]]

        headers, rows = _collect(records(), limit)
        stated_rows = sheet.max_row if limit is not None else None
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
        raise ImportFileError(
            _("The file is not a valid Excel (.xlsx) workbook (%(error)s).") % {"error": exc}
        )
    finally:
        workbook.close()
    parsed = ParsedFile(headers=headers, rows=rows, file_format="xlsx")
    if stated_rows and len(rows) >= (limit or 0):
        parsed.estimated_rows = max(len(rows), stated_rows - 1)
    return parsed


def parse_upload(stream: BinaryIO, filename: str, *, preview_rows: int | None = None) -> ParsedFile:
    """Read an uploaded file (CSV or XLSX). Raises ImportFileError for anything unreadable.

    With `preview_rows`, an XLSX workbook is only opened and its first rows read (reading 200,000
    rows of XLSX takes long; the background check reads them all). A CSV file is always read whole:
    that is quick, and its encoding can only be judged on all of it.
    """
    stream.seek(0)
    data = stream.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImportFileError(
            _("The file is larger than %(size)d MB. Split it into smaller files.")
            % {"size": MAX_UPLOAD_BYTES // (1024 * 1024)}
        )
    if not data.strip():
        raise ImportFileError(_("The file is empty."))
    file_format = detect_format(filename, data[:8])
    if file_format == "xlsx":
        return parse_xlsx(io.BytesIO(data), limit=preview_rows)
    return parse_csv(data)
