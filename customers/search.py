"""What customer search matches: one lower-cased `search_text` per customer, searched with a trigram
GIN index (`search_text LIKE '%query%'`).

For Chinese names the text also holds the simplified form (OpenCC t2s), the pinyin (joined and
spaced) and the pinyin initials, so 陳大文, 陈大文, "chen dawen", "chendawen" and "cdw" all find the same
customer. Queries are normalised the same way (lower case, simplified, phone digits).
"""

import re
from functools import lru_cache

from opencc import OpenCC
from pypinyin import lazy_pinyin

_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_PHONE_LIKE = re.compile(r"^\+?[\d\s\-().]{5,}$")
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=1)
def _t2s() -> OpenCC:
    return OpenCC("t2s")


def has_han(text: str) -> bool:
    return bool(_HAN.search(text or ""))


@lru_cache(maxsize=20000)
def to_simplified(text: str) -> str:
    return _t2s().convert(text) if has_han(text) else text


@lru_cache(maxsize=20000)
def name_variants(name: str) -> tuple[str, ...]:
    """Searchable forms of a name: itself, simplified, pinyin spaced/joined, initials."""
    name = _SPACES.sub(" ", (name or "").strip().lower())
    if not name:
        return ()
    variants = [name]
    if has_han(name):
        simplified = to_simplified(name)
        if simplified != name:
            variants.append(simplified)
        syllables = [s for s in lazy_pinyin(simplified, errors="ignore") if s.strip()]
        if syllables:
            variants.append(" ".join(syllables))
            variants.append("".join(syllables))
            # pypinyin's Style.FIRST_LETTER is the first letter of the NORMAL syllable (its
            # to_first_letter), so the initials are taken from the syllables rather than by a second
            # conversion, which cost as much as the first (tests/customers/test_search_text.py
            # compares the two on every Han character and on phrases of pypinyin's dictionary).
            variants.append("".join(syllable[0] for syllable in syllables))
    return tuple(dict.fromkeys(variants))


def phone_digits(phone: str) -> str:
    return re.sub(r"\D", "", phone or "")


def build_search_text(*, name: str, email: str = "", phone: str = "", external_id: str = "") -> str:
    parts = [*name_variants(name), (email or "").lower(), phone_digits(phone), (external_id or "").lower()]
    return " | ".join(p for p in parts if p)


def normalise_query(query: str) -> str:
    """The substring to look for in search_text ('' when there is nothing to search)."""
    query = _SPACES.sub(" ", (query or "").strip().lower())
    if not query:
        return ""
    if _PHONE_LIKE.match(query):
        return phone_digits(query)
    return to_simplified(query)
