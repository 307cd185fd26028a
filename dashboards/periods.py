"""The date range of a dashboard and the period it is compared with. No database, no request: a pure
function of the query parameters and today's date in the tenant's time zone, tested on its own.

A period is a range of whole days, both ends included, in the tenant's time zone. The comparison is
the period just before it of the same length, or the same days a year earlier, or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

PRESETS = ("30d", "90d", "month", "last_month", "quarter", "year", "last_year", "custom")
COMPARISONS = ("previous", "last_year", "none")
DEFAULT_PRESET = "30d"
DEFAULT_COMPARISON = "previous"

EARLIEST = date(2000, 1, 1)
MAX_DAYS = 3 * 366  # a custom range spans at most about three years
_DATE_TEXT = 10  # "YYYY-MM-DD": anything longer is refused before parsing


@dataclass(frozen=True)
class Period:
    first: date  # first day, included
    last: date  # last day, included

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """[start, end) as aware datetimes: midnight of the first day to midnight after the last."""
        start = datetime.combine(self.first, time.min, tzinfo=zone)
        end = datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=zone)
        return start, end

    def shifted_year(self) -> Period:
        return Period(_minus_year(self.first), _minus_year(self.last))

    def previous(self) -> Period:
        return Period(self.first - timedelta(days=self.days), self.first - timedelta(days=1))

    @property
    def bucket(self) -> str:
        """How a chart of this period groups its days: "day" up to a quarter, "week" up to two years
        (weeks start on Monday), "month" beyond."""
        if self.days <= 92:
            return "day"
        return "week" if self.days <= 731 else "month"

    def buckets(self, unit: str | None = None) -> list[date]:
        """The first day of every bucket that the period touches, in order (the first may start
        before the period: a week or month is named by its first day)."""
        unit = unit or self.bucket
        day = bucket_start(self.first, unit)
        found = []
        while day <= self.last:
            found.append(day)
            if unit == "day":
                day += timedelta(days=1)
            elif unit == "week":
                day += timedelta(days=7)
            else:
                day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        return found


def bucket_start(day: date, unit: str) -> date:
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


@dataclass(frozen=True)
class Selection:
    preset: str
    comparison: str
    period: Period
    compared: Period | None
    errors: tuple[str, ...] = ()  # keys of what was refused ("from", "to", "range"); the defaults apply


def _minus_year(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def _parse_date(raw: object) -> date | None:
    text = str(raw or "").strip()
    if not text or len(text) > _DATE_TEXT:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _quarter_start(today: date) -> date:
    return date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)


def preset_period(preset: str, today: date) -> Period:
    if preset == "90d":
        return Period(today - timedelta(days=89), today)
    if preset == "month":
        return Period(today.replace(day=1), today)
    if preset == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return Period(last.replace(day=1), last)
    if preset == "quarter":
        return Period(_quarter_start(today), today)
    if preset == "year":
        return Period(date(today.year, 1, 1), today)
    if preset == "last_year":
        return Period(date(today.year - 1, 1, 1), date(today.year - 1, 12, 31))
    return Period(today - timedelta(days=29), today)  # "30d", the default


def parse_selection(params, today: date) -> Selection:
    """Read `range`, `from`, `to` and `compare` from a mapping of query parameters.

    Unknown values fall back to the defaults; a custom range with a bad or out-of-bounds date, or
    longer than MAX_DAYS, falls back to the default range and names what was refused in `errors`.
    """
    preset = str(params.get("range") or DEFAULT_PRESET)[:20]
    if preset not in PRESETS:
        preset = DEFAULT_PRESET
    comparison = str(params.get("compare") or DEFAULT_COMPARISON)[:20]
    if comparison not in COMPARISONS:
        comparison = DEFAULT_COMPARISON
    errors: list[str] = []
    latest = today + timedelta(days=366)
    if preset == "custom":
        first, last = _parse_date(params.get("from")), _parse_date(params.get("to"))
        if first is None or not EARLIEST <= first <= latest:
            errors.append("from")
        if last is None or not EARLIEST <= last <= latest:
            errors.append("to")
        if not errors and (last < first or (last - first).days + 1 > MAX_DAYS):
            errors.append("range")
        period = Period(first, last) if not errors else preset_period(DEFAULT_PRESET, today)
        if errors:
            preset = DEFAULT_PRESET
    else:
        period = preset_period(preset, today)
    compared = None
    if comparison == "previous":
        compared = period.previous()
    elif comparison == "last_year":
        compared = period.shifted_year()
    if compared is not None and compared.first < EARLIEST:
        compared = None
    return Selection(preset, comparison, period, compared, tuple(errors))


def months_between(first: date, last: date) -> int:
    """Whole calendar months from the month of `first` to the month of `last` (0 for the same month)."""
    return (last.year - first.year) * 12 + last.month - first.month


def change_percent(current, previous) -> float | None:
    """The change from `previous` to `current` in percent, one decimal; None without a base."""
    if current is None or previous is None or not previous:
        return None
    return round((float(current) - float(previous)) / abs(float(previous)) * 100, 1)
