"""Time zones as people pick them: common zones by city, in the reader's language, with their UTC
offset; deprecated IANA names (US/Eastern, Asia/Calcutta, Asia/Chongqing, PRC...) refused.

Pickers offer `time_zone_choices(current=...)`: the curated list below plus the value already saved
(so an unusual but valid zone is kept, not silently changed). `validate_time_zone` is the rule for
anything stored: a canonical IANA name that is not a deprecated alias.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# zone -> the cities a person looks for (the first is the zone's own city where it is well known).
COMMON_ZONES = {
    "Pacific/Honolulu": _("Honolulu"),
    "America/Anchorage": _("Anchorage"),
    "America/Los_Angeles": _("Los Angeles, San Francisco, Vancouver"),
    "America/Phoenix": _("Phoenix"),
    "America/Denver": _("Denver"),
    "America/Mexico_City": _("Mexico City"),
    "America/Chicago": _("Chicago, Dallas"),
    "America/Bogota": _("Bogotá"),
    "America/Lima": _("Lima"),
    "America/New_York": _("New York, Washington, Miami"),
    "America/Toronto": _("Toronto, Montreal"),
    "America/Caracas": _("Caracas"),
    "America/Halifax": _("Halifax"),
    "America/Santiago": _("Santiago"),
    "America/Sao_Paulo": _("São Paulo, Rio de Janeiro"),
    "America/Argentina/Buenos_Aires": _("Buenos Aires"),
    "Atlantic/Azores": _("Azores"),
    "UTC": _("Coordinated Universal Time (UTC)"),
    "Atlantic/Reykjavik": _("Reykjavík"),
    "Europe/London": _("London, Edinburgh"),
    "Europe/Dublin": _("Dublin"),
    "Europe/Lisbon": _("Lisbon"),
    "Africa/Casablanca": _("Casablanca"),
    "Africa/Lagos": _("Lagos"),
    "Europe/Paris": _("Paris"),
    "Europe/Berlin": _("Berlin, Frankfurt"),
    "Europe/Madrid": _("Madrid, Barcelona"),
    "Europe/Rome": _("Rome, Milan"),
    "Europe/Amsterdam": _("Amsterdam"),
    "Europe/Brussels": _("Brussels"),
    "Europe/Zurich": _("Zurich, Geneva"),
    "Europe/Vienna": _("Vienna"),
    "Europe/Stockholm": _("Stockholm"),
    "Europe/Oslo": _("Oslo"),
    "Europe/Copenhagen": _("Copenhagen"),
    "Europe/Warsaw": _("Warsaw"),
    "Europe/Prague": _("Prague"),
    "Europe/Budapest": _("Budapest"),
    "Africa/Johannesburg": _("Johannesburg, Cape Town"),
    "Africa/Cairo": _("Cairo"),
    "Europe/Athens": _("Athens"),
    "Europe/Helsinki": _("Helsinki"),
    "Europe/Kyiv": _("Kyiv"),
    "Europe/Bucharest": _("Bucharest"),
    "Asia/Jerusalem": _("Jerusalem, Tel Aviv"),
    "Europe/Istanbul": _("Istanbul"),
    "Europe/Moscow": _("Moscow, Saint Petersburg"),
    "Africa/Nairobi": _("Nairobi"),
    "Asia/Riyadh": _("Riyadh"),
    "Asia/Tehran": _("Tehran"),
    "Asia/Dubai": _("Dubai, Abu Dhabi"),
    "Asia/Karachi": _("Karachi"),
    "Asia/Tashkent": _("Tashkent"),
    "Asia/Kolkata": _("Mumbai, New Delhi, Kolkata"),
    "Asia/Kathmandu": _("Kathmandu"),
    "Asia/Dhaka": _("Dhaka"),
    "Asia/Almaty": _("Almaty"),
    "Asia/Yangon": _("Yangon"),
    "Asia/Urumqi": _("Ürümqi"),
    "Asia/Bangkok": _("Bangkok"),
    "Asia/Ho_Chi_Minh": _("Ho Chi Minh City, Hanoi"),
    "Asia/Jakarta": _("Jakarta"),
    "Asia/Shanghai": _("Beijing, Shanghai, Shenzhen, Chongqing"),
    "Asia/Hong_Kong": _("Hong Kong"),
    "Asia/Macau": _("Macau"),
    "Asia/Taipei": _("Taipei"),
    "Asia/Singapore": _("Singapore"),
    "Asia/Kuala_Lumpur": _("Kuala Lumpur"),
    "Asia/Manila": _("Manila"),
    "Australia/Perth": _("Perth"),
    "Asia/Ulaanbaatar": _("Ulaanbaatar"),
    "Asia/Seoul": _("Seoul"),
    "Asia/Tokyo": _("Tokyo, Osaka"),
    "Australia/Adelaide": _("Adelaide"),
    "Australia/Brisbane": _("Brisbane"),
    "Australia/Sydney": _("Sydney, Melbourne, Canberra"),
    "Asia/Vladivostok": _("Vladivostok"),
    "Pacific/Guam": _("Guam"),
    "Pacific/Noumea": _("Nouméa"),
    "Pacific/Auckland": _("Auckland, Wellington"),
    "Pacific/Fiji": _("Fiji"),
}

# Old names kept in the tz database only as aliases (its "backward" file) and whole legacy areas.
LEGACY_AREAS = {"US", "Etc", "SystemV", "Canada", "Brazil", "Mexico", "Chile"}
DEPRECATED = {
    "Asia/Calcutta", "Asia/Saigon", "Asia/Katmandu", "Asia/Rangoon", "Asia/Chongqing", "Asia/Chungking",
    "Asia/Harbin", "Asia/Kashgar", "Asia/Macao", "Asia/Ulan_Bator", "Asia/Thimbu", "Asia/Dacca",
    "Asia/Istanbul", "Asia/Tel_Aviv", "Asia/Ujung_Pandang", "Asia/Ashkhabad", "Europe/Kiev", "Europe/Belfast",
    "Europe/Nicosia", "Europe/Tiraspol", "America/Buenos_Aires", "America/Godthab", "America/Indianapolis",
    "America/Fort_Wayne", "America/Knox_IN", "America/Louisville", "America/Ensenada", "America/Santa_Isabel",
    "America/Porto_Acre", "America/Rosario", "America/Catamarca", "America/Cordoba", "America/Jujuy",
    "America/Mendoza", "America/Atka", "America/Shiprock", "America/Virgin", "Atlantic/Faeroe",
    "Atlantic/Jan_Mayen", "Australia/ACT", "Australia/Canberra", "Australia/NSW", "Australia/North",
    "Australia/Queensland", "Australia/South", "Australia/Tasmania", "Australia/Victoria", "Australia/West",
    "Australia/LHI", "Australia/Yancowinna", "Antarctica/South_Pole", "Pacific/Ponape", "Pacific/Truk",
    "Pacific/Yap", "Pacific/Samoa", "Pacific/Enderbury", "Pacific/Johnston", "Africa/Asmera",
    "Africa/Timbuktu",
}  # fmt: skip


def is_deprecated(name: str) -> bool:
    return (
        name in DEPRECATED
        or (name != "UTC" and "/" not in name)  # PRC, ROC, GB, Japan, Zulu, EST5EDT...
        or name.split("/", 1)[0] in LEGACY_AREAS
    )


def is_valid_zone(name: str) -> bool:
    return (
        bool(name) and len(name) <= 64 and name in zoneinfo.available_timezones() and not is_deprecated(name)
    )


def validate_time_zone(value: str) -> None:
    if not is_valid_zone(value):
        raise ValidationError(
            _("“%(value)s” is not a time zone we offer. Choose a city from the list."),
            code="invalid_time_zone",
            params={"value": (value or "")[:64]},
        )


def _offset(zone: str, now: datetime) -> tuple[int, str]:
    delta = now.astimezone(zoneinfo.ZoneInfo(zone)).utcoffset()
    minutes = int(delta.total_seconds() // 60) if delta is not None else 0
    sign = "+" if minutes >= 0 else "-"
    return minutes, f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def time_zone_choices(*, current: str = "") -> list[tuple[str, str]]:
    """(zone, "(UTC+08:00) Beijing, Shanghai…") sorted by offset, in the active language; the saved
    value too when it is valid but not among the common zones."""
    now = timezone.now()
    rows = []
    zones = dict(COMMON_ZONES)
    if current and current not in zones and current in zoneinfo.available_timezones():
        zones[current] = current.rsplit("/", 1)[-1].replace("_", " ")
    for zone, cities in zones.items():
        minutes, offset = _offset(zone, now)
        rows.append((minutes, str(cities), zone, f"({offset}) {cities}"))
    rows.sort()
    return [(zone, label) for _minutes, _cities, zone, label in rows]
