"""No text reaches a page as trusted HTML except through a short list of reviewed places.

`|safe`, `mark_safe`, `{% autoescape off %}` and friends switch Django's escaping off. Each use is
reviewed and listed here with the reason it is safe; a new one fails this test until it is reviewed.
Inline event handlers (`onclick=`...) and inline `<script>` without a nonce are refused too: the
Content-Security-Policy would block them (behaviour lives in static/js/app.js)."""

import re
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKIP_PARTS = {".venv", "node_modules", "migrations", "static", "staticfiles", ".data", "tests", ".git"}

# (file, marker) -> how many times it may appear, and why that is safe.
REVIEWED = {
    # Fixed markup with no value in it.
    ("customers/templatetags/customer_tags.py", "mark_safe"): 2,
    # ^ the second joins cells each built by format_html, which escapes every value.
    ("crm/accounts/views_two_factor.py", "mark_safe"): 1,
    # ^ segno's QR code for two-factor set-up: an <svg> of path data drawn from our own otpauth URL;
    #   no text (not even the e-mail address in that URL) is placed in the markup
    #   (tests/crm/test_two_factor.py checks the address is not in it).
}

PYTHON_MARKERS = {
    "mark_safe": re.compile(r"\bmark_safe\("),
    "SafeString": re.compile(r"\bSafeString\("),
    "SafeText": re.compile(r"\bSafeText\("),
    "allow_tags/is_safe": re.compile(r"\bis_safe\s*=\s*True|\ballow_tags\b"),
}
TEMPLATE_MARKERS = {
    "|safe": re.compile(r"\|\s*safe\b"),
    "|safeseq": re.compile(r"\|\s*safeseq\b"),
    "autoescape off": re.compile(r"{%\s*autoescape\s+off\s*%}"),
    "inline event handler": re.compile(r"\son[a-z]+\s*=\s*[\"']", re.IGNORECASE),
    "hx-on": re.compile(r"\shx-on[:-]"),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
    "inline script without nonce": re.compile(r"<script(?![^>]*\b(?:src|nonce)=)[^>]*>", re.IGNORECASE),
    "inline style attribute": re.compile(r"\sstyle\s*=\s*[\"']", re.IGNORECASE),
    "style element": re.compile(r"<style\b", re.IGNORECASE),
}


def _files(pattern: str):
    for path in REPO.rglob(pattern):
        relative = path.relative_to(REPO)
        if not SKIP_PARTS.intersection(relative.parts):
            yield relative


def _uses() -> Counter:
    found: Counter = Counter()
    for relative in _files("*.py"):
        text = (REPO / relative).read_text(encoding="utf-8")
        for name, pattern in PYTHON_MARKERS.items():
            found[(str(relative), name)] += len(pattern.findall(text))
    for relative in _files("*.html"):
        text = (REPO / relative).read_text(encoding="utf-8")
        for name, pattern in TEMPLATE_MARKERS.items():
            found[(str(relative), name)] += len(pattern.findall(text))
    return +found  # drop zero counts


def test_escaping_is_switched_off_only_in_reviewed_places():
    unreviewed = {key: count for key, count in _uses().items() if count > REVIEWED.get(key, 0)}
    assert not unreviewed, (
        "Unescaped output or inline script/style that has not been reviewed (file, marker): count. "
        "Escape the value (format_html, escape), move behaviour to static/js/app.js and styles to "
        f"static/css/app.css, or review it and add it to REVIEWED with the reason: {unreviewed}"
    )


def test_the_scan_sees_the_templates_and_the_reviewed_uses():
    """The scan would notice: it reads the templates, and finds the reviewed uses where they are."""
    assert sum(1 for _ in _files("*.html")) > 50
    uses = _uses()
    for key, count in REVIEWED.items():
        assert uses.get(key) == count, f"{key} is reviewed for {count} uses, found {uses.get(key, 0)}"
