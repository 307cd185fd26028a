"""Which pairs of name keys are worth asking pg_trgm's `similarity()` about (the similar-name pass of
the duplicate scan), without asking it about every pair of a block.

pg_trgm's similarity of two one-word keys is the Jaccard index of their trigram sets: the key padded
with two spaces in front and one behind ("  li " -> "  l", " li", "li "), each distinct trigram
once, similarity = shared / (all of both - shared). If similarity(x, y) >= t, then x and y share at
least ceil(t * |x|) trigrams (and ceil(t * |y|)). So when every key's trigrams are put in one global
order (rarest first), the first |x| - ceil(t * |x|) + 1 of x's trigrams and the first
|y| - ceil(t * |y|) + 1 of y's share at least one trigram: the *prefix filter* of set-similarity
joins (Chaudhuri, Ganti and Kaushik 2006; Xiao, Wang, Lin and Yu, "PPJoin", 2008). Pairs that share
no prefix trigram cannot reach t and are never compared; the pairs that do are compared by
PostgreSQL, whose `similarity()` decides.

At 1,000,000 customers the blocks (same city, same first letters) held 5.6 million pairs of a Latin
key with another key; 310,000 of them share a prefix trigram, and 393 are similar.

The trigrams are computed here for keys of the letters a-z and digits only (every pinyin key, most
Latin ones), of up to MAX_INDEXED_LENGTH characters; pg_trgm hashes other characters, so a key with
any (Ødegaard, Иван) or a longer one is paired with every key of its block, as before.
`tests/customers/test_duplicates_trigrams.py` checks these trigrams against `show_trgm()` and the
candidates against every pair of random blocks.
"""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
import pandas as pd

MAX_INDEXED_LENGTH = 64
_INDEXABLE_RE = re.compile(r"[a-z0-9]+")


def indexable(key: str) -> bool:
    """Are this key's trigrams computed here (the same as pg_trgm's), or is it paired with its whole block?"""
    return len(key) <= MAX_INDEXED_LENGTH and _INDEXABLE_RE.fullmatch(key) is not None


def sorted_distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted: `np.unique` by sorting (numpy 2's `np.unique` took 4.7 s for 2.8
    million integers on the development machine, sorting them 0.08 s)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    first = np.empty(len(values), dtype=bool)
    first[0] = True
    np.not_equal(values[1:], values[:-1], out=first[1:])
    return values[first]


def key_trigrams(keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct trigrams of each key (all `indexable`), as (row, trigram) arrays sorted by row and
    trigram; a trigram is its three bytes as one integer (space = 0x20)."""
    if not keys:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    width = max(len(key) for key in keys) + 3
    padded = np.array([f"  {key} " for key in keys], dtype=f"S{width}")
    matrix = padded.view(np.uint8).reshape(len(keys), width).astype(np.int64)
    grams = (matrix[:, :-2] << 16) | (matrix[:, 1:-1] << 8) | matrix[:, 2:]
    counts = np.fromiter((len(key) + 1 for key in keys), np.int64, len(keys))
    inside = np.arange(width - 2)[None, :] < counts[:, None]
    rows = np.repeat(np.arange(len(keys), dtype=np.int64), counts)
    unique = sorted_distinct((rows << 24) | grams[inside])  # one (row, trigram) each
    return unique >> 24, unique & 0xFFFFFF


def candidate_pairs(
    keys: list[str], groups: np.ndarray, latin: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (a, b) of the pairs to compare: a is a Latin key (`latin[a]`), b another key of the
    same group (`groups`: integer block numbers), each pair once (a Latin pair in one order only),
    every pair whose similarity can reach `threshold` among them."""
    n = len(keys)
    groups = np.asarray(groups, dtype=np.int64)
    latin = np.asarray(latin, dtype=bool)
    indexed = np.fromiter((indexable(key) for key in keys), bool, n)
    positions = np.flatnonzero(indexed)
    rows, grams = key_trigrams([keys[i] for i in positions])
    rows = positions[rows]
    # The global order: rarest first, ties by the trigram itself.
    inverse, distinct = pd.factorize(grams)
    counts = np.bincount(inverse)
    rank = np.empty(len(distinct), np.int64)
    rank[np.lexsort((distinct, counts))] = np.arange(len(distinct))
    order = np.lexsort((rank[inverse], rows))
    rows, gram_ids = rows[order], inverse[order]
    # Each key's place in that order, and how many of its first trigrams make its prefix.
    sizes = np.bincount(rows, minlength=n)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    place = np.arange(len(rows)) - starts[rows]
    t = Fraction(str(threshold))
    needed = -(-(t.numerator * sizes) // t.denominator)  # ceil(t * size), exactly
    prefix = place < (sizes - needed + 1)[rows]
    entries = pd.DataFrame({"row": rows[prefix], "group": groups[rows[prefix]], "gram": gram_ids[prefix]})
    left = entries[latin[entries["row"].to_numpy()]]
    joined = left.merge(entries, on=["group", "gram"], suffixes=("_a", "_b"))
    a, b = joined["row_a"].to_numpy(), joined["row_b"].to_numpy()
    # Keys whose trigrams are not computed here: paired with every key of their group.
    others = np.flatnonzero(~indexed)
    if len(others):
        members = pd.DataFrame({"row": np.arange(n), "group": groups})
        odd = members.iloc[others].merge(members, on="group", suffixes=("_x", "_y"))
        x, y = odd["row_x"].to_numpy(), odd["row_y"].to_numpy()
        a = np.concatenate((a, x, y))
        b = np.concatenate((b, y, x))
    keep = (a != b) & latin[a] & (~latin[b] | (a < b))
    pairs = sorted_distinct((a[keep] << 32) | b[keep])
    return pairs >> 32, pairs & 0xFFFFFFFF
