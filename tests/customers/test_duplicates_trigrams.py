"""The similar-name pass compares only the pairs of name keys that share a trigram of their prefixes
(customers.dedupe.trigrams): its trigrams must be pg_trgm's own, and no pair whose similarity reaches
the threshold may be left out, whatever the keys."""

import random

import numpy as np
import pytest
from django.db import connection

from customers.dedupe.scan import NAME_SIMILARITY_THRESHOLD
from customers.dedupe.trigrams import MAX_INDEXED_LENGTH, candidate_pairs, indexable, key_trigrams

pytestmark = pytest.mark.django_db


def _pg_trigrams(keys):
    with connection.cursor() as cursor:
        cursor.execute("SELECT k, show_trgm(k) FROM unnest(%s::text[]) AS k", [keys])
        return dict(cursor.fetchall())


def _as_text(gram: int) -> str:
    return bytes([(gram >> 16) & 0xFF, (gram >> 8) & 0xFF, gram & 0xFF]).decode("ascii")


def test_the_trigrams_are_pg_trgms_own(tenant):
    keys = [
        "liwei",
        "abc",
        "aaaa",
        "abab",
        "store12",
        "12345",
        "zhangxiaoming",
        "x" * MAX_INDEXED_LENGTH,
        "ab9ab9ab9",
    ]
    rows, grams = key_trigrams(keys)
    ours = {key: [] for key in keys}
    for row, gram in zip(rows.tolist(), grams.tolist(), strict=True):
        ours[keys[row]].append(_as_text(gram))
    expected = _pg_trigrams(keys)
    for key in keys:
        assert sorted(ours[key]) == sorted(expected[key]), key


def test_keys_pg_trgm_would_hash_are_not_indexed():
    assert indexable("lindasmith")
    assert not indexable("ødegaard")
    assert not indexable("иван")
    assert not indexable("x" * (MAX_INDEXED_LENGTH + 1))


def _brute_force(keys, groups, latin, threshold):
    """Every pair a filter must keep: (Latin, other) in one group, similarity >= threshold, by SQL."""
    pairs = [
        (a, b)
        for a in range(len(keys))
        for b in range(len(keys))
        if a != b and groups[a] == groups[b] and latin[a] and (not latin[b] or a < b)
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a, b FROM unnest(%s::int[], %s::int[], %s::text[], %s::text[]) AS p (a, b, x, y)"
            " WHERE similarity(x, y) >= %s",
            [
                [a for a, _ in pairs],
                [b for _, b in pairs],
                [keys[a] for a, _ in pairs],
                [keys[b] for _, b in pairs],
                threshold,
            ],
        )
        return set(cursor.fetchall()), len(pairs)


def _random_keys(rng: random.Random, count: int) -> list[str]:
    """Name-like keys: a few stems with typos, swaps, digits and a few keys pg_trgm would hash."""
    stems = [
        "lindasmith",
        "liwei",
        "liuxiaoming",
        "lindan",
        "lisa",
        "zhangwei",
        "maryjones",
        "markjones",
        "li",
    ]
    keys = []
    for _ in range(count):
        key = list(rng.choice(stems) + rng.choice(["", "", "a", "ng", "jones", "12"]))
        for _edit in range(rng.choice((0, 0, 1, 1, 2, 3))):
            spot = rng.randrange(len(key))
            action = rng.randrange(3)
            if action == 0:
                key[spot] = rng.choice("abcdefghijklmnopqrstuvwxyz0123456789")
            elif action == 1 and len(key) > 3:
                del key[spot]
            else:
                key.insert(spot, rng.choice("aeiouy"))
        text = "".join(key)
        if rng.random() < 0.03:
            text = text[:2] + "ø" + text[2:]
        if rng.random() < 0.02:
            text = text * 8
        keys.append(text)
    return keys


@pytest.mark.parametrize("seed", range(6))
def test_no_pair_reaching_the_threshold_is_left_out(tenant, seed):
    rng = random.Random(seed)
    keys = _random_keys(rng, 260)
    groups = np.array([rng.randrange(3) for _ in keys])
    latin = np.array([rng.random() < 0.4 for _ in keys])
    a, b = candidate_pairs(keys, groups, latin, NAME_SIMILARITY_THRESHOLD)
    candidates = set(zip(a.tolist(), b.tolist(), strict=True))
    similar, compared_before = _brute_force(keys, groups, latin, NAME_SIMILARITY_THRESHOLD)
    assert similar, "the random keys should contain similar pairs"
    assert similar <= candidates
    # Each candidate is a Latin key with another key of its group, each pair once.
    assert len(candidates) == len(a)
    assert all(latin[x] and groups[x] == groups[y] and x != y for x, y in candidates)
    assert not any((y, x) in candidates for x, y in candidates)
    # And the filter filters: far fewer pairs than every pair of a block.
    assert len(candidates) < compared_before / 2


def test_a_pair_exactly_at_the_threshold_is_kept(tenant):
    # "abcdefg" and "abcdefx": 8 trigrams each, 6 shared, similarity 6 / 10 = 0.6 exactly. The prefix
    # length uses ceil(t * n) with t as an exact fraction, so 0.6 * 10 rounding either way cannot lose it.
    keys = ["abcdefg", "abcdefx"]
    a, b = candidate_pairs(keys, np.array([0, 0]), np.array([True, True]), NAME_SIMILARITY_THRESHOLD)
    assert list(zip(a.tolist(), b.tolist(), strict=True)) == [(0, 1)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT similarity('abcdefg', 'abcdefx') >= %s", [NAME_SIMILARITY_THRESHOLD])
        assert cursor.fetchone()[0] is True
