"""Countries by name, not "CN": the customer's country is stored as its ISO 3166-1 alpha-2 code and
shown by its name in the reader's language. The form offers the countries a Chinese retailer's
customers mostly come from (plus the code already saved); imports still accept any two-letter code."""

from django.utils.translation import gettext_lazy as _

COUNTRY_NAMES = {
    "CN": _("China"),
    "HK": _("Hong Kong (China)"),
    "MO": _("Macau (China)"),
    "TW": _("Taiwan (China)"),
    "SG": _("Singapore"),
    "MY": _("Malaysia"),
    "TH": _("Thailand"),
    "VN": _("Vietnam"),
    "ID": _("Indonesia"),
    "PH": _("Philippines"),
    "JP": _("Japan"),
    "KR": _("South Korea"),
    "MN": _("Mongolia"),
    "IN": _("India"),
    "AE": _("United Arab Emirates"),
    "SA": _("Saudi Arabia"),
    "TR": _("Turkey"),
    "RU": _("Russia"),
    "KZ": _("Kazakhstan"),
    "GB": _("United Kingdom"),
    "IE": _("Ireland"),
    "FR": _("France"),
    "DE": _("Germany"),
    "NL": _("Netherlands"),
    "BE": _("Belgium"),
    "CH": _("Switzerland"),
    "AT": _("Austria"),
    "IT": _("Italy"),
    "ES": _("Spain"),
    "PT": _("Portugal"),
    "SE": _("Sweden"),
    "NO": _("Norway"),
    "DK": _("Denmark"),
    "FI": _("Finland"),
    "PL": _("Poland"),
    "US": _("United States"),
    "CA": _("Canada"),
    "MX": _("Mexico"),
    "BR": _("Brazil"),
    "AR": _("Argentina"),
    "AU": _("Australia"),
    "NZ": _("New Zealand"),
    "ZA": _("South Africa"),
    "EG": _("Egypt"),
    "NG": _("Nigeria"),
    "KE": _("Kenya"),
}


def country_name(code: str) -> str:
    """The country's name in the active language; an unlisted code as itself."""
    code = (code or "").upper()
    name = COUNTRY_NAMES.get(code)
    return str(name) if name is not None else code


def country_choices(*, current: str = "") -> list[tuple[str, str]]:
    """("", "—") then the countries sorted by name in the active language (China first), plus the
    saved code when it is not listed."""
    rows = sorted(
        ((code, str(name)) for code, name in COUNTRY_NAMES.items() if code != "CN"), key=lambda r: r[1]
    )
    choices = [("", "—"), ("CN", str(COUNTRY_NAMES["CN"])), *rows]
    current = (current or "").upper()
    if current and current not in COUNTRY_NAMES:
        choices.append((current, current))
    return choices
