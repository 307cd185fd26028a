"""Every user-facing string has a Simplified Chinese translation, and the catalogue is current.

The test copies the source tree to a temporary folder, runs `makemessages` there (so the committed
catalogue is not touched) and fails on any message that is new, untranslated or fuzzy.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PO_PATH = Path("locale/zh_Hans/LC_MESSAGES/django.po")
IGNORED = {
    ".git",
    ".venv",
    ".data",
    "static",
    "media",
    "staticfiles",
    "test-artifacts",
    "node_modules",
    "tests",
}


def parse_po(text: str) -> list[dict]:
    """A small .po reader: returns entries with msgid, msgid_plural, msgstr list and flags."""
    entries, current, field = [], None, None

    def finish():
        if current is not None and current.get("msgid") is not None:
            entries.append(current)

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            finish()
            current, field = None, None
            continue
        if current is None:
            current = {"msgid": None, "msgid_plural": None, "msgstr": {}, "flags": set(), "obsolete": False}
        if line.startswith("#~"):
            current["obsolete"] = True
            continue
        if line.startswith("#,"):
            current["flags"].update(flag.strip() for flag in line[2:].split(","))
            continue
        if line.startswith("#"):
            continue
        match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+"(.*)"$', line)
        if match:
            key, index, value = match.group(1), match.group(2), match.group(3)
            if key.startswith("msgstr"):
                field = ("msgstr", int(index or 0))
                current["msgstr"][field[1]] = value
            else:
                field = (key, None)
                current[key] = value
        elif line.startswith('"') and field is not None:
            value = line[1:-1]
            if field[0] == "msgstr":
                current["msgstr"][field[1]] += value
            else:
                current[field[0]] = (current.get(field[0]) or "") + value
    finish()
    return [e for e in entries if e["msgid"] != "" and not e["obsolete"]]


def problems_in(entries: list[dict]) -> list[str]:
    problems = []
    for entry in entries:
        if "fuzzy" in entry["flags"]:
            problems.append(f"fuzzy: {entry['msgid']!r}")
        elif not entry["msgstr"] or any(not value for value in entry["msgstr"].values()):
            problems.append(f"untranslated: {entry['msgid']!r}")
    return problems


def test_committed_catalogue_is_complete():
    entries = parse_po((REPO / PO_PATH).read_text(encoding="utf-8"))
    assert len(entries) > 50
    assert problems_in(entries) == []


def test_catalogue_covers_every_string_in_the_code(tmp_path):
    if shutil.which("xgettext") is None:
        pytest.fail("GNU gettext is needed (apt-get install gettext; .ci/run installs it).")
    copy = tmp_path / "src"
    shutil.copytree(
        REPO, copy, ignore=lambda folder, names: [n for n in names if n in IGNORED or n == "__pycache__"]
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--no-obsolete", "--ignore=tests"],
        cwd=copy,
        capture_output=True,
        text=True,
        env={"DJANGO_SETTINGS_MODULE": "crm.settings.test", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    entries = parse_po((copy / PO_PATH).read_text(encoding="utf-8"))
    problems = problems_in(entries)
    assert problems == [], (
        f"{len(problems)} messages lack a zh-hans translation; run `make messages` and translate them:\n"
        + "\n".join(problems[:50])
    )


def test_parse_po_flags_untranslated_and_fuzzy_entries():
    text = """msgid ""
msgstr ""

msgid "Customers"
msgstr "客户"

#, fuzzy
msgid "Segments"
msgstr "细分"

msgid "Loyalty"
msgstr ""

msgid "%(n)s order"
msgid_plural "%(n)s orders"
msgstr[0] ""
"""
    assert problems_in(parse_po(text)) == [
        "fuzzy: 'Segments'",
        "untranslated: 'Loyalty'",
        "untranslated: '%(n)s order'",
    ]


def test_chinese_interface_is_served_when_chosen(client_for, sales_user):
    client = client_for(sales_user)
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"}, follow=True)
    page = response.content.decode()
    assert '<html lang="zh-hans">' in page
    assert "客户" in page
    sales_user.refresh_from_db()
    assert sales_user.language == "zh-hans"


def test_translation_functions_are_only_imported_under_names_makemessages_extracts():
    """xgettext finds `_`, the gettext names themselves and `_t` (crm's makemessages adds it); a
    string marked with any other alias would silently never be translated."""
    alias = re.compile(r"\b(n?gettext(?:_lazy|_noop)?|pgettext(?:_lazy)?)\s+as\s+(\w+)")
    offenders = []
    for path in REPO.rglob("*.py"):
        if any(part in IGNORED or part in {"tests", ".venv"} for part in path.relative_to(REPO).parts):
            continue
        for function, name in alias.findall(path.read_text(encoding="utf-8")):
            if name not in {"_", "_t"}:
                offenders.append(f"{path.relative_to(REPO)}: {function} as {name}")
    assert offenders == []
