"""Reading uploaded files and guessing the column mapping (no database needed for most of these)."""

import io

import pytest
from openpyxl import Workbook

from customers.imports import columns, parsing, values
from customers.imports.values import CellError

CHINESE_CSV = "姓名,手机号,邮箱,城市,性别,生日\n王小明,138 0013 8000,wang@example.com,上海,男,1990-05-01\n"


def xlsx_bytes(rows) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_utf8_csv_is_read():
    parsed = parsing.parse_upload(io.BytesIO(CHINESE_CSV.encode("utf-8")), "a.csv")
    assert parsed.encoding == "utf-8"
    assert parsed.headers == ["姓名", "手机号", "邮箱", "城市", "性别", "生日"]
    assert parsed.rows == [(2, ["王小明", "138 0013 8000", "wang@example.com", "上海", "男", "1990-05-01"])]


def test_utf8_with_bom_is_read_and_the_bom_is_not_part_of_the_first_header():
    parsed = parsing.parse_upload(io.BytesIO(CHINESE_CSV.encode("utf-8-sig")), "a.csv")
    assert parsed.encoding == "utf-8-sig"
    assert parsed.headers[0] == "姓名"


def test_gb18030_csv_from_chinese_excel_is_read():
    parsed = parsing.parse_upload(io.BytesIO(CHINESE_CSV.encode("gb18030")), "客户.csv")
    assert parsed.encoding == "gb18030"
    assert parsed.headers[0] == "姓名"
    assert parsed.rows[0][1][0] == "王小明"


def test_a_file_in_neither_encoding_is_refused_with_a_clear_message():
    data = "name,city\nJosé,São Paulo\n".encode("cp1252") + b"\x80\xff\n"
    with pytest.raises(parsing.ImportFileError, match="not UTF-8 or GB18030"):
        parsing.parse_upload(io.BytesIO(data), "latin.csv")


def test_utf16_text_is_refused():
    with pytest.raises(parsing.ImportFileError, match="not UTF-8 or GB18030"):
        parsing.parse_upload(io.BytesIO("name\nAnn\n".encode("utf-16")), "u16.csv")


def test_a_utf8_file_with_one_broken_row_names_that_row():
    data = "name,city\n王小明,上海\n李雷,北京\n".encode() + b"Bad\xff,x\n" + "韩梅梅,广州\n".encode()
    parsed = parsing.parse_upload(io.BytesIO(data), "a.csv")
    assert parsed.encoding == "utf-8"
    assert parsed.undecodable_rows == {4}


def test_xlsx_is_read_with_numbers_and_dates_as_text():
    from datetime import date, datetime

    data = xlsx_bytes(
        [
            ["Name", "Phone", "Birthday", "Order date", "Total"],
            ["Ann", 13800138000, date(1990, 5, 1), datetime(2024, 3, 1, 14, 30), 99.5],
            [None, None, None, None, None],
            ["Bob", "+44 20 7946 0958", None, None, 10],
        ]
    )
    parsed = parsing.parse_upload(io.BytesIO(data), "customers.xlsx")
    assert parsed.file_format == "xlsx"
    assert parsed.headers == ["Name", "Phone", "Birthday", "Order date", "Total"]
    assert parsed.rows == [
        (2, ["Ann", "13800138000", "1990-05-01", "2024-03-01 14:30:00", "99.5"]),
        (4, ["Bob", "+44 20 7946 0958", "", "", "10"]),
    ]


def test_a_broken_xlsx_and_an_old_xls_are_refused():
    with pytest.raises(parsing.ImportFileError, match="not a valid Excel"):
        parsing.parse_upload(io.BytesIO(b"PK\x03\x04 not really a zip"), "x.xlsx")
    with pytest.raises(parsing.ImportFileError, match=r"\.xls"):
        parsing.parse_upload(io.BytesIO(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100), "old.xls")


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b"   \n\n", "empty"), (b"name,email\n", "no data rows"), (b"\n,,\n", "empty")],
)
def test_empty_files_are_refused(data, message):
    with pytest.raises(parsing.ImportFileError, match=message):
        parsing.parse_upload(io.BytesIO(data), "a.csv")


