"""Uploads that are small but expand hugely (zip bombs, millions of blank rows, giant dimensions,
endless lines) are refused while reading, with a message naming the limit, before any full parse;
rows of the wrong width are row errors. Every bomb is generated here, small; none is committed."""

import io
import time
import zipfile

import pytest
from openpyxl import Workbook

from customers.imports import parsing


def xlsx_bytes(rows) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def rewrite_xlsx(data: bytes, replace: dict[str, bytes]) -> bytes:
    """The workbook with some parts replaced (highly compressible ones, lying dimensions, ...)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for info in source.infolist():
            target.writestr(info.filename, replace.get(info.filename, source.read(info.filename)))
        for name, content in replace.items():
            if name not in source.namelist():
                target.writestr(name, content)
    return out.getvalue()


SHEET_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
)


def sheet_xml(rows: bytes, dimension: bytes = b"A1:B3") -> bytes:
    return (
        SHEET_HEAD + b'<dimension ref="' + dimension + b'"/><sheetData>' + rows + b"</sheetData></worksheet>"
    )


def inline_row(number: int, *values: str) -> bytes:
    cells = b"".join(
        f'<c r="{chr(65 + i)}{number}" t="inlineStr"><is><t>{v}</t></is></c>'.encode()
        for i, v in enumerate(values)
    )
    return f'<row r="{number}">'.encode() + cells + b"</row>"


def shared_strings_bomb(expanded_bytes: int) -> bytes:
    """A valid workbook whose shared strings part expands to `expanded_bytes` of one letter."""
    base = xlsx_bytes([["name"], ["Ann"]])
    text = b"a" * expanded_bytes
    strings = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1">'
        b"<si><t>" + text + b"</t></si></sst>"
    )
    return rewrite_xlsx(base, {"xl/sharedStrings.xml": strings})


def refused(data: bytes, name: str = "bomb.xlsx", **kwargs) -> str:
    started = time.perf_counter()
    with pytest.raises(parsing.ImportFileError) as caught:
        parsing.parse_upload(io.BytesIO(data), name, **kwargs)
    assert time.perf_counter() - started < 5
    return caught.value.message


def test_a_highly_compressed_shared_strings_part_is_refused_at_the_defaults():
    data = shared_strings_bomb(40 * 1024 * 1024)  # ~40 KB on disk, 40 MB expanded: ratio ~1000
    assert len(data) < 100_000
    for preview_rows in (None, 5):  # the web request's quick look and the worker's full read
        assert "compressed more than 100 times" in refused(data, preview_rows=preview_rows)


def test_the_expanded_size_is_bounded(settings):
    settings.IMPORT_MAX_COMPRESSION_RATIO = 100_000  # only the size limit is left to catch it
    settings.IMPORT_MAX_UNCOMPRESSED_BYTES = 5 * 1024 * 1024
    message = refused(shared_strings_bomb(8 * 1024 * 1024))
    assert "expands to more than 5 MB" in message


def test_the_expanded_size_is_also_counted_while_reading(settings):
    """The zip's directory is within the limit, but reading the parts adds up beyond it (openpyxl
    reads the sheet twice): the running count stops it."""
    data = xlsx_bytes([["name", "note"], *[[f"Customer {i}", "x" * 50] for i in range(3000)]])
    stated = sum(info.file_size for info in zipfile.ZipFile(io.BytesIO(data)).infolist())
    settings.IMPORT_MAX_UNCOMPRESSED_BYTES = stated + 10
    settings.IMPORT_MAX_COMPRESSION_RATIO = 100_000
    parsing.parse_upload(io.BytesIO(data), "ok.xlsx", preview_rows=5)  # a quick look fits
    assert "expands to more than" in refused(data)


def test_millions_of_blank_rows_are_refused_after_a_bounded_amount_of_work(settings):
    settings.IMPORT_MAX_BLANK_ROWS = 1000
    rows = inline_row(1, "name", "city") + inline_row(2, "Ann", "Paris")
    rows += b"".join(f'<row r="{n}"/>'.encode() for n in range(3, 20_003))
    data = rewrite_xlsx(xlsx_bytes([["x"]]), {"xl/worksheets/sheet1.xml": sheet_xml(rows, b"A1:B20002")})
    assert "more than 1,000 blank rows" in refused(data)
    assert "more than 1,000 blank rows" in refused(data, preview_rows=5)


def test_a_gap_of_a_million_rows_counts_as_blank_rows():
    rows = inline_row(1, "name") + inline_row(2, "Ann") + inline_row(1_048_576, "Bob")
    data = rewrite_xlsx(xlsx_bytes([["x"]]), {"xl/worksheets/sheet1.xml": sheet_xml(rows, b"A1:A1048576")})
    assert "more than 100,000 blank rows" in refused(data)


def test_a_huge_stated_dimension_does_not_build_huge_rows():
    rows = inline_row(1, "name", "city") + inline_row(2, "Ann", "Paris") + inline_row(3, "Bob", "Rome")
    data = rewrite_xlsx(xlsx_bytes([["x"]]), {"xl/worksheets/sheet1.xml": sheet_xml(rows, b"A1:XFD1048576")})
    started = time.perf_counter()
    parsed = parsing.parse_upload(io.BytesIO(data), "wide.xlsx", preview_rows=1)
    full = parsing.parse_upload(io.BytesIO(data), "wide.xlsx")
    assert time.perf_counter() - started < 2
    assert parsed.headers == ["name", "city"] and full.rows == [(2, ["Ann", "Paris"]), (3, ["Bob", "Rome"])]
    assert parsed.estimated_rows == 200_000  # the stated 1,048,576 rows, capped at the limit


def test_too_many_columns_and_too_long_cells(settings):
    settings.IMPORT_MAX_COLUMNS = 5
    settings.IMPORT_MAX_CELL_CHARS = 100
    wide = xlsx_bytes([["a", "b"], ["1", "2", "", "", "", "x"]])
    assert "Row 2 has more than 5 columns" in refused(wide)
    assert "Row 2 has more than 5 columns" in refused(b"a,b\n1,2,3,4,5,6,7\n", "a.csv")
    assert "Row 1 has more than 5 columns" in refused(b"a,b,c,d,e,f\n1\n", "a.csv")
    assert "cell longer than 100 characters" in refused(xlsx_bytes([["a"], ["x" * 101]]))
    assert "Row 3 has a cell longer than 100 characters" in refused(
        ("a\nok\n" + "x" * 101 + "\n").encode(), "a.csv"
    )


def test_csv_lines_rows_and_blank_rows_are_bounded(settings):
    settings.IMPORT_MAX_LINE_CHARS = 1000
    assert "longer than 1,000 characters" in refused(b"name\n" + b"," * 5000 + b"\n", "a.csv")
    settings.IMPORT_MAX_BLANK_ROWS = 10
    assert "more than 10 blank rows" in refused(b"name\nAnn\n" + b"\n" * 11 + b"Bob\n", "a.csv")
    assert "more than 10 blank rows" in refused(b"name\nAnn\n" + b",\n" * 11, "a.csv")
    settings.IMPORT_MAX_ROWS = 2
    assert "more than 2 data rows" in refused(xlsx_bytes([["name"], ["a"], ["b"], ["c"]]))


def test_a_real_workbook_passes_the_bounds():
    data = xlsx_bytes([["name", "city"], *[[f"客户 {i}", "上海"] for i in range(2000)]])
    parsed = parsing.parse_upload(io.BytesIO(data), "ok.xlsx")
    assert parsed.row_count == 2000 and not parsed.width_errors


def test_rows_of_the_wrong_width_are_recorded():
    parsed = parsing.parse_upload(
        io.BytesIO(b"name,city,phone\nAnn,Paris\nBob,Rome,1,extra\nCy,Oslo,2,\n"), "a.csv"
    )
    assert parsed.width_errors == {2: 2, 3: 4}  # a trailing empty cell is padding, not a column
    assert parsed.rows[0][1] == ["Ann", "Paris", ""]
    workbook = xlsx_bytes([["name", "city"], ["Ann", "Paris"], ["Bob", "Rome", "extra"]])
    assert parsing.parse_upload(io.BytesIO(workbook), "a.xlsx").width_errors == {3: 3}
