"""The filter language: LangChain's vector-store operators, checked against plain Python.

Each case pairs a filter with a predicate written independently (a comprehension over the
metadata); a search with ``k`` = all documents must return exactly the documents it accepts, on
the ANN path and the exact path. A callable filter gets a deep copy: its edits never reach the
index.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from late_interaction import LateInteractionIndex

N = 60


def _metas():
    metas = []
    for i in range(N):
        meta = {"n": i, "group": i % 7, "tag": "abc"[i % 3], "tags": ["x", f"g{i % 4}"]}
        if i % 5 == 0:
            meta["note"] = f"note {i}"  # a key only some documents have
        if i % 9 == 0:
            meta["group"] = None
        metas.append(meta)
    return metas


CASES = {
    "gt": ({"n": {"$gt": 31}}, lambda m: m["n"] > 31),
    "gte_lt": ({"n": {"$gte": 10, "$lt": 20}}, lambda m: 10 <= m["n"] < 20),
    "lte": ({"n": {"$lte": 4}}, lambda m: m["n"] <= 4),
    "eq": ({"tag": {"$eq": "b"}}, lambda m: m["tag"] == "b"),
    "ne": ({"tag": {"$ne": "b"}}, lambda m: m["tag"] != "b"),
    "in": ({"group": {"$in": [1, 2]}}, lambda m: m["group"] in (1, 2)),
    "nin": ({"group": {"$nin": [1, 2]}}, lambda m: m["group"] not in (1, 2)),
    "plain_list_is_any_of": ({"group": [3, 4]}, lambda m: m["group"] in (3, 4)),
    "plain_value": ({"tag": "a", "group": 3}, lambda m: m["tag"] == "a" and m["group"] == 3),
    "exists": ({"note": {"$exists": True}}, lambda m: "note" in m),
    "not_exists": ({"note": {"$exists": False}}, lambda m: "note" not in m),
    "missing_key_ne": ({"note": {"$ne": "note 5"}}, lambda m: m.get("note") != "note 5"),
    "missing_key_gt": ({"note": {"$gt": "note 3"}}, lambda m: m.get("note", "") > "note 3"),
    "none_value_gt": ({"group": {"$gt": 4}}, lambda m: m["group"] is not None and m["group"] > 4),
    "contains_list": ({"tags": {"$contains": "g1"}}, lambda m: "g1" in m["tags"]),
    "contains_str": ({"note": {"$contains": "1"}}, lambda m: "1" in m.get("note", "")),
    "and": (
        {"$and": [{"n": {"$gt": 10}}, {"tag": "c"}]},
        lambda m: m["n"] > 10 and m["tag"] == "c",
    ),
    "or": (
        {"$or": [{"n": {"$lt": 5}}, {"group": 6}]},
        lambda m: m["n"] < 5 or m["group"] == 6,
    ),
    "not": ({"$not": {"tag": {"$in": ["a", "b"]}}}, lambda m: m["tag"] not in ("a", "b")),
    "nested_logic": (
        {"$or": [{"$and": [{"n": {"$gte": 40}}, {"tag": "a"}]}, {"$not": {"n": {"$gt": 3}}}]},
        lambda m: (m["n"] >= 40 and m["tag"] == "a") or not m["n"] > 3,
    ),
    "logic_beside_fields": (
        {"tag": "b", "$or": [{"n": {"$lt": 10}}, {"n": {"$gt": 50}}]},
        lambda m: m["tag"] == "b" and (m["n"] < 10 or m["n"] > 50),
    ),
}


class _Encoder:
    """Word -> seeded random unit vector (the filter, not the ranking, is under test)."""

    dim = 8

    def _m(self, text):
        rows = [
            np.random.default_rng(zlib.crc32(w.encode())).standard_normal(8) for w in text.split()
        ]
        m = np.stack(rows).astype(np.float32)
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    def encode_documents(self, texts, **kw):
        return [self._m(t) for t in texts]

    def encode_queries(self, texts, **kw):
        return [self._m(t) for t in texts]

    def fingerprint(self):
        return {"kind": "filter-test"}


@pytest.fixture(scope="module")
def index():
    ix = LateInteractionIndex(_Encoder())
    ix.add([f"w{i % 11} w{i % 13} common" for i in range(N)],
           ids=[f"d{i}" for i in range(N)], metadatas=_metas())  # fmt: skip
    return ix


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("exact", [False, True], ids=["ann", "exact"])
def test_operator_filter_matches_plain_python(case, exact, index):
    flt, predicate = CASES[case]
    expected = {f"d{i}" for i, m in enumerate(_metas()) if predicate(m)}
    assert 0 < len(expected) < N, "a case must discriminate"
    got = {h.id for h in index.search("w1 common", k=N, filter=flt, exact=exact)}
    assert got == expected


def test_callable_filter_edits_never_reach_the_index(index):
    before = [(d.id, d.metadata) for d in index.get(index.ids)]

    def vandal(meta):
        meta["tags"].append("edited")  # nested list
        meta["n"] = -1
        meta.clear()
        return True

    assert len(index.search("w1 common", k=5, filter=vandal)) == 5
    assert [(d.id, d.metadata) for d in index.get(index.ids)] == before
