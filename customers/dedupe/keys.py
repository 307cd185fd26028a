"""Normalisation keys for comparing customers: email, phone, name and city.

Names are folded to a *name key* — traditional → simplified Chinese (OpenCC t2s), Chinese characters
→ pinyin (pypinyin), lower case, accents, spaces and punctuation removed — so 張偉, 张伟, "Zhang Wei"
and "zhangwei" share the key "zhangwei". Everything is cached per distinct value.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import phonenumbers

_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_E164_RE = re.compile(r"\+[1-9]\d{4,14}")
_DIGITS_RE = re.compile(r"\D")
_CJK_SPLIT_RE = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])")
_NON_WORD_RE = re.compile(r"[\W_]+", re.UNICODE)
_CITY_SUFFIX_RE = re.compile(r"(市|city)$")


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


@lru_cache(maxsize=20_000)
def _han_syllable(char: str) -> str:
    """Pinyin (no tones) of one Chinese character, after traditional → simplified conversion."""
    from pypinyin import lazy_pinyin

    simplified = _t2s().convert(char)
    return "".join(lazy_pinyin(simplified)).lower()


def _fold_latin(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def name_tokens(name: str) -> list[str]:
    """The name as lower-case words: each Chinese character becomes its pinyin syllable."""
    tokens: list[str] = []
    for chunk in _CJK_SPLIT_RE.split(name):
        if not chunk:
            continue
        if _CJK_RE.fullmatch(chunk):
            tokens.append(_han_syllable(chunk))
        else:
            tokens.extend(word for word in _NON_WORD_RE.split(_fold_latin(chunk)) if word)
    return tokens


_ALL_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


@lru_cache(maxsize=200_000)
def name_keys(name: str) -> tuple[str, str]:
    """(key, key of the words sorted): 張偉, 张伟, "Zhang Wei", "zhangwei" → ("zhangwei", "weizhang")."""
    if name and _ALL_CJK_RE.fullmatch(name):  # most names: Chinese characters only, one token each
        tokens = [_han_syllable(char) for char in name]
    else:
        tokens = name_tokens(name or "")
    return "".join(tokens), "".join(sorted(tokens))


def name_key(name: str) -> str:
    return name_keys(name)[0]


@lru_cache(maxsize=20_000)
def city_key(city: str) -> str:
    """北京, 北京市, "Beijing", "beijing city" → "beijing"; 成都 → "chengdu" (read as a phrase, where
    a character-by-character reading would say "chengdou")."""
    from pypinyin import lazy_pinyin

    folded = _t2s().convert((city or "").strip()).casefold()
    folded = _CITY_SUFFIX_RE.sub("", folded.replace(" ", "")).strip()
    return _NON_WORD_RE.sub("", _fold_latin("".join(lazy_pinyin(folded))))


def email_key(email: str) -> str:
    return (email or "").strip().lower()


def phone_key(phone: str, region: str = "CN") -> str:
    """E.164 when the number parses, else its digits (so formatting never hides a match)."""
    raw = (phone or "").strip()
    if not raw:
        return ""
    try:
        parsed = phonenumbers.parse(raw, None if raw.startswith("+") else region)
        if phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    digits = re.sub(r"\D", "", raw)
    return digits if len(digits) >= 5 else ""


def default_phone_region() -> str:
    """The region a number without a country code belongs to (the tenant's)."""
    from ..phone import current_region

    return current_region()
