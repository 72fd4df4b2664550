"""LateInteractionIndex behaviour against independent references (naive MaxSim, brute force).

A deterministic fake encoder stands in for ColBERT here (it is not the subject); the real-data
test at the end uses the embedded MiniLM model on SciFact passages.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from late_interaction import (
    DimensionMismatchError,
    EmptyIndexError,
    IndexConfig,
    LateInteractionIndex,
    SearchHit,
    StoredDocument,
)

# float32 storage so scores match the float64 reference to 1e-4; no shortcut to an exact scan
ANN_ONLY = IndexConfig(storage_dtype="float32", exact_scan_tokens=0, exact_scan_fraction=0.0)
DEFAULT_THRESHOLDS = IndexConfig(storage_dtype="float32")
WIDE = {"k_token": 400, "query_ef": 800}


def _build(encoder, ref, n=300, config=ANN_ONLY, seed=0):
    ids, texts, metas = ref.make_corpus(n, seed)
    index = LateInteractionIndex(encoder, config=config)
    index.add(texts, ids=ids, metadatas=metas, batch_size=16)
    return (
        index,
        dict(zip(ids, encoder.encode_documents(texts), strict=True)),
        dict(zip(ids, metas, strict=True)),
    )


def _assert_same_ranking(hits, expected, atol=1e-4):
    assert [h.id for h in hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=atol)
    assert [h.rank for h in hits] == list(range(len(hits)))


QUERIES = ["w1 w2 w3", "w10 w200 w333 w7 w8", "w399", "w5 w5 w6 w150 w151 w152"]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_wide_ann_equals_brute_force(fake_encoder, ref, dtype):
    config = IndexConfig(storage_dtype=dtype, exact_scan_tokens=0, exact_scan_fraction=0.0)
    index, docs, _ = _build(fake_encoder, ref, config=config)
    if dtype == "float16":  # the reference scores what the store holds
        docs = {i: m.astype(np.float16).astype(np.float32) for i, m in docs.items()}
    for q in QUERIES:
        qm = fake_encoder.encode_queries([q])[0]
        _assert_same_ranking(index.search(q, k=10, **WIDE), ref.brute_force(qm, docs, 10))
        _assert_same_ranking(index.search(q, k=10, exact=True), ref.brute_force(qm, docs, 10))


def test_default_ann_finds_the_obvious_best(fake_encoder, ref):
    index, _docs, _ = _build(fake_encoder, ref)
    text = index.get(["d42"])[0].text
    assert index.search(text, k=1)[0].id == "d42"


def test_search_batch_and_embeddings_agree_with_search(fake_encoder, ref):
    index, _, _ = _build(fake_encoder, ref)
    batch = index.search_batch(QUERIES, k=5)
    matrices = [fake_encoder.encode_queries([q])[0] for q in QUERIES]
    mixed = index.search_batch([QUERIES[0], *matrices[1:]], k=5)  # texts and matrices together
    for q, m, hits, hits_mixed in zip(QUERIES, matrices, batch, mixed, strict=True):
        assert hits == index.search(q, k=5) == hits_mixed
        assert hits == index.search(m, k=5)
    assert index.search_batch([], k=3) == []
    with pytest.raises(TypeError, match="Wrap a single token matrix in a list"):
        index.search_batch(matrices[0], k=5)


def test_hits_carry_text_and_a_metadata_copy(fake_encoder, ref):
    index, _, metas = _build(fake_encoder, ref, n=50)
    hit = index.search("w1 w2", k=1)[0]
    assert isinstance(hit, SearchHit) and hit.text == index.get(hit.id)[0].text
    assert hit.metadata == metas[hit.id]
    hit.metadata["group"] = "changed"
    assert index.get(hit.id)[0].metadata == metas[hit.id]


def test_k_larger_than_index_returns_all(fake_encoder, ref):
    index, docs, _ = _build(fake_encoder, ref, n=12)
    hits = index.search("w1", k=100)
    assert sorted(h.id for h in hits) == sorted(docs)
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))


def test_errors(fake_encoder, ref, tmp_path):
    index = LateInteractionIndex(fake_encoder)
    with pytest.raises(EmptyIndexError, match="no documents"):
        index.search("w1")
    index.add(["w1 w2"], ids=["a"])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            index.search("w1", k=bad)
    with pytest.raises(ValueError, match="k_token"):
        index.search("w1", k_token=0)
    with pytest.raises(TypeError, match="filter must be"):
        index.search("w1", filter=["group"])
    with pytest.raises(TypeError, match="query must be a str or a"):
        index.search(42)
    with pytest.raises(TypeError, match="exact must be True or False"):
        index.search("w1", exact="yes")
    with pytest.raises(ValueError, match="exact=True skips"):
        index.search("w1", exact=True, k_token=8)
    with pytest.raises(DimensionMismatchError):
        index.search(np.ones((3, 5), np.float32))
    with pytest.raises(DimensionMismatchError):
        index.add_embeddings([np.ones((3, 5), np.float32)], ["x"])
    with pytest.raises(ValueError, match="JSON"):
        index.add(["w3"], metadatas=[{"x": {1, 2}}])
    with pytest.raises(KeyError, match="nope"):
        index.delete(["a", "nope"])
    assert "a" in index  # nothing deleted when one id is unknown
    with pytest.raises(KeyError, match="missing"):
        index.get(["a", "missing"])
    with pytest.raises(FileExistsError):
        index.save(_nonempty_dir(tmp_path))
    index.delete("a")
    with pytest.raises(EmptyIndexError):
        index.search("w1")


def _nonempty_dir(tmp_path):
    d = tmp_path / "not-an-index"  # under pytest's tmp_path: removed with it, not left in /tmp
    d.mkdir()
    (d / "precious.txt").write_text("not an index")
    return d


def test_upsert_replaces_tokens(fake_encoder, ref):
    index, _, _ = _build(fake_encoder, ref, n=100)
    unique = "zzunique1 zzunique2 zzunique3"
    index.add([unique], ids=["new"])
    assert index.search(unique, k=1)[0].id == "new"
    index.add(["w1 w2"], ids=["new"], metadatas=[{"v": 2}])  # upsert: old tokens must vanish
    assert len(index) == 101
    assert index.get("new") == [StoredDocument("new", "w1 w2", {"v": 2})]
    hits = index.search(unique, k=101, **WIDE)
    assert next(h for h in hits if h.id == "new").text == "w1 w2"
    assert len({h.id for h in hits}) == len(hits)  # the old version is never returned


def test_delete_and_compact_preserve_ids_and_results(fake_encoder, ref):
    index, docs, _ = _build(fake_encoder, ref, n=200)
    gone = [f"d{i}" for i in range(0, 200, 3)]
    index.delete(gone)
    live = {i: m for i, m in docs.items() if i not in gone}
    assert len(index) == len(live) and sorted(index.ids) == sorted(live)
    before = {q: index.search(q, k=8, **WIDE) for q in QUERIES}
    for q in QUERIES:
        _assert_same_ranking(
            before[q], ref.brute_force(fake_encoder.encode_queries([q])[0], live, 8)
        )
    index.compact()
    assert sorted(index.ids) == sorted(live)
    for q in QUERIES:
        assert index.search(q, k=8, **WIDE) == before[q]


def test_generated_ids_and_add_embeddings(fake_encoder):
    index = LateInteractionIndex(fake_encoder)
    ids = index.add(["w1 w2", "w3"])
    assert len(ids) == 2 and all(isinstance(i, str) and len(i) == 32 for i in ids)
    emb = fake_encoder.encode_documents(["w9 w8"])
    (new_id,) = index.add_embeddings(emb, ["w9 w8"], ids=["e"], metadatas=[{"k": 1}])
    assert new_id == "e" and index.search("w9", k=1)[0].id == "e"


FILTERS = [
    ({"group": 3}, lambda m: m["group"] == 3),
    ({"tag": ["a", "c"], "even": True}, lambda m: m["tag"] in ("a", "c") and m["even"]),
    ({"missing_key": 1}, lambda m: False),
    (lambda m: m["group"] in (1, 2, 4, 5, 6), lambda m: m["group"] in (1, 2, 4, 5, 6)),  # large
]


@pytest.mark.parametrize("config", [ANN_ONLY, DEFAULT_THRESHOLDS], ids=["ann", "default"])
@pytest.mark.parametrize("case", range(len(FILTERS)))
def test_filter_matches_brute_force(fake_encoder, ref, config, case):
    flt, expected_pred = FILTERS[case]
    index, docs, metas = _build(fake_encoder, ref, n=300, config=config)
    allowed = {i for i, m in metas.items() if expected_pred(m)}
    for q in QUERIES:
        qm = fake_encoder.encode_queries([q])[0]
        hits = index.search(q, k=10, filter=flt, **WIDE)
        assert all(h.id in allowed for h in hits)
        _assert_same_ranking(hits, ref.brute_force(qm, docs, 10, allowed))
        _assert_same_ranking(
            index.search(q, k=10, filter=flt, exact=True), ref.brute_force(qm, docs, 10, allowed)
        )
        # default ANN settings: never a document failing the filter, and k results if possible
        default_hits = index.search(q, k=10, filter=flt)
        assert all(h.id in allowed for h in default_hits)
        assert len(default_hits) == min(10, len(allowed))


def test_ids_restriction_and_filter_combined(fake_encoder, ref):
    index, docs, metas = _build(fake_encoder, ref, n=300)
    subset = [f"d{i}" for i in range(0, 300, 2)] + ["not-there"]
    allowed = {i for i in subset if i in metas and metas[i]["tag"] == "b"}
    for q in QUERIES:
        hits = index.search(q, k=7, ids=subset, filter={"tag": "b"}, **WIDE)
        qm = fake_encoder.encode_queries([q])[0]
        _assert_same_ranking(hits, ref.brute_force(qm, docs, 7, allowed))
    assert index.search("w1", k=5, ids=[]) == []


def test_concurrent_searches_during_adds(fake_encoder, ref):
    ids, texts, metas = ref.make_corpus(600, seed=5)
    index = LateInteractionIndex(fake_encoder, config=ANN_ONLY)
    index.add(texts[:100], ids=ids[:100], metadatas=metas[:100])
    versions = {i: {t} for i, t in zip(ids, texts, strict=True)}  # every text an id ever had
    for start in range(100, 600, 50):
        versions[ids[start - 100]].add(texts[start])
    qms = {q: fake_encoder.encode_queries([q])[0] for q in QUERIES}
    errors: list[BaseException] = []
    done = threading.Event()

    def reader():
        try:
            while not done.is_set():
                for q in QUERIES:
                    hits = index.search(q, k=5, filter={"even": True})
                    assert len(hits) == 5 and len({h.id for h in hits}) == 5
                    for h in hits:
                        assert h.text in versions[h.id] and h.metadata["even"] is True
                        # score computed from the tokens of exactly this text: no torn state
                        tokens = fake_encoder.encode_documents([h.text])[0]
                        assert abs(h.score - ref.naive_maxsim(qms[q], tokens)) < 1e-4
                    scores = [h.score for h in hits]
                    assert scores == sorted(scores, reverse=True)
                    assert 100 <= len(index) <= 600
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for start in range(100, 600, 50):
            part = slice(start, start + 50)
            index.add(texts[part], ids=ids[part], metadatas=metas[part])
            # upsert an older document with new text (same metadata, so the filter still holds)
            index.add([texts[start]], ids=[ids[start - 100]], metadatas=[metas[start - 100]])
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert len(index) == 600


def _scifact(folder, n_docs, n_queries):
    import json

    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        docs = [json.loads(next(f)) for _ in range(n_docs)]
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(next(f))["text"] for _ in range(n_queries)]
    texts = [f"{d['title']} {d['text']}" for d in docs]
    return [str(d["_id"]) for d in docs], texts, queries


@pytest.fixture(scope="module")
def scifact_encoded(default_model, scifact_dir):
    ids, texts, queries = _scifact(scifact_dir, 30, 4)
    reference = default_model.encode_documents(texts)  # independent of the index's own encoding
    return ids, texts, queries, reference, default_model.encode_queries(queries)


def _assert_same_fused_ranking(hits, expected, atol=1e-3):
    assert [h.id for h in hits] == [e[0] for e in expected]
    np.testing.assert_allclose(
        [h.normalized_score for h in hits], [e[1] for e in expected], atol=atol
    )
    np.testing.assert_allclose([h.score for h in hits], [e[2] for e in expected], atol=atol)
    np.testing.assert_allclose([h.dense_score for h in hits], [e[3] for e in expected], atol=atol)


# A cheap graph: equivalence with brute force must come from the wide search, not graph quality.
_CHEAP = {"hnsw_m": 8, "ef_construction": 32, "exact_scan_tokens": 0, "exact_scan_fraction": 0.0}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_real_model_ann_equals_brute_force_on_scifact(
    default_model, scifact_encoded, ref, dtype, st_dense
):
    ids, texts, queries, reference, query_mats = scifact_encoded
    index = LateInteractionIndex(default_model, config=IndexConfig(storage_dtype=dtype, **_CHEAP))
    metas = [{"even": i % 2 == 0} for i in range(len(ids))]
    allowed = {i for i, m in zip(ids, metas, strict=True) if m["even"]}
    wide = {"k_token": 1000, "query_ef": 1500}
    if dtype == "float32":
        # The full path: the index encodes the texts itself, keeps their dense vectors and ranks
        # by the default's fused score; the reference takes its dense vectors from
        # sentence-transformers itself.
        index.add(texts, ids=ids, metadatas=metas, batch_size=16)
        assert index.dense_weight == 0.25
        docs = dict(zip(ids, reference, strict=True))
        doc_dense, q_dense = dict(zip(ids, st_dense(texts), strict=True)), st_dense(queries)
        batch = index.search_batch(queries, k=10, **wide)
        for qm, qd, hits in zip(query_mats, q_dense, batch, strict=True):
            expected = ref.brute_force_fused(qm, qd, docs, doc_dense, 0.25, 10)
            _assert_same_fused_ranking(hits, expected)
            filtered = index.search(qm, k=5, filter={"even": True}, query_dense=qd, **wide)
            expected = ref.brute_force_fused(qm, qd, docs, doc_dense, 0.25, 5, allowed)
            _assert_same_fused_ranking(filtered, expected)
    else:
        # Token matrices without dense vectors: the index keeps none and ranks by MaxSim alone.
        index.add_embeddings(reference, texts, ids=ids, metadatas=metas)
        assert index.dense_weight == 0.0
        docs = {
            i: m.astype(np.float16).astype(np.float32) for i, m in zip(ids, reference, strict=True)
        }
        batch = index.search_batch(queries, k=10, **wide)
        for qm, hits in zip(query_mats, batch, strict=True):
            _assert_same_ranking(hits, ref.brute_force(qm, docs, 10), atol=1e-3)
            filtered = index.search(qm, k=5, filter={"even": True}, **wide)
            _assert_same_ranking(filtered, ref.brute_force(qm, docs, 5, allowed), atol=1e-3)
    single = index.search(queries[0], k=3, **wide)  # batched encoding may differ by float noise
    assert [h.id for h in single] == [h.id for h in batch[0][:3]]
    np.testing.assert_allclose(
        [h.score for h in single], [h.score for h in batch[0][:3]], atol=1e-3
    )


def test_candidate_pruning_keeps_the_exact_top_k(fake_encoder, ref):
    # With every token reachable and a float32 graph, each document's ANN-hit score equals its
    # exact MaxSim, so pruning to 4 * k candidates must still return the brute-force top-k.
    config = IndexConfig(
        storage_dtype="float32",
        hnsw_storage="float32",
        exact_scan_tokens=0,
        exact_scan_fraction=0.0,
        n_full_scores=1,
    )
    index, docs, _ = _build(fake_encoder, ref, config=config)
    for q in QUERIES:
        qm = fake_encoder.encode_queries([q])[0]
        _assert_same_ranking(index.search(q, k=5, **WIDE), ref.brute_force(qm, docs, 5))


def test_candidate_pruning_cuts_to_n_full_best_by_ann_hits():
    from late_interaction._index.candidates import best_candidates

    # 3 documents of 2 tokens each (token t belongs to document t // 2); 2 query tokens.
    token_doc = np.array([0, 0, 1, 1, 2, 2])
    token_ids = np.array([[0, 2, 4], [1, 3, 5]])
    sims = np.array([[0.9, 0.5, 0.1], [0.8, 0.7, 0.2]])  # approx: doc0 1.7, doc1 1.2, doc2 0.3
    allowed = np.ones(3, dtype=bool)
    assert best_candidates(token_doc, allowed, token_ids, sims, 3).tolist() == [0, 1, 2]
    assert best_candidates(token_doc, allowed, token_ids, sims, 2).tolist() == [0, 1]
    assert best_candidates(token_doc, allowed, token_ids, sims, 1).tolist() == [0]
    allowed[0] = False  # a filtered-out document is never a candidate
    assert best_candidates(token_doc, allowed, token_ids, sims, 1).tolist() == [1]
    # unpublished token ids (a concurrent add) are ignored
    assert best_candidates(
        token_doc, allowed, np.array([[9, 2]]), np.array([[1.0, 0.1]]), 5
    ).tolist() == [1]


def test_n_full_scores_must_be_positive():
    with pytest.raises(ValueError, match="n_full_scores"):
        IndexConfig(n_full_scores=0)
