"""Read an uploaded CSV or XLSX file into a header and rows of strings.

No Django models here: the functions take bytes or a binary file and return plain data, so they are
quick to test. Every problem a user can cause raises `ImportFileError` with a message for them.

Row numbers are the ones a spreadsheet shows: the header is row 1, the first data row is row 2.

Bounds (settings `IMPORT_MAX_*`) are enforced while the file is read, before anything is parsed in
full, in the web request and in the worker alike (both come through `parse_upload`): for XLSX the
expanded size of the zip's parts and their compression ratio (from the zip's directory, then again
while each part is decompressed, as a directory can lie), then rows (blank ones too), columns and
cell length; for CSV the bytes, the line length, cell length, rows and columns. A small upload
that would expand to gigabytes, or a sheet of two million blank rows, is refused with a message
naming the limit.

A CSV file is read as a stream (twice: once to judge its encoding, once to parse it a line at a
time), never held whole in memory as bytes or text; the customer import admits one of up to
MAX_CSV_UPLOAD_BYTES and settings.IMPORT_MAX_CSV_ROWS rows (issue 18: a million customers). An XLSX
workbook, which openpyxl expands in memory, and the CSV files of the other imports keep the lower
MAX_UPLOAD_BYTES and settings.IMPORT_MAX_ROWS.
"""

import codecs
import csv
import io
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import BinaryIO

from django.conf import settings
from django.utils.translation import gettext as _

# An upload's size: every XLSX workbook, and a CSV file of the other imports (loyalty balances and
# the kinds in customers.imports.kinds, which hold every row as objects), at most 20 MB; a CSV file
# of the customer import, read as a stream, at most 200 MB (about 1,000,000 rows of a dozen columns;
# its rows are bounded by settings.IMPORT_MAX_CSV_ROWS).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_CSV_UPLOAD_BYTES = 200 * 1024 * 1024
# Marks a cell whose bytes were not valid text in the file's encoding (see `decode_csv_bytes`).
UNDECODABLE = "\ufffd"
# Zip parts smaller than this are not held to the compression ratio (tiny XML compresses oddly).
RATIO_EXEMPT_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024
# What str.splitlines() ends a line at.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@dataclass(frozen=True)
class Limits:
    """The bounds of one read, from settings (`IMPORT_MAX_*`). Cells longer than any field
    accepts are reported by validation with their row and column; beyond `cell_chars` the file is
    refused as a whole."""

    rows: int
    blank_rows: int
    columns: int
    cell_chars: int
    line_chars: int
    uncompressed_bytes: int
    compression_ratio: int

    @classmethod
    def from_settings(cls, *, large_csv: bool = False) -> "Limits":
        return cls(
            rows=settings.IMPORT_MAX_CSV_ROWS if large_csv else settings.IMPORT_MAX_ROWS,
            blank_rows=settings.IMPORT_MAX_BLANK_ROWS,
            columns=settings.IMPORT_MAX_COLUMNS,
            cell_chars=settings.IMPORT_MAX_CELL_CHARS,
            line_chars=settings.IMPORT_MAX_LINE_CHARS,
            uncompressed_bytes=settings.IMPORT_MAX_UNCOMPRESSED_BYTES,
            compression_ratio=settings.IMPORT_MAX_COMPRESSION_RATIO,
        )


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):,.0f}"


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
    # Row number -> number of columns found, for rows whose width differs from the header's
    # (reported by validation as row errors; the row's cells are padded/cut to the header).
    width_errors: dict[int, int] = field(default_factory=dict)
    # For a file read whole but kept in part (an upload's first look at a CSV): its data rows.
    counted_rows: int | None = None

    @property
    def row_count(self) -> int:
        if self.estimated_rows is not None:
            return self.estimated_rows
        return self.counted_rows if self.counted_rows is not None else len(self.rows)


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


class _BoundedReader(io.RawIOBase):
    """A binary stream read at most `limit` bytes far: one byte more raises the size message. Every
    byte of a CSV file is read through it (twice: to judge the encoding, then to parse), so a file
    larger than its bound is refused after reading no more than the bound."""

    def __init__(self, stream: BinaryIO, limit: int, message: str):
        self._stream = stream
        self._left = limit
        self._message = message

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._stream.read(min(len(buffer), self._left + 1))
        if len(data) > self._left:
            raise ImportFileError(self._message)
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def _chunks(raw: io.RawIOBase) -> Iterator[bytes]:
    while chunk := raw.read(_CHUNK):
        yield chunk


