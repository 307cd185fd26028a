"""Finding likely duplicate customers (疑似重复客户).

Three signals, each computed for the whole tenant in bulk (never by comparing every customer with
every other one in Python):

- the same normalised email (score 100): lower-cased and trimmed;
- the same normalised phone (score 95): E.164, parsed with the tenant's default region when a
  stored number is not already in international form;
- a very similar name in the same city (score up to 90): the name is folded to a *name key* —
  traditional → simplified Chinese (OpenCC t2s), Chinese characters → pinyin (pypinyin), lower
  case, accents, spaces and punctuation removed — so 張偉, 张伟, "Zhang Wei" and "zhangwei" share the
  key "zhangwei". Equal keys in the same city score 90, the same words in another order ("Wei
  Zhang") 85, and otherwise pg_trgm `similarity()` of the keys (≥ NAME_SIMILARITY_THRESHOLD) gives
  90 × similarity. Word order is meaningful in a Chinese name (surname first): two names written in
  Chinese characters are never "the same words in another order" (李颖洋 / 杨丽颖 are different
  people). A *common* name (a surname and one given character such as 张伟, or a name key found in
  NAME_COMMON_MIN_CITIES or more cities) in the same city is weak evidence on
  its own: it scores NAME_COMMON_SCORE, so only an email or phone lifts such a pair to the top.
  Fuzzy comparison only happens inside blocks of (city, first letters of the key) loaded into a
  temporary table, so the work grows with the block sizes, not with n².

Keys are computed in Python from one read of the customers, once per distinct name, city, e-mail
and phone, and turned into integer codes; equal keys are grouped with pandas on those codes (on a
million Python strings, hashing them for every grouping took most of the scan), and the fuzzy pass
runs in PostgreSQL. The finished list is cached per tenant, per visibility scope and
per "version" of the customer table, so paging through it does not recompute it.

Deleted customers (the recycle bin, including customers merged into another) are left out, pairs a
user dismissed as "not duplicates" are left out, and a user only sees pairs of customers they can
see both of (`visible_to`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from crm.accounts.permissions import visible_to
from crm.audit.models import AuditEvent
from crm.expressions import id_array
from crm.memory import cyclic_gc_paused

from ..models import Customer
from .keys import _CJK_RE, _DIGITS_RE, _E164_RE, city_key, default_phone_region, name_keys, phone_key
from .trigrams import candidate_pairs, sorted_distinct

EMAIL_SCORE = 100
PHONE_SCORE = 95
NAME_EXACT_SCORE = 90
NAME_REORDERED_SCORE = 85
NAME_MAX_SCORE = 90
# The same common name in the same city: two people as often as one (issue 15).
NAME_COMMON_SCORE = 70
NAME_COMMON_MIN_CITIES = 3
# Trigram similarity of two name keys from which they count as "very similar": one typo in a short
# name already costs three trigrams (jonathansmithson / jonathonsmithson = 0.70, catherinejones /
# katherinejones = 0.67), while different names stay lower (marysmith / marksmith = 0.54).
NAME_SIMILARITY_THRESHOLD = 0.6
# Letters of the name key that must agree for two names to be compared by similarity at all.
NAME_BLOCK_PREFIX = 2
# A group of more customers than this sharing one email/phone/name is a placeholder value
# ("test@test.com", a shop's own number) or a very common name, not a duplicate: left out, counted.
MAX_GROUP_SIZE = 30
# The page lists the best pairs; nobody reviews more than this many in one go.
MAX_PAIRS = 20_000
DISMISS_ACTION = "customer.duplicate_dismissed"

REASON_LABELS = {
    "email": _("Same email"),
    "phone": _("Same phone"),
    "name": _("Same name in the same city"),
    "name_common": _("Same common name in the same city"),
    "name_reordered": _("Same name, words in another order, same city"),
    "name_similar": _("Similar name in the same city"),
}


# Each signal is one bit, so the reasons of a pair aggregate with a vectorised sum.
REASON_BITS = {"email": 1, "phone": 2, "name": 4, "name_reordered": 8, "name_similar": 16, "name_common": 32}


@dataclass(frozen=True)
class Reason:
    code: str  # a key of REASON_LABELS
    similarity: float | None = None

    @property
    def label(self):
        return REASON_LABELS[self.code]


@dataclass(frozen=True)
class DuplicatePair:
    first_id: int
    second_id: int
    score: int
    reasons: tuple[Reason, ...]

    @property
    def codes(self) -> set[str]:
        return {reason.code for reason in self.reasons}


class DuplicateScan:
    """The result of one scan: pairs best first, as a DataFrame (first_id, second_id, score, bits,
    similarity). Slicing or iterating yields DuplicatePair objects, so a Paginator pages it directly
    and only the page shown is turned into Python objects."""

    def __init__(self, frame: pd.DataFrame, *, customers_scanned: int, skipped_groups: int, total: int):
        self.frame = frame.reset_index(drop=True)
        self.customers_scanned = customers_scanned
        self.skipped_groups = skipped_groups  # groups larger than MAX_GROUP_SIZE, left out
        self.total = total  # pairs found, before keeping the best MAX_PAIRS

    @classmethod
    def empty(cls, customers_scanned: int = 0, skipped_groups: int = 0) -> DuplicateScan:
        frame = pd.DataFrame(
            {"first_id": [], "second_id": [], "score": [], "bits": [], "similarity": []}
        ).astype({"first_id": "int64", "second_id": "int64", "score": "int64", "bits": "int64"})
        return cls(frame, customers_scanned=customers_scanned, skipped_groups=skipped_groups, total=0)

    @property
    def truncated(self) -> bool:
        return self.total > len(self.frame)

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._pair(row) for row in self.frame.iloc[index].itertuples(index=False)]
        return self._pair(next(self.frame.iloc[[index]].itertuples(index=False)))

    def __iter__(self):
        return (self._pair(row) for row in self.frame.itertuples(index=False))

    def involving(self, customer_id: int) -> DuplicateScan:
        """The pairs one customer is part of."""
        frame = self.frame[(self.frame["first_id"] == customer_id) | (self.frame["second_id"] == customer_id)]
        return DuplicateScan(
            frame, customers_scanned=self.customers_scanned, skipped_groups=0, total=len(frame)
        )

    @property
    def pairs(self) -> list[DuplicatePair]:
        return list(self)

    def groups(self, *, min_score: int, max_size: int, limit: int) -> list[list[int]]:
        """Customers linked by pairs scoring `min_score` or more, in groups of three up to `max_size`
        (larger ones are chains of weak matches, not one person), best first: at most `limit`."""
        strong = self.frame[self.frame["score"] >= min_score]
        parent: dict[int, int] = {}

        def root(node: int) -> int:
            while parent.setdefault(node, node) != node:
                parent[node] = parent[parent[node]]
                node = parent[node]
            return node

        best: dict[int, int] = {}
        for first, second, score in zip(
            strong["first_id"].tolist(), strong["second_id"].tolist(), strong["score"].tolist(), strict=True
        ):
            a, b = root(first), root(second)
            if a != b:
                parent[b] = a
            best[first] = max(best.get(first, 0), score)
            best[second] = max(best.get(second, 0), score)
        members: dict[int, list[int]] = {}
        for node in parent:
            members.setdefault(root(node), []).append(node)
        found = [sorted(group) for group in members.values() if 3 <= len(group) <= max_size]
        found.sort(key=lambda group: (-min(best[pk] for pk in group), group[0]))
        return found[:limit]

    @staticmethod
    def _pair(row) -> DuplicatePair:
        similarity = None if pd.isna(row.similarity) else round(float(row.similarity), 2)
        reasons = tuple(
            Reason(code=code, similarity=similarity if code == "name_similar" else None)
            for code, bit in REASON_BITS.items()
            if int(row.bits) & bit
        )
        return DuplicatePair(
            first_id=int(row.first_id), second_id=int(row.second_id), score=int(row.score), reasons=reasons
        )


# --- finding --------------------------------------------------------------------------------------


def scope_queryset(user) -> QuerySet[Customer]:
    return visible_to(Customer.objects.filter(deleted_at__isnull=True), user)


def _codes(values) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of `values` (equal strings, equal codes; -1 for the empty string) and the
    distinct values by code: grouping and joining on codes is several times faster than on a
    million Python strings, and the strings are hashed once here instead of once per grouping."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    empty = np.flatnonzero(uniques == "")
    if len(empty):
        codes[codes == empty[0]] = -1
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _spread(per_distinct: np.ndarray, codes: np.ndarray, missing) -> np.ndarray:
    """`per_distinct[code]` for each row; `missing` where the code is -1 (a NULL in the column)."""
    return np.append(per_distinct, missing)[codes]


def _frame(queryset: QuerySet[Customer], region: str) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per customer: id, codes of the email, phone, name, reordered name and city keys
    (-1: none), and whether the name is written in Chinese characters and how many; and the name
    keys by code (for the similar-name pass). Names and cities are keyed once per distinct value."""
    sql, params = (
        queryset.order_by().values_list("id", "email", "phone", "name", "city").query.sql_with_params()
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return pd.DataFrame(columns=["id"]), np.empty(0, dtype=object)
    ids, emails, phones, names, cities = zip(*rows, strict=True)
    # Names: the keys of each distinct name, spread to the rows by the name's code.
    name_codes, distinct_names = pd.factorize(np.asarray(names, dtype=object))
    distinct_names = distinct_names.tolist()
    facts = [name_keys(name) for name in distinct_names]
    han_chars = np.fromiter((len(_CJK_RE.findall(name)) for name in distinct_names), np.int64, len(facts))
    key_codes, keys = _codes([fact[0] for fact in facts])
    sorted_codes, _sorted_keys = _codes([fact[1] for fact in facts])
    # Cities: a handful of distinct values.
    city_codes, distinct_cities = pd.factorize(np.asarray(cities, dtype=object))
    city_keys, _city_names = _codes([city_key(city) for city in distinct_cities.tolist()])
    frame = pd.DataFrame(
        {
            "id": np.asarray(ids, dtype=np.int64),
            "email": _codes([(email or "").strip().lower() for email in emails])[0],
            # Stored numbers are E.164 already (the services parse them); only others need phonenumbers.
            "phone": _codes(
                [
                    phone if phone and _E164_RE.fullmatch(phone) else phone_key(phone or "", region)
                    for phone in phones
                ]
            )[0],
            "name": _spread(key_codes, name_codes, -1),
            "name_sorted": _spread(sorted_codes, name_codes, -1),
            "city": _spread(city_keys, city_codes, -1),
            "han_chars": _spread(han_chars, name_codes, 0),
        }
    )
    frame["han"] = frame["han_chars"] > 0
    return frame, keys


def _common_names(frame: pd.DataFrame) -> pd.Series:
    """True for rows whose name is common: a Chinese name of a surname and one given character, or a
    name key found in NAME_COMMON_MIN_CITIES or more cities among the scanned customers. (Cities, not
    customers: three records of one person in one city are what the scan is looking for.)"""
    cities = frame[frame["city"] != -1].groupby("name", sort=False)["city"].nunique()
    spread = frame["name"].map(cities).fillna(0)
    return (frame["han"] & (frame["han_chars"] == 2)) | (spread >= NAME_COMMON_MIN_CITIES)


def _either(pairs: pd.DataFrame, flags: pd.Series) -> pd.Series:
    """For each pair: is `flags` (indexed by customer id) true for either customer?"""
    return (pairs["first_id"].map(flags) | pairs["second_id"].map(flags)).astype(bool)


def _both(pairs: pd.DataFrame, flags: pd.Series) -> pd.Series:
    return (pairs["first_id"].map(flags) & pairs["second_id"].map(flags)).astype(bool)


def _usable_groups(frame: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, pd.Series, int]:
    """Rows with a value in every one of `columns` (codes, -1 for none) in groups of at most
    MAX_GROUP_SIZE, their groups' sizes, and how many groups were too big."""
    subset = frame
    for column in columns:
        subset = subset[subset[column] != -1]
    sizes = subset.groupby(columns, sort=False)["id"].transform("size")
    skipped = int(subset[sizes > MAX_GROUP_SIZE].drop_duplicates(columns).shape[0])
    usable = sizes <= MAX_GROUP_SIZE
    return subset[usable], sizes[usable], skipped


def _pairs_on(frame: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, int]:
    """All pairs of rows sharing values in `columns` (groups above MAX_GROUP_SIZE skipped)."""
    subset, sizes, skipped = _usable_groups(frame, columns)
    subset = subset.loc[sizes > 1, ["id", *columns]]
    joined = subset.merge(subset, on=columns, suffixes=("_a", "_b"))
    joined = joined[joined["id_a"] < joined["id_b"]]
    return joined.rename(columns={"id_a": "first_id", "id_b": "second_id"})[
        ["first_id", "second_id"]
    ], skipped


def _similar_name_pairs(frame: pd.DataFrame, key_of_code: np.ndarray) -> pd.DataFrame:
    """Pairs in the same city whose name keys differ but are similar by pg_trgm, block by block.

    Only distinct (city, name key) values go to PostgreSQL, so a name shared by many customers is
    compared once. Two names written in Chinese characters are never paired this way: their pinyin
    keys match exactly when the names are the same, and one different character is a different
    name (张伟 / 张文 = zhangwei / zhangwen, similarity 0.64). A Chinese name and a Latin spelling are.
    """
    empty = pd.DataFrame({"first_id": [], "second_id": [], "similarity": []})
    # Per distinct name key: long enough to compare, and its block. Digits are part of the block:
    # "Store 12" and "Store 13" are different customers, however similar.
    key_list = key_of_code.tolist()
    long_enough = np.fromiter((len(key) >= 3 for key in key_list), bool, len(key_list))
    block_codes = pd.factorize(
        np.asarray([f"{key[:NAME_BLOCK_PREFIX]}|{_DIGITS_RE.sub('', key)}" for key in key_list], dtype=object)
    )[0]
    named = frame[frame["name"] != -1]
    people, _sizes, _ = _usable_groups(named[long_enough[named["name"].to_numpy()]], ["city", "name"])
    keys = people.groupby(["city", "name"], sort=False, as_index=False)["han"].all()
    keys["block"] = block_codes[keys["name"].to_numpy()]
    blocks = keys.groupby(["city", "block"], sort=False)
    keys = keys[(blocks["han"].transform("size") > 1) & ~blocks["han"].transform("all")]
    if keys.empty:
        return empty
    keys = keys.reset_index(drop=True)
    names = key_of_code[keys["name"].to_numpy()].tolist()
    block_span = int(block_codes.max()) + 1
    groups = pd.factorize(keys["city"].to_numpy() * block_span + keys["block"].to_numpy())[0]  # (city, block)
    a, b = candidate_pairs(names, groups, ~keys["han"].to_numpy(), NAME_SIMILARITY_THRESHOLD)
    if not len(a):
        return empty
    involved = sorted_distinct(np.concatenate((a, b)))
    buffer = io.StringIO()
    for position in involved.tolist():
        buffer.write(f"{position}\t{names[position]}\n")
    with transaction.atomic(), connection.cursor() as cursor:
        # Dropped explicitly as well: inside an outer transaction (tests) "ON COMMIT" comes too late.
        cursor.execute("DROP TABLE IF EXISTS customer_dup_names")
        cursor.execute("CREATE TEMP TABLE customer_dup_names (i integer PRIMARY KEY, k text) ON COMMIT DROP")
        with cursor.copy("COPY customer_dup_names FROM STDIN") as copy:
            copy.write(buffer.getvalue())
        cursor.execute("ANALYZE customer_dup_names")
        # Only the pairs that share a trigram of their prefixes (customers.dedupe.trigrams): comparing
        # every Latin key with every key of its block compared 5.6 million pairs at 1,000,000
        # customers (7.4 s) to find 393.
        cursor.execute(
            """
            SELECT p.a, p.b, similarity(x.k, y.k)
            FROM unnest(%s::integer[], %s::integer[]) AS p (a, b)
            JOIN customer_dup_names x ON x.i = p.a
            JOIN customer_dup_names y ON y.i = p.b
            WHERE similarity(x.k, y.k) >= %s
            """,
            [id_array(a.tolist()), id_array(b.tolist()), NAME_SIMILARITY_THRESHOLD],
        )
        rows = cursor.fetchall()
        cursor.execute("DROP TABLE customer_dup_names")
    if not rows:
        return empty
    found = pd.DataFrame.from_records(rows, columns=["a", "b", "similarity"])
    similar = pd.DataFrame(
        {
            "city": keys["city"].to_numpy()[found["a"].to_numpy()],
            "key_a": keys["name"].to_numpy()[found["a"].to_numpy()],
            "key_b": keys["name"].to_numpy()[found["b"].to_numpy()],
            "similarity": found["similarity"].to_numpy(),
        }
    )
    ids = people[["id", "city", "name", "han"]]
    for side in ("a", "b"):
        renamed = {"id": f"id_{side}", "name": f"key_{side}", "han": f"han_{side}"}
        similar = similar.merge(ids.rename(columns=renamed), on=["city", f"key_{side}"])
    similar = similar[~(similar["han_a"] & similar["han_b"])]
    return pd.DataFrame(
        {
            "first_id": similar[["id_a", "id_b"]].min(axis=1),
            "second_id": similar[["id_a", "id_b"]].max(axis=1),
            "similarity": similar["similarity"],
        }
    )


def _dismissed_pairs() -> set[tuple[int, int]]:
    rows = AuditEvent.objects.filter(action=DISMISS_ACTION, target_type="customers.customer").values_list(
        "target_id", "changes__other_id"
    )
    dismissed = set()
    for target_id, other_id in rows:
        try:
            first, second = int(target_id), int(other_id)
        except (TypeError, ValueError):
            continue
        dismissed.add((min(first, second), max(first, second)))
    return dismissed


def duplicate_scan(queryset: QuerySet[Customer], *, region: str | None = None) -> DuplicateScan:
    """Candidate pairs among `queryset` (already limited to live, visible customers), best first."""
    with cyclic_gc_paused():
        return _duplicate_scan(queryset, region=region)


def _duplicate_scan(queryset: QuerySet[Customer], *, region: str | None) -> DuplicateScan:
    frame, keys = _frame(queryset, region or default_phone_region())
    if frame.empty:
        return DuplicateScan.empty()
    parts = []
    skipped_total = 0
    han = frame.set_index("id")["han"]
    name = frame.set_index("id")["name"]
    common = pd.Series(_common_names(frame).to_numpy(), index=frame["id"])
    for code, score, columns in (
        ("email", EMAIL_SCORE, ["email"]),
        ("phone", PHONE_SCORE, ["phone"]),
        ("name", NAME_EXACT_SCORE, ["city", "name"]),
        ("name_reordered", NAME_REORDERED_SCORE, ["city", "name_sorted"]),
    ):
        pairs, skipped = _pairs_on(frame, columns)
        skipped_total += skipped if code != "name_reordered" else 0
        signal = "name" if code.startswith("name") else code
        pairs = pairs.assign(code=code, signal=signal, score=score, similarity=float("nan"))
        if code == "name_reordered":
            # Chinese names are read surname first: the same characters' sounds in another order are
            # another person (李颖洋 / 杨丽颖). A Latin spelling may put the surname last ("Wei Zhang").
            pairs = pairs[~_both(pairs, han)]
            pairs = pairs[pairs["first_id"].map(name) != pairs["second_id"].map(name)]
        if code in ("name", "name_reordered"):
            common_pair = _either(pairs, common)
            pairs.loc[common_pair, "code"] = "name_common"
            pairs.loc[common_pair, "score"] = NAME_COMMON_SCORE
        parts.append(pairs)
    similar = _similar_name_pairs(frame, keys)
    if not similar.empty:
        similar = similar.assign(
            code="name_similar", signal="name", score=(similar["similarity"] * NAME_MAX_SCORE).round()
        )
        similar.loc[_either(similar, common), "score"] = similar["score"].clip(upper=NAME_COMMON_SCORE)
        parts.append(similar)
    parts = [part for part in parts if not part.empty]
    if not parts:
        return DuplicateScan.empty(len(frame), skipped_total)
    reasons = pd.concat(parts, ignore_index=True)
    # One name reason per pair: the best (equal names also have their words in the same order).
    reasons = reasons.sort_values("score", ascending=False, kind="stable")
    reasons = reasons.drop_duplicates(["first_id", "second_id", "signal"], keep="first")
    reasons["bits"] = reasons["code"].map(REASON_BITS)
    reasons["reason_count"] = 1
    pairs = reasons.groupby(["first_id", "second_id"], as_index=False, sort=False).agg(
        score=("score", "max"),
        bits=("bits", "sum"),
        similarity=("similarity", "max"),
        reasons=("reason_count", "sum"),
    )
    dismissed = _dismissed_pairs()
    if dismissed:
        index = pd.MultiIndex.from_frame(pairs[["first_id", "second_id"]])
        pairs = pairs[~index.isin(list(dismissed))]
    pairs = pairs.astype({"first_id": "int64", "second_id": "int64", "score": "int64", "bits": "int64"})
    pairs = pairs.sort_values(
        ["score", "reasons", "first_id", "second_id"], ascending=[False, False, True, True], kind="stable"
    )
    return DuplicateScan(
        pairs.head(MAX_PAIRS)[["first_id", "second_id", "score", "bits", "similarity"]],
        customers_scanned=len(frame),
        skipped_groups=skipped_total,
        total=len(pairs),
    )