def test_size_and_row_limits(monkeypatch, settings):
    monkeypatch.setattr(parsing, "MAX_UPLOAD_BYTES", 100)
    with pytest.raises(parsing.ImportFileError, match="larger than"):
        parsing.parse_upload(io.BytesIO(b"name\n" + b"x\n" * 100), "a.csv")
    monkeypatch.setattr(parsing, "MAX_UPLOAD_BYTES", 10_000)
    settings.IMPORT_MAX_ROWS = 3
    with pytest.raises(parsing.ImportFileError, match="more than 3 data rows"):
        parsing.parse_upload(io.BytesIO(b"name\na\nb\nc\nd\n"), "a.csv")


def test_a_huge_cell_is_kept_for_validation_to_report():
    data = ("name,city\n" + "x" * 10_000 + ",Shanghai\n").encode()
    parsed = parsing.parse_upload(io.BytesIO(data), "a.csv")
    assert len(parsed.rows[0][1][0]) == 10_000


def test_an_excel_sep_hint_line_sets_the_delimiter_and_counts_as_a_row():
    parsed = parsing.parse_upload(io.BytesIO(b"sep=;\r\nname;city\r\nAnn;Paris, France\r\n"), "a.csv")
    assert parsed.headers == ["name", "city"]
    assert parsed.rows == [(3, ["Ann", "Paris, France"])]


def test_semicolon_separated_files_are_read():
    parsed = parsing.parse_upload(io.BytesIO(b"name;email\nAnn;ann@example.com\n"), "a.csv")
    assert parsed.rows[0][1] == ["Ann", "ann@example.com"]


def test_mapping_is_guessed_from_english_and_chinese_headers():
    headers = [
        "姓名",
        "手机号",
        "电子邮件",
        "城市",
        "省份",
        "生日",
        "性别",
        "来源",
        "客户编号",
        "标签",
        "订单号",
        "下单时间",
        "金额",
        "Whatever",
    ]
    assert columns.guess_mapping(headers, []) == [
        "name",
        "phone",
        "email",
        "city",
        "province",
        "birthday",
        "gender",
        "source",
        "external_id",
        "tags",
        "order_number",
        "placed_at",
        "total",
        "",
    ]
    english = ["Full Name", "E-mail", "Mobile", "External ID", "Order No", "Unit price", "Qty", "SKU"]
    assert columns.guess_mapping(english, []) == [
        "name",
        "email",
        "phone",
        "external_id",
        "order_number",
        "unit_price",
        "quantity",
        "sku",
    ]


def test_custom_fields_are_guessed_by_key_or_label_and_each_target_is_used_once():
    class Definition:
        def __init__(self, key, label):
            self.key, self.label = key, label

    definitions = [Definition("wechat_id", "微信号"), Definition("vip_level", "VIP level")]
    assert columns.guess_mapping(["微信号", "vip_level", "Name", "name"], definitions) == [
        "cf:wechat_id",
        "cf:vip_level",
        "name",
        "",
    ]


def test_phone_normaliser_fast_path_agrees_with_the_general_parser():
    normalise = values.PhoneNormaliser("CN")
    assert normalise("138 0013 8000") == "+8613800138000"
    assert normalise("+86 138-0013-8000") == "+8613800138000"
    assert normalise("+44 20 7946 0958") == "+442079460958"
    for bad in ("12345", "10000000000", "not a phone"):
        with pytest.raises(CellError):
            normalise(bad)
    reference = values.phone_normaliser_reference
    for digits in ("13912345678", "19912345678", "17912345678", "14012345678", "16612345678"):
        expected = reference(digits, "CN")
        try:
            got = normalise(digits)
        except CellError:
            got = None
        assert got == expected, digits


