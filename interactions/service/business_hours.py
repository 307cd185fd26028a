"""Business-hours arithmetic for service-level targets, without Django.

A `BusinessCalendar` says when a tenant's service desk works: opening intervals per weekday in the
tenant's wall-clock time (minutes after midnight, so 9:00-18:00 is (540, 1080) and an interval may end
at 1440, midnight), its IANA time zone (DST zones included: intervals are wall-clock times converted to
UTC day by day, so a 9-hour day stays 9 hours across a clock change), public holidays of a country from
the `holidays` package (China's include the make-up working days 调休, `weekend_workdays`), and the
tenant's own closed days and extra working days.

Instants in and out are timezone-aware datetimes; results are in UTC. Durations are whole seconds.

- `business_seconds(calendar, start, end, pauses=())`: open time between two instants, less the open
  time inside the pauses (e.g. "waiting on the customer").
- `add_business_seconds(calendar, start, seconds)`: the instant when `seconds` of open time have passed
  after `start` (a deadline "N business minutes after").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

Interval = tuple[int, int]  # minutes after local midnight, start < end <= 1440
WeeklyHours = dict[int, tuple[Interval, ...]]  # weekday (0 = Monday) -> opening intervals

MINUTES_PER_DAY = 24 * 60
# A calendar with no open time at all would make a deadline search run forever; give up after this.
MAX_SEARCH_DAYS = 3 * 366

STANDARD_WEEK: WeeklyHours = dict.fromkeys(range(5), ((9 * 60, 18 * 60),))


class NoWorkingTime(ValueError):
    """The calendar has no open time within MAX_SEARCH_DAYS of the instant asked about."""


def parse_hhmm(text: str) -> int:
    """'09:30' -> 570; '24:00' -> 1440. Raises ValueError for anything else."""
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"not a time of day: {text!r}")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > MINUTES_PER_DAY:
        raise ValueError(f"not a time of day: {text!r}")
    return value


def format_hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def normalise_intervals(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """Sorted, merged, validated intervals of one day."""
    cleaned = []
    for start, end in intervals:
        if not (0 <= start < end <= MINUTES_PER_DAY):
            raise ValueError(f"an opening interval must start before it ends within the day: {start}-{end}")
        cleaned.append((start, end))
    cleaned.sort()
    merged: list[list[int]] = []
    for start, end in cleaned:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((start, end) for start, end in merged)


@lru_cache(maxsize=16)
def _country_holidays(country: str):
    import holidays  # the package, pinned in pyproject.toml

    return holidays.country_holidays(country)


@dataclass(frozen=True)
class BusinessCalendar:
    time_zone: str = "Asia/Shanghai"
    weekly: WeeklyHours = field(default_factory=lambda: dict(STANDARD_WEEK))
    holiday_country: str = ""  # e.g. "CN": that country's public holidays and make-up working days
    closed_days: frozenset[date] = frozenset()  # the tenant's own holidays
    extra_working_days: frozenset[date] = frozenset()  # the tenant's own extra working days
    # Hours of a working day that falls on a day the week has no hours for (a make-up Saturday);
    # empty: the hours of the first weekday that has any.
    makeup_hours: tuple[Interval, ...] = ()

    def __post_init__(self) -> None:
        ZoneInfo(self.time_zone)  # raises for an unknown zone
        object.__setattr__(
            self, "weekly", {day: normalise_intervals(self.weekly.get(day, ())) for day in range(7)}
        )
        if not self.makeup_hours:
            first = next((self.weekly[day] for day in range(7) if self.weekly[day]), ())
            object.__setattr__(self, "makeup_hours", first)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def hours_on(self, day: date) -> tuple[Interval, ...]:
        """The opening intervals of one local date (empty on a closed day)."""
        if day in self.closed_days:
            return ()
        weekly = self.weekly[day.weekday()]
        if day in self.extra_working_days:
            return weekly or self.makeup_hours
        if self.holiday_country:
            public = _country_holidays(self.holiday_country)
            if day in public:  # also loads that year, and with it its make-up working days
                return ()
            if day in getattr(public, "weekend_workdays", ()):
                return weekly or self.makeup_hours
        return weekly

    def is_working_day(self, day: date) -> bool:
        return bool(self.hours_on(day))

    def _utc(self, day: date, minutes: int) -> datetime:
        local = datetime.combine(day, datetime.min.time()) + timedelta(minutes=minutes)
        return local.replace(tzinfo=self.zone).astimezone(UTC)

    def open_intervals(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """UTC (open, close) intervals in time order, from the local day of `start` on (the first
        ones may end before `start`). Stops after MAX_SEARCH_DAYS."""
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        for offset in range(MAX_SEARCH_DAYS + 1):
            current = day + timedelta(days=offset)
            for begin, end in self.hours_on(current):
                yield self._utc(current, begin), self._utc(current, end)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def _open_seconds(calendar: BusinessCalendar, start: datetime, end: datetime) -> int:
    total = 0.0
    for open_at, close_at in calendar.open_intervals(start):
        if open_at >= end:
            break
        overlap = (min(close_at, end) - max(open_at, start)).total_seconds()
        if overlap > 0:
            total += overlap
    return int(round(total))


def merge_pauses(pauses: Iterable[tuple[datetime, datetime | None]], *, until: datetime) -> list:
    """Pauses as sorted, non-overlapping UTC intervals; an open pause (end None) runs to `until`."""
    spans = sorted(
        (_aware(begin, "pause start"), _aware(end, "pause end") if end is not None else until)
        for begin, end in pauses
    )
    merged: list[list[datetime]] = []
    for begin, end in spans:
        if end <= begin:
            continue
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    return [(begin, end) for begin, end in merged]


def business_seconds(
    calendar: BusinessCalendar,
    start: datetime,
    end: datetime,
    pauses: Iterable[tuple[datetime, datetime | None]] = (),
) -> int:
    """Open time between `start` and `end` (0 when end <= start), less the open time inside `pauses`
    ((begin, end) pairs; end None means "still paused")."""
    start, end = _aware(start, "start"), _aware(end, "end")
    if end <= start:
        return 0
    total = _open_seconds(calendar, start, end)
    for begin, stop in merge_pauses(pauses, until=end):
        begin, stop = max(begin, start), min(stop, end)
        if stop > begin:
            total -= _open_seconds(calendar, begin, stop)
    return max(total, 0)


def add_business_seconds(calendar: BusinessCalendar, start: datetime, seconds: int) -> datetime:
    """The instant at which `seconds` of open time have passed since `start` (UTC). With 0 seconds,
    `start` itself. Raises NoWorkingTime for a calendar without open time."""
    start = _aware(start, "start")
    if seconds < 0:
        raise ValueError("seconds must not be negative")
    if seconds == 0:
        return start
    remaining = float(seconds)
    for open_at, close_at in calendar.open_intervals(start):
        if close_at <= start:
            continue
        begin = max(open_at, start)
        available = (close_at - begin).total_seconds()
        if remaining <= available:
            return begin + timedelta(seconds=remaining)
        remaining -= available
    raise NoWorkingTime("no working time within the search window")


def signed_business_seconds(calendar: BusinessCalendar, now: datetime, due: datetime) -> int:
    """Open time left until `due` (negative: how much open time it has been overdue)."""
    if due >= now:
        return business_seconds(calendar, now, due)
    return -business_seconds(calendar, due, now)
