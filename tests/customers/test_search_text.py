"""customers.search: the forms of a name that search_text holds."""

from pypinyin import Style, lazy_pinyin
from pypinyin.constants import PHRASES_DICT

from customers.search import _SPACES, has_han, name_variants, to_simplified


def _name_variants_with_two_conversions(name: str) -> tuple[str, ...]:
    """name_variants as it was written before the initials were taken from the syllables: a second
    pypinyin conversion in Style.FIRST_LETTER. search_text must not change with that shortcut."""
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
            initials = lazy_pinyin(simplified, style=Style.FIRST_LETTER, errors="ignore")
            variants.append("".join(i for i in initials if i.strip()))
    return tuple(dict.fromkeys(variants))


def test_initials_are_the_first_letters_of_the_syllables_for_every_han_character_and_phrase():
    # Every character of the ranges search_text treats as Han (each reading pypinyin has), every
    # tenth phrase pypinyin reads as a whole (a polyphonic character is read by its phrase: 单 in
    # 单田芳 is "shan"; all 47,000 phrases take seconds more and pass as well), and mixed names.
    ranges = ((0x3400, 0x9FFF), (0xF900, 0xFAFF))
    characters = [chr(c) for first, last in ranges for c in range(first, last + 1)]
    names = [
        *characters,
        *list(PHRASES_DICT)[::10],
        "王 Abc",
        "abc王",
        "王-小明",
        "李1明",
        "陳大文",
        "嗯",
        "呣",
        "绿",
        "吕小雨",
        "单田芳",
        "曾国藩",
        " 王  小 ",
        "王·小明",
        "Anna Smith",
        "",
    ]
    differing = [n for n in names if name_variants(n) != _name_variants_with_two_conversions(n)]
    assert differing == []


def test_name_variants_of_a_chinese_name():
    assert name_variants("陳大文") == ("陳大文", "陈大文", "chen da wen", "chendawen", "cdw")
