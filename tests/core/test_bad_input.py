"""Bad input to the core index: one case per input class, each a clear error and no change.

Every case runs a call that must fail, checks the exception type and that its message names the
problem (and how to fix it), then checks the index is exactly as before: same length, ids,
stored documents and search results, and a save/load round trip that gives the same again.
"""

from __future__ import annotations

import numpy as np
import pytest

from late_interaction import IndexConfig, LateInteractionIndex
from late_interaction.exceptions import DimensionMismatchError

pytestmark = pytest.mark.usefixtures("no_fsync")  # saves here test content, not power loss

QUERIES = ["w1 w2 w3", "w10 w20", "w5"]
DIM = 16
SURROGATE = "bad \ud800 text"


def _corpus(ref, n=24):
    ids, texts, metas = ref.make_corpus(n, seed=3)
    for i, meta in enumerate(metas):
        meta["nested"] = {"tags": [f"t{i % 4}"], "score": float(i)}
    return ids, texts, metas


def observe(index: LateInteractionIndex):
    """Everything a user can see of an index (ids in order, documents, ANN and exact hits)."""
    ids = index.ids
    docs = [(d.id, d.text, d.metadata) for d in index.get(ids)]
    hits = [
        [(h.id, round(h.score, 4)) for h in index.search(q, k=5, exact=exact)]
        for q in QUERIES
        for exact in (False, True)
    ]
    return len(index), ids, docs, hits


def assert_unchanged(index, before, tmp_path, model):
    assert observe(index) == before
    saved = index.save(tmp_path / "after")
    assert observe(LateInteractionIndex.load(saved, model)) == before
    index.add(["w7 w8 w9 fresh"], ids=["fresh-doc"])  # later writes still work
    assert "fresh-doc" in index and len(index) == before[0] + 1


@pytest.fixture
def built(ref):
    model = ref.FakeEncoder(DIM)
    index = LateInteractionIndex(model)
    ids, texts, metas = _corpus(ref)
    index.add(texts, ids=ids, metadatas=metas)
    return index, model


def _texts(n, bad_at, bad):
    texts = [f"w{i} w{i + 1}" for i in range(n)]
    texts[bad_at] = bad
    return texts


def _emb(rows=3, dim=DIM, value=None, seed=0):
    m = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    if value is not None:
        m[1, 2] = value
    return m


def _nest(depth):
    meta: dict = {"leaf": 1}
    for _ in range(depth):
        meta = {"k": meta}
    return meta


def _embs_bad_at(n, bad_at, bad):
    embs = [_emb(seed=i) for i in range(n)]
    embs[bad_at] = bad
    return embs


def _big_add_bad_meta(ix):
    metas = [{"n": i} for i in range(300)]
    metas[290] = {"n": object()}
    ix.add(_texts(300, 0, "w0"), ids=[f"x{i}" for i in range(300)], metadatas=metas)