def test_value_cleaners():
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    assert values.clean_date("1990年5月1日").isoformat() == "1990-05-01"
    assert values.clean_date("1990/05/01").isoformat() == "1990-05-01"
    assert values.clean_date("2024-03-01 00:00:00").isoformat() == "2024-03-01"
    with pytest.raises(CellError):
        values.clean_date("01/05/1990")
    with pytest.raises(CellError):
        values.clean_date("1990-02-30")
    placed = values.clean_datetime("2024-03-01 08:00", ZoneInfo("Asia/Shanghai"))
    assert placed.isoformat() == "2024-03-01T00:00:00+00:00"
    assert values.clean_decimal("¥1,234.50", max_digits=12, decimal_places=2) == Decimal("1234.50")
    with pytest.raises(CellError):
        values.clean_decimal("12.345", max_digits=12, decimal_places=2)
    assert values.clean_boolean("是") is True and values.clean_boolean("no") is False
    assert values.split_list("vip, 老客户、vip;new") == ["vip", "老客户", "new"]
    assert values.unescape_formula("'=1+1") == "=1+1"
    assert values.unescape_formula("'quoted") == "'quoted"
    with pytest.raises(CellError, match="not a valid email"):
        values.clean_email("not-an-email")
    assert values.clean_email("Ann@Exämple.com") == "ann@exämple.com"  # IDN domains pass Django's check


def test_a_quick_look_at_a_workbook_reads_only_its_first_rows():
    data = xlsx_bytes([["Name"], *[[f"Customer {i}"] for i in range(50)]])
    peek = parsing.parse_upload(io.BytesIO(data), "big.xlsx", preview_rows=5)
    assert [cells[0] for _n, cells in peek.rows] == [f"Customer {i}" for i in range(5)]
    assert peek.row_count == 50 and peek.estimated_rows == 50
    full = parsing.parse_upload(io.BytesIO(data), "big.xlsx")
    assert full.row_count == 50 and full.estimated_rows is None


# --- the customer import's bounds: CSV up to 200 MB / 1,000,000 rows, read as a stream ---------------


