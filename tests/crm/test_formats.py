"""One date, time, number and money format per language, in the viewer's time zone, through one set of
filters (crm/templatetags/crm_format.py; the formats in crm/formats/) - issue 15."""

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.template import Context, Template
from django.utils import timezone, translation

REPO = Path(__file__).resolve().parents[2]
MOMENT = datetime(2026, 12, 3, 19, 10, tzinfo=UTC)  # 2026-12-04 03:10 in Shanghai

TEMPLATE = (
    "{% load crm_format %}"
    "{{ moment|localdate }}|{{ moment|localdt }}|{{ moment|clock }}|{{ moment|yearmonth }}|"
    "{{ big|number }}|{{ ratio|number:1 }}|{{ amount|money }}|{{ share|percent }}|{{ day|localdate }}|"
    "{{ at }}|{{ day }}|{{ noon|clock }}"
)
EXPECTED = (
    "2026-12-04|2026-12-04 03:10|03:10|2026-12|200,000|3.5|¥1,234,567.80|74.4%|1980-08-10|"
    "2026-12-04 03:10|1980-08-10|12:00"
)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_each_kind_renders_in_the_viewers_zone_with_the_languages_format(tenant, language):
    context = Context(
        {
            "moment": MOMENT,
            "at": MOMENT,  # a bare {{ value }}: Django localizes it with the same formats
            "big": 200000,
            "ratio": Decimal("3.46"),
            "amount": Decimal("1234567.8"),
            "share": 0.744,
            "day": date(1980, 8, 10),
            "noon": time(12, 0),
        }
    )
    with translation.override(language), timezone.override(ZoneInfo("Asia/Shanghai")):
        assert Template(TEMPLATE).render(context) == EXPECTED


def test_the_viewers_zone_moves_the_day(tenant):
    with timezone.override(ZoneInfo("America/New_York")):
        assert (
            Template("{% load crm_format %}{{ m|localdt }}").render(Context({"m": MOMENT}))
            == "2026-12-03 14:10"
        )


def test_machine_forms_stay_iso_in_the_viewers_zone():
    with timezone.override(ZoneInfo("Asia/Shanghai")):
        rendered = Template(
            "{% load crm_format %}{{ m|date_input }} {{ m|datetime_input }} {{ m|month_input }}"
        ).render(Context({"m": MOMENT}))
    assert rendered == "2026-12-04 2026-12-04T03:10 2026-12"


# Ways of formatting a value that bypass the filters above. `timesince`/`naturaltime` (relative
# durations) are not formats and stay allowed.
STRAY = re.compile(
    r"\|(?:date|time)\b"  # Django's |date:"..." / |time:"..." with a literal or named format
    r"|\|localdt:"  # the old free-format argument
    r"|\|intcomma\b|\|floatformat\b"  # ungrouped or differently grouped numbers
    r"|\.isoformat\b"  # ISO text on a page
    r"|\|stringformat:\S*[fd]"
)
EXEMPT: set[str] = set()  # templates allowed their own formats (none)


def template_files():
    for folder in [REPO / "templates", *REPO.glob("*/templates"), *REPO.glob("*/*/templates")]:
        if ".venv" in folder.parts:
            continue
        yield from (p for p in folder.rglob("*") if p.suffix in {".html", ".txt"})


def test_no_template_formats_a_date_or_number_its_own_way():
    strays = []
    for path in template_files():
        name = str(path.relative_to(REPO))
        if name in EXEMPT:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if STRAY.search(line):
                strays.append(f"{name}:{number}: {line.strip()[:120]}")
    assert strays == [], (
        "Use crm_format's filters (localdate, localdt, clock, number, money...):\n" + "\n".join(strays)
    )


def test_the_stray_pattern_catches_what_it_should():
    for bad in [
        '{{ x|date:"Y-m-d" }}',
        "{{ x|date:'SHORT_DATETIME_FORMAT' }}",
        '{{ x|localdt:"H:i" }}',
        "{{ n|intcomma }}",
        "{{ n|floatformat:2 }}",
        "{{ x|time:'H:i' }}",
    ]:
        assert STRAY.search(bad), bad
    for good in ["{{ x|localdate }}", "{{ x|date_input }}", "{{ n|number:2 }}", "{{ x|timesince }}"]:
        assert not STRAY.search(good), good