@dataclass(frozen=True)
class CsvEncoding:
    name: str  # what the file is said to be in: "utf-8", "utf-8-sig" or "gb18030"
    codec: str  # what decodes it
    errors: str = "strict"  # "replace": a few broken bytes become UNDECODABLE, named by validation


def detect_csv_encoding(chunks: Iterator[bytes], again: Callable[[], Iterator[bytes]]) -> CsvEncoding:
    """The encoding of a CSV file read as `chunks` (one pass, nothing kept): strict UTF-8 (with or
    without BOM), else strict GB18030. `again()` reads the file anew for the rare second look.

    A file that is clearly UTF-8 but has a few broken bytes (one row pasted from elsewhere) is read
    with those bytes replaced by U+FFFD, so validation can name the rows instead of refusing the file.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    head = b""
    strict = True
    for chunk in chunks:
        if len(head) < 65536:
            head += chunk[: 65536 - len(head)]
            if b"\x00" in head:
                # UTF-16 text or a binary file: GB18030 would "decode" it into nonsense.
                raise ImportFileError(
                    _("The file is not UTF-8 or GB18030 text. Save it as CSV (UTF-8) and try again.")
                )
        if strict:
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                strict = False  # read on: the size bound and the NUL check still apply
    if strict:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            strict = False
    has_bom = head.startswith(codecs.BOM_UTF8)
    if strict:
        return CsvEncoding("utf-8-sig" if has_bom else "utf-8", "utf-8-sig")
    # Not strict UTF-8: count what a lenient reading replaces, and whether GB18030 reads it.
    lenient = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    gb18030 = codecs.getincrementaldecoder("gb18030")()
    gb18030_reads = True
    replaced = non_ascii = lines = broken_lines = 0
    carry = ""

    def count(text: str, final: bool) -> str:
        """Count the finished lines of `carry + text` (str.splitlines' line breaks); return the rest."""
        nonlocal lines, broken_lines
        pieces = (carry + text).splitlines(keepends=True)
        rest = ""
        if pieces and not final and (pieces[-1][-1] not in _LINE_BREAKS or pieces[-1][-1] == "\r"):
            rest = pieces.pop()  # an unfinished line, or a CR whose LF may open the next chunk
        lines += len(pieces)
        broken_lines += sum(1 for piece in pieces if UNDECODABLE in piece)
        return rest

    for chunk in again():
        text = lenient.decode(chunk)
        replaced += text.count(UNDECODABLE)
        non_ascii += len(text) - len(text.encode("ascii", "ignore"))
        carry = count(text, final=False)
        if gb18030_reads:
            try:
                gb18030.decode(chunk)
            except UnicodeDecodeError:
                gb18030_reads = False
    text = lenient.decode(b"", final=True)
    replaced += text.count(UNDECODABLE)
    non_ascii += len(text) - len(text.encode("ascii", "ignore"))
    count(text, final=True)
    if gb18030_reads:
        try:
            gb18030.decode(b"", final=True)
        except UnicodeDecodeError:
            gb18030_reads = False
    decoded_non_ascii = non_ascii - replaced
    if decoded_non_ascii > 0 and replaced < decoded_non_ascii // 4 + 1:
        return CsvEncoding("utf-8", "utf-8-sig", "replace")
    if gb18030_reads:
        return CsvEncoding("gb18030", "gb18030")
    # Neither decodes: if the broken bytes sit in one line in a hundred (a row pasted from elsewhere),
    # read it as UTF-8 and let validation name those rows; otherwise the file is in another encoding.
    if broken_lines <= max(1, lines // 100):
        return CsvEncoding("utf-8", "utf-8-sig", "replace")
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


def _found_width(cells: list[str], width: int) -> int | None:
    """The number of columns of a row whose width differs from the header's, else None. Empty cells
    after the last header column do not count (spreadsheets pad rows with them)."""
    if len(cells) < width:
        return len(cells)
    if len(cells) > width:
        for index in range(len(cells) - 1, width - 1, -1):
            if cells[index].strip():
                return index + 1
    return None


def _collect(
    records: Iterator[tuple[int, list[str]]],
    limits: Limits,
    limit: int | None = None,
    *,
    keep: int | None = None,
) -> tuple[list[str], list[tuple[int, list[str]]], dict[int, int], int]:
    """Header, non-blank data rows, the rows of the wrong width and the number of data rows; with
    `limit`, stop after that many data rows; with `keep`, read every row (every bound is checked and
    every row counted) but keep only the first `keep`. Blank rows count against
    `limits.blank_rows`, so a sheet of millions of empty rows is refused after a bounded amount of
    work."""
    headers: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    width_errors: dict[int, int] = {}
    blank = 0
    count = 0
    for row_number, cells in records:
        if len(cells) > limits.columns and any(c.strip() for c in cells[limits.columns :]):
            raise ImportFileError(
                _("Row %(row)s has more than %(max)s columns; at most %(max)s are supported.")
                % {"row": f"{row_number:,}", "max": limits.columns}
            )
        if not any(c.strip() for c in cells):
            blank += 1
            if blank > limits.blank_rows:
                raise ImportFileError(
                    _(
                        "The file has more than %(max)s blank rows (up to row %(row)s). Delete the "
                        "blank rows and upload it again."
                    )
                    % {"max": f"{limits.blank_rows:,}", "row": f"{row_number:,}"}
                )
            continue
        if headers is None:
            headers = [c.strip() for c in cells]
            while headers and not headers[-1]:
                headers.pop()
            continue
        count += 1
        if keep is None or count <= keep:
            found = _found_width(cells, len(headers))
            if found is not None:
                width_errors[row_number] = found
            rows.append((row_number, _normalise_row(cells, len(headers))))
        if limit is not None and count >= limit:
            break
        if count > limits.rows:
            raise ImportFileError(
                _("The file has more than %(max)s data rows. Split it into smaller files.")
                % {"max": f"{limits.rows:,}"}
            )
    if headers is None:
        raise ImportFileError(_("The file is empty."))
    if not count:
        raise ImportFileError(_("The file has a header row but no data rows."))
    return headers, rows, width_errors, count


def _line_too_long(limits: Limits) -> ImportFileError:
    return ImportFileError(
        _("A line of the file is longer than %(max)s characters.") % {"max": f"{limits.line_chars:,}"}
    )


def parse_csv(
    data: bytes | BinaryIO,
    limits: Limits | None = None,
    *,
    keep: int | None = None,
    max_bytes: int | None = None,
) -> ParsedFile:
    """Read a CSV file as a stream: once to judge its encoding, once to parse it, a line at a time
    (no copy of the whole file in memory, as bytes or as text). With `keep`, only the first `keep`
    rows are kept (an upload's first look: every row is still read, checked and counted).
    `max_bytes` bounds the bytes read (past it the file is refused)."""
    limits = limits or Limits.from_settings()
    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    bound = max_bytes if max_bytes is not None else MAX_UPLOAD_BYTES
    too_large = _("The file is larger than %(size)d MB. Split it into smaller files.") % {
        "size": bound // (1024 * 1024)
    }

    def raw() -> _BoundedReader:
        stream.seek(0)
        return _BoundedReader(stream, bound, too_large)

    encoding = detect_csv_encoding(_chunks(raw()), lambda: _chunks(raw()))
    text = io.TextIOWrapper(
        io.BufferedReader(raw(), _CHUNK), encoding=encoding.codec, errors=encoding.errors, newline=""
    )
    # A line may end in "\r\n": read two characters past the bound to see the whole of one that fits.
    read_size = limits.line_chars + 2
    undecodable_seen = False

    def read_line() -> str:
        nonlocal undecodable_seen
        line = text.readline(read_size)
        if len(line.rstrip("\r\n")) > limits.line_chars:
            raise _line_too_long(limits)
        if UNDECODABLE in line:
            undecodable_seen = True
        return line

    first = read_line()
    if first.startswith("\ufeff"):
        first = first[1:]
    skipped_lines = 0
    hint = first[:20].split("\n", 1)[0].strip()
    if hint.lower().startswith("sep=") and len(hint) == 5:
        # Excel's "sep=;" hint line names the delimiter; row numbers still count it.
        delimiter = hint[4]
        first = read_line()
        skipped_lines = 1
    else:
        delimiter = _sniff_delimiter(first[:4096])

    def lines() -> Iterator[str]:
        line = first
        while line:
            yield line
            line = read_line()

    # The csv module's cell limit is process-wide; set it for this read.
    csv.field_size_limit(limits.cell_chars)
    reader = csv.reader(lines(), delimiter=delimiter)
    undecodable: set[int] = set()

    def records() -> Iterator[tuple[int, list[str]]]:
        nonlocal undecodable_seen
        row_number = skipped_lines
        try:
            for cells in reader:
                row_number += 1
                if undecodable_seen:  # rare: look at this row's cells only
                    undecodable_seen = False
                    if any(UNDECODABLE in c for c in cells):
                        undecodable.add(row_number)
                yield row_number, cells
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise ImportFileError(
                    _("Row %(row)s has a cell longer than %(max)s characters.")
                    % {"row": f"{row_number + 1:,}", "max": f"{limits.cell_chars:,}"}
                )
            raise ImportFileError(
                _("Row %(row)d could not be read as CSV (%(error)s).") % {"row": row_number + 1, "error": exc}
            )

    try:
        headers, rows, width_errors, count = _collect(records(), limits, keep=keep)
    except UnicodeDecodeError:
        # The encoding was judged on these very bytes; only a file changed under us gets here.
        raise ImportFileError(
            _("The file is not UTF-8 or GB18030 text. Save it as CSV (UTF-8) and try again.")
        )
    if undecodable:  # the data rows only (not the header), and only the ones kept
        undecodable &= {number for number, _cells in rows}
    return ParsedFile(
        headers=headers,
        rows=rows,
        file_format="csv",
        encoding=encoding.name,
        undecodable_rows=undecodable,
        width_errors=width_errors,
        counted_rows=count if keep is not None else None,
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


class _BoundedPart(io.RawIOBase):
    """A zip part being decompressed, counted against the archive's budget as it is read."""

    def __init__(self, handle, archive: "_BoundedZipFile", compressed_size: int):
        self._handle = handle
        self._archive = archive
        self._read = 0
        ratio = archive.limits.compression_ratio
        self._part_limit = max(RATIO_EXEMPT_BYTES, compressed_size * ratio)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(_CHUNK):
                chunks.append(chunk)
            return b"".join(chunks)
        data = self._handle.read(min(size, _CHUNK))
        self._read += len(data)
        if self._read > self._part_limit:
            raise ImportFileError(self._archive.ratio_message())
        self._archive.spend(len(data))
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._handle.close()
        super().close()


class _BoundedZipFile(zipfile.ZipFile):
    """A zip whose parts may expand to `limits.uncompressed_bytes` all told, each large part at most
    `limits.compression_ratio` times its compressed size: checked first on the directory, then while
    reading (every read openpyxl makes goes through `open`)."""

    def __init__(self, file, limits: Limits):
        super().__init__(file)
        self.limits = limits
        self._spent = 0
        stated = 0
        for info in self.infolist():
            stated += info.file_size
            if (
                info.file_size > RATIO_EXEMPT_BYTES
                and info.file_size > info.compress_size * limits.compression_ratio
            ):
                raise ImportFileError(self.ratio_message())
        if stated > limits.uncompressed_bytes:
            raise ImportFileError(self.size_message())

    def ratio_message(self) -> str:
        return _(
            "The workbook is compressed more than %(max)s times, which real spreadsheets are not. Save it "
            "again in Excel, or as CSV, and upload it again."
        ) % {"max": self.limits.compression_ratio}

    def size_message(self) -> str:
        return _("The workbook expands to more than %(size)s MB. Split it into smaller files.") % {
            "size": _megabytes(self.limits.uncompressed_bytes)
        }

    def spend(self, size: int) -> None:
        self._spent += size
        if self._spent > self.limits.uncompressed_bytes:
            raise ImportFileError(self.size_message())

    def open(self, name, mode="r", pwd=None, *, force_zip64=False):
        handle = super().open(name, mode, pwd, force_zip64=force_zip64)
        if mode != "r":
            return handle
        info = name if isinstance(name, zipfile.ZipInfo) else self.getinfo(name)
        return _BoundedPart(handle, self, info.compress_size)


def _open_workbook(data: bytes, limits: Limits):
    """openpyxl's `load_workbook(read_only=True, data_only=True)`, reading through a bounded zip.

    `load_workbook` opens the zip itself; its `ExcelReader` is the documented step underneath
    (openpyxl 3.1), so the archive is swapped for the bounded one before anything is read.
    """
    from openpyxl.reader.excel import ExcelReader

    reader = ExcelReader(io.BytesIO(data), read_only=True, data_only=True)
    reader.archive.close()
    reader.archive = _BoundedZipFile(io.BytesIO(data), limits)
    reader.valid_files = reader.archive.namelist()
    reader.read()
    return reader.wb


def parse_xlsx(stream: BinaryIO, *, limit: int | None = None, limits: Limits | None = None) -> ParsedFile:
    """The first sheet of a workbook. With `limit` (a quick look at an upload), only that many data
    rows are read and `estimated_rows` comes from the sheet's stated size."""
    limits = limits or Limits.from_settings()
    data = stream.read()
    try:
        workbook = _open_workbook(data, limits)
    except (zipfile.BadZipFile, zlib.error, KeyError, OSError, ValueError, TypeError, EOFError) as exc:
        raise ImportFileError(
            _("The file is not a valid Excel (.xlsx) workbook (%(error)s).") % {"error": exc}
        )
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            raise ImportFileError(_("The workbook has no sheets."))
        # The stated dimension can claim 16,384 columns; rows are built no wider than one column past
        # the limit (enough to see a row that is too wide).
        stated_columns = sheet.max_column or 0
        width = min(stated_columns, limits.columns + 1) if stated_columns > 0 else limits.columns + 1
        cell_chars = limits.cell_chars
        as_text = xlsx_cell_text

        def records() -> Iterator[tuple[int, list[str]]]:
            header_width = 0  # known after the first non-blank row
            for row_number, values in enumerate(sheet.iter_rows(max_col=width, values_only=True), start=1):
                # Whole-tuple checks run in C: a blank row, or the empty cells after the header's
                # width, cost next to nothing even when the sheet pads every row to 201 cells.
                if values.count(None) == len(values):
                    yield row_number, []
                    continue
                if header_width and len(values) > header_width:
                    rest = values[header_width:]
                    if rest.count(None) == len(rest):
                        values = values[:header_width]
                cells = [v if type(v) is str else as_text(v) for v in values]
                if max(map(len, cells)) > cell_chars:
                    raise ImportFileError(
                        _("Row %(row)s has a cell longer than %(max)s characters.")
                        % {"row": f"{row_number:,}", "max": f"{cell_chars:,}"}
                    )
                if not header_width:
                    header_width = max((i + 1 for i, c in enumerate(cells) if c.strip()), default=0)
                yield row_number, cells

        headers, rows, width_errors, _count = _collect(records(), limits, limit)
        stated_rows = sheet.max_row if limit is not None else None
    except (zipfile.BadZipFile, zlib.error, KeyError, OSError, ValueError, TypeError, EOFError) as exc:
        raise ImportFileError(
            _("The file is not a valid Excel (.xlsx) workbook (%(error)s).") % {"error": exc}
        )
    finally:
        workbook.close()
    parsed = ParsedFile(headers=headers, rows=rows, file_format="xlsx", width_errors=width_errors)
    if stated_rows and len(rows) >= (limit or 0):
        parsed.estimated_rows = min(max(len(rows), stated_rows - 1), limits.rows)
    return parsed


def upload_bound(*, large_csv: bool = False) -> int:
    """The most bytes an upload may have before its format is known (the form's first check)."""
    return MAX_CSV_UPLOAD_BYTES if large_csv else MAX_UPLOAD_BYTES


def parse_upload(
    stream: BinaryIO, filename: str, *, preview_rows: int | None = None, large_csv: bool = False
) -> ParsedFile:
    """Read an uploaded file (CSV or XLSX). Raises ImportFileError for anything unreadable or
    beyond the limits (see the module's docstring).

    With `large_csv` (the customer import), a CSV file may have up to MAX_CSV_UPLOAD_BYTES and
    settings.IMPORT_MAX_CSV_ROWS rows: it is read as a stream, a line at a time. An XLSX workbook
    keeps MAX_UPLOAD_BYTES and settings.IMPORT_MAX_ROWS everywhere, as openpyxl expands it in memory.

    With `preview_rows`, an XLSX workbook is only opened and its first rows read (reading 200,000
    rows of XLSX takes long; the background check reads them all). A CSV file is always read whole
    (its encoding can only be judged on all of it, and its rows are counted), but only
    `preview_rows` rows are kept.
    """
    stream.seek(0)
    head = stream.read(_CHUNK)
    if len(head) < _CHUNK and not head.strip():
        raise ImportFileError(_("The file is empty."))
    file_format = detect_format(filename, head[:8])
    if file_format == "xlsx":
        stream.seek(0)
        data = stream.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            if large_csv:
                raise ImportFileError(
                    _(
                        "An Excel workbook may be at most %(size)d MB. Save the sheet as CSV (up to "
                        "%(csv_size)d MB and %(csv_rows)s rows) or split it into smaller files."
                    )
                    % {
                        "size": MAX_UPLOAD_BYTES // (1024 * 1024),
                        "csv_size": MAX_CSV_UPLOAD_BYTES // (1024 * 1024),
                        "csv_rows": f"{settings.IMPORT_MAX_CSV_ROWS:,}",
                    }
                )
            raise ImportFileError(
                _("The file is larger than %(size)d MB. Split it into smaller files.")
                % {"size": MAX_UPLOAD_BYTES // (1024 * 1024)}
            )
        return parse_xlsx(io.BytesIO(data), limit=preview_rows, limits=Limits.from_settings())
    return parse_csv(
        stream,
        Limits.from_settings(large_csv=large_csv),
        keep=preview_rows,
        max_bytes=upload_bound(large_csv=large_csv),
    )