class CountingStream(io.BytesIO):
    """A file that counts the bytes read from it."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        data = super().read(size)
        self.bytes_read += len(data)
        return data


def test_the_customer_import_admits_a_csv_beyond_the_other_bounds(settings, monkeypatch):
    settings.IMPORT_MAX_ROWS = 3
    settings.IMPORT_MAX_CSV_ROWS = 6
    monkeypatch.setattr(parsing, "MAX_UPLOAD_BYTES", 40)
    monkeypatch.setattr(parsing, "MAX_CSV_UPLOAD_BYTES", 400)
    data = b"name,city\n" + b"".join(b"Customer %d,Paris\n" % n for n in range(5))
    assert 40 < len(data) < 400
    parsed = parsing.parse_upload(io.BytesIO(data), "a.csv", large_csv=True)
    assert parsed.row_count == 5 and parsed.rows[-1] == (6, ["Customer 4", "Paris"])
    # other imports (loyalty balances, the kinds) keep the lower bounds
    with pytest.raises(parsing.ImportFileError, match="larger than"):
        parsing.parse_upload(io.BytesIO(data), "a.csv")
    monkeypatch.setattr(parsing, "MAX_UPLOAD_BYTES", 4000)
    with pytest.raises(parsing.ImportFileError, match="more than 3 data rows"):
        parsing.parse_upload(io.BytesIO(data), "a.csv")


def test_a_csv_over_the_customer_import_bounds_is_refused_with_the_bound(settings, monkeypatch):
    settings.IMPORT_MAX_CSV_ROWS = 4
    data = b"name\n" + b"".join(b"c%d\n" % n for n in range(5))
    with pytest.raises(parsing.ImportFileError, match="more than 4 data rows"):
        parsing.parse_upload(io.BytesIO(data), "a.csv", large_csv=True)
    settings.IMPORT_MAX_CSV_ROWS = 5
    assert parsing.parse_upload(io.BytesIO(data), "a.csv", large_csv=True).row_count == 5

    monkeypatch.setattr(parsing, "MAX_CSV_UPLOAD_BYTES", 3 * 1024 * 1024)
    big = CountingStream(b"name\n" + b"x" * 100 + b"\n" * (4 * 1024 * 1024))
    with pytest.raises(parsing.ImportFileError, match="larger than 3 MB"):
        parsing.parse_upload(big, "a.csv", large_csv=True)
    # refused once the bound is passed, not after reading the whole file
    assert big.bytes_read <= 3 * 1024 * 1024 + 2 * 1024 * 1024


def test_an_xlsx_keeps_the_lower_bound_in_the_customer_import(monkeypatch):
    data = xlsx_bytes([["name"], ["Ann"], ["Bob"]])
    monkeypatch.setattr(parsing, "MAX_UPLOAD_BYTES", len(data) - 1)
    with pytest.raises(parsing.ImportFileError, match="Save the sheet as CSV"):
        parsing.parse_upload(io.BytesIO(data), "a.xlsx", large_csv=True)
    monkeypatch.setattr(parsing, "MAX_UPLOAD_BYTES", len(data))
    assert parsing.parse_upload(io.BytesIO(data), "a.xlsx", large_csv=True).row_count == 2


def test_the_first_look_at_a_csv_counts_every_row_but_keeps_a_sample():
    data = b"name,city\n" + b"".join(b"C%d,Paris\n" % n for n in range(1000)) + b"Last,Rome,extra\n"
    parsed = parsing.parse_upload(io.BytesIO(data), "a.csv", preview_rows=5, large_csv=True)
    assert parsed.row_count == 1001 and len(parsed.rows) == 5
    assert parsed.rows[0] == (2, ["C0", "Paris"])
    assert parsed.width_errors == {}  # of the kept rows only
    full = parsing.parse_upload(io.BytesIO(data), "a.csv", large_csv=True)
    assert full.row_count == 1001 and full.width_errors == {1002: 3}


def test_streamed_csv_rows_keep_their_spreadsheet_numbers():
    """Quoted cells over several lines, CRLF line ends, a BOM and blank lines: the row numbers and
    cells are the ones a spreadsheet shows (what validation names in its errors)."""
    text = '\ufeffname,note\r\nAnn,"two\r\nlines"\r\n\r\nBob,"say ""hi"""\r\nCat,x\r\n'
    parsed = parsing.parse_upload(io.BytesIO(text.encode("utf-8")), "a.csv", large_csv=True)
    assert parsed.encoding == "utf-8-sig" and parsed.headers == ["name", "note"]
    assert parsed.rows == [(2, ["Ann", "two\r\nlines"]), (4, ["Bob", 'say "hi"']), (5, ["Cat", "x"])]


def test_a_broken_row_is_named_in_a_file_read_in_chunks():
    """The encoding is judged over the whole stream (here past the first chunk) and the broken row
    keeps its number."""
    good = "".join(f"王{n},上海\n" for n in range(80_000)).encode()
    assert len(good) > 1024 * 1024
    data = b"name,city\n" + good + b"Bad\xff,x\n" + "韩梅梅,广州\n".encode()
    parsed = parsing.parse_upload(io.BytesIO(data), "a.csv", large_csv=True)
    assert parsed.encoding == "utf-8" and parsed.undecodable_rows == {80_002}
    assert parsed.rows[-1] == (80_003, ["韩梅梅", "广州"])
    gb = "name,city\n".encode("gb18030") + "".join(f"王{n},上海\n" for n in range(80_000)).encode("gb18030")
    assert parsing.parse_upload(io.BytesIO(gb), "a.csv", large_csv=True).encoding == "gb18030"