# (call, exception, message pattern): the pattern names the problem and, where it can, the fix.
CASES = {
    # texts
    "texts_none": (lambda ix: ix.add(None), TypeError, r"texts must be a str"),
    "text_not_str_at_290": (
        lambda ix: ix.add(_texts(300, 290, 7)), TypeError, r"texts\[290\] must be a str; got int"),
    "text_surrogate_at_290": (
        lambda ix: ix.add(_texts(300, 290, SURROGATE)), ValueError,
        r"texts\[290\] is not valid Unicode.*errors='replace'"),
    "text_bytes": (
        lambda ix: ix.add([b"w1 w2"]), TypeError, r"texts\[0\] must be a str; got bytes"),
    # ids
    "ids_count": (lambda ix: ix.add(["w1", "w2"], ids=["a"]), ValueError, r"got 1 ids for 2 texts"),
    "ids_duplicate": (
        lambda ix: ix.add(["w1", "w2"], ids=["a", "a"]), ValueError, r"duplicate ids in one call"),
    "id_not_str": (
        lambda ix: ix.add(["w1", "w2"], ids=["a", 5]), TypeError, r"ids\[1\] = 5.*str\(\)"),
    "id_empty": (lambda ix: ix.add(["w1"], ids=[""]), TypeError, r"non-empty strings"),
    "id_surrogate": (
        lambda ix: ix.add(["w1", "w2"], ids=["a", "b\udc80"]), ValueError,
        r"ids\[1\] is not valid Unicode"),
    "ids_not_iterable": (lambda ix: ix.add(["w1"], ids=5), TypeError, r"ids must be a string"),
    "upsert_with_bad_item": (
        lambda ix: ix.add(["w1", "w2"], ids=["d0", "new"], metadatas=[{}, {"x": {1, 2}}]),
        ValueError, r"metadatas\[1\] is not JSON-serialisable"),
    # metadata
    "metas_count": (
        lambda ix: ix.add(["w1", "w2"], metadatas=[{}]), ValueError, r"got 1 metadatas for 2"),
    "meta_not_dict": (
        lambda ix: ix.add(["w1"], metadatas=[["a"]]), TypeError, r"metadatas\[0\] must be a dict"),
    "meta_key_not_str": (
        lambda ix: ix.add(["w1"], metadatas=[{1: "a"}]), TypeError, r"keys must be strings"),
    "meta_not_json": (
        lambda ix: ix.add(["w1"], metadatas=[{"a": object()}]), ValueError,
        r"not JSON-serialisable.*use str, int, float"),
    "meta_nan": (
        lambda ix: ix.add(["w1"], metadatas=[{"a": float("nan")}]), ValueError,
        r"not JSON-serialisable"),
    "meta_value_surrogate": (
        lambda ix: ix.add(["w1"], metadatas=[{"a": {"b": ["ok", "x\ud800"]}}]), ValueError,
        r"metadatas\[0\]\['a'\]\['b'\]\[1\] is not valid Unicode"),
    "meta_key_surrogate": (
        lambda ix: ix.add(["w1"], metadatas=[{"\udfff": 1}]), ValueError,
        r"a key of metadatas\[0\] is not valid Unicode"),
    "meta_5000_levels": (
        lambda ix: ix.add(["w1"], metadatas=[_nest(5000)]), ValueError,
        r"nested more than 32 levels.*flatten"),
    "meta_bad_at_290": (_big_add_bad_meta, ValueError, r"metadatas\[290\]"),
    # embeddings (add_embeddings)
    "emb_count": (
        lambda ix: ix.add_embeddings([_emb()], ["w1", "w2"]), ValueError,
        r"got 1 embeddings for 2 texts"),
    "emb_dim": (
        lambda ix: ix.add_embeddings([_emb(dim=8)], ["w1"]), DimensionMismatchError,
        r"embeddings\[0\] has dim 8.*index's model"),
    "emb_1d": (
        lambda ix: ix.add_embeddings([np.ones(DIM)], ["w1"]), ValueError,
        r"embeddings\[0\] must be a \(n_tokens >= 1, dim\) matrix"),
    "emb_no_rows": (
        lambda ix: ix.add_embeddings([np.zeros((0, DIM))], ["w1"]), ValueError, r"n_tokens >= 1"),
    "emb_nan": (
        lambda ix: ix.add_embeddings([_emb(value=np.nan)], ["w1"]), ValueError,
        r"NaN or infinite values \(first at row 1, column 2\)"),
    "emb_inf": (
        lambda ix: ix.add_embeddings([_emb(value=np.inf)], ["w1"]), ValueError, r"infinite"),
    "emb_float16_overflow": (
        lambda ix: ix.add_embeddings([_emb(value=7e4)], ["w1"]), ValueError,
        r"magnitude 70000.*65504.*storage_dtype='float32'"),
    "emb_not_numeric": (
        lambda ix: ix.add_embeddings([[["a"] * DIM]], ["w1"]), ValueError,
        r"embeddings\[0\] must be a numeric"),
    "emb_single_matrix": (
        lambda ix: ix.add_embeddings(_emb(), ["w1"]), TypeError, r"Wrap a single token matrix"),
    "emb_bad_at_290": (
        lambda ix: ix.add_embeddings(_embs_bad_at(300, 290, _emb(value=np.nan)),
                                     [f"t{i}" for i in range(300)]),
        ValueError, r"embeddings\[290\] holds NaN"),
    # delete / get
    "delete_missing": (
        lambda ix: ix.delete(["d0", "nope"]), KeyError, r"cannot delete ids.*'nope'"),
    "delete_not_iterable": (lambda ix: ix.delete(3), TypeError, r"ids must be a string"),
    "get_missing": (lambda ix: ix.get(["d1", "nope"]), KeyError, r"not in the index: \['nope'\]"),
    # k and search options
    "k_zero": (lambda ix: ix.search("w1", k=0), ValueError, r"k must be a positive integer"),
    "k_str": (lambda ix: ix.search("w1", k="3"), ValueError, r"k must be a positive integer"),
    "k_bool": (lambda ix: ix.search("w1", k=True), ValueError, r"k must be a positive integer"),
    "query_ef_negative": (
        lambda ix: ix.search("w1", query_ef=-1), ValueError, r"query_ef must be a positive"),
    "k_token_zero": (
        lambda ix: ix.search("w1", k_token=0), ValueError, r"k_token must be a positive"),
    "exact_with_ann_option": (
        lambda ix: ix.search("w1", exact=True, query_ef=10), ValueError, r"exact"),
    # queries
    "query_none": (lambda ix: ix.search(None), TypeError, r"query must be a str or a"),
    "query_surrogate": (
        lambda ix: ix.search("w1 \ud800"), ValueError, r"queries\[0\] is not valid Unicode"),
    "query_matrix_dim": (
        lambda ix: ix.search(np.ones((2, 8), np.float32)), DimensionMismatchError, r"dim 8"),
    "query_matrix_nan": (
        lambda ix: ix.search(_emb(value=np.nan)), ValueError, r"query\[0\] holds NaN"),
    # filters
    "filter_wrong_type": (
        lambda ix: ix.search("w1", filter=["group"]), TypeError, r"filter must be None, a mapping"),
    "filter_unknown_operator": (
        lambda ix: ix.search("w1", filter={"group": {"$regex": "a"}}), ValueError,
        r"unknown filter operator '\$regex' on key 'group'; supported: \$eq"),
    "filter_unknown_logical": (
        lambda ix: ix.search("w1", filter={"$xor": [{"group": 1}]}), ValueError,
        r"unknown filter operator '\$xor'"),
    "filter_field_op_at_top": (
        lambda ix: ix.search("w1", filter={"$gt": 3}), ValueError, r"go inside a key"),
    "filter_in_not_list": (
        lambda ix: ix.search("w1", filter={"group": {"$in": 3}}), TypeError,
        r"\$in on key 'group' takes a list"),
    "filter_and_not_list": (
        lambda ix: ix.search("w1", filter={"$and": {"group": 1}}), ValueError,
        r"non-empty list of filters"),
    "filter_not_not_mapping": (
        lambda ix: ix.search("w1", filter={"$not": [1]}), TypeError, r"must be a mapping"),
    "filter_exists_not_bool": (
        lambda ix: ix.search("w1", filter={"group": {"$exists": "yes"}}), TypeError,
        r"True or False"),
    "filter_gt_list_operand": (
        lambda ix: ix.search("w1", filter={"group": {"$gt": [1]}}), TypeError,
        r"compares with a number or a string"),
    "filter_gt_type_mismatch": (
        lambda ix: ix.search("w1", filter={"group": {"$gt": "3"}}), TypeError,
        r"cannot compare with the metadata value.*operand the metadata's type"),
    "filter_mixed_keys": (
        lambda ix: ix.search("w1", filter={"group": {"$gt": 1, "x": 2}}), ValueError,
        r"mixes operators and plain keys"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_and_changes_nothing(case, built, tmp_path):
    index, model = built
    call, exc, pattern = CASES[case]
    before = observe(index)
    with pytest.raises(exc, match=pattern):
        call(index)
    assert_unchanged(index, before, tmp_path, model)


def test_surrogate_metadata_never_reaches_save(built, tmp_path):
    """The issue's case: a surrogate used to be accepted, then every save() failed."""
    index, _ = built
    with pytest.raises(ValueError, match="not valid Unicode"):
        index.add(["w1"], ids=["s"], metadatas=[{"title": "caf\udce9"}])
    index.save(tmp_path / "ok")  # still saveable


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda ix: ix.add_embeddings([_emb() * 3], ["w1"]), r"unit-norm"),
        (lambda ix: ix.add_embeddings([_emb(value=np.nan)], ["w1"]), r"NaN"),
        (lambda ix: ix.add_embeddings([_emb(value=np.inf)], ["w1"]), r"infinite.*row 1"),
        # A bad matrix after a good one: the call is checked whole, nothing is added.
        (lambda ix: ix.add_embeddings([_emb(), _emb() * 0.5], ["w1", "w2"]), r"\[1\].*norm"),
    ],
    ids=["not_unit", "nan", "inf", "second_not_unit"],
)
def test_compressed_index_refuses_bad_embeddings(call, pattern, ref, tmp_path):
    model = ref.FakeEncoder(DIM)
    index = LateInteractionIndex(model, config=IndexConfig(nbits=2, n_centroids=8))
    ids, texts, metas = _corpus(ref, 40)
    index.add(texts, ids=ids, metadatas=metas)
    before = observe(index)
    with pytest.raises(ValueError, match=pattern):
        call(index)
    assert_unchanged(index, before, tmp_path, model)


def test_float32_store_takes_values_float16_cannot(ref):
    index = LateInteractionIndex(ref.FakeEncoder(DIM), config=IndexConfig(storage_dtype="float32"))
    index.add_embeddings([_emb(value=7e4)], ["w1"], ids=["big"])
    assert index.search(_emb(), k=1, exact=True)[0].id == "big"
