"""QdrantIndex: results vs brute-force MaxSim, server-side filters, writes, reopening, identity.

Runs offline on qdrant-client's local mode (``QdrantClient(":memory:")`` and ``path=``), the
same API as a Qdrant server. The reference is the naive float64 MaxSim of tests/core/conftest.py.
"""

from __future__ import annotations

import json
from itertools import islice

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from late_interaction import (
    DimensionMismatchError,
    EmptyIndexError,
    LateInteractionIndex,
    ModelMismatchError,
    QdrantIndex,
)

N = 300


@pytest.fixture(scope="module")
def corpus():
    from tests.core.conftest import FakeEncoder, make_corpus

    encoder = FakeEncoder()
    ids, texts, metas = make_corpus(N, seed=3)
    for i, meta in enumerate(metas):  # more value kinds for the filter cases
        meta["score"] = i / 10
        meta["tags"] = ["x", "y"] if i % 4 == 0 else ["y"]
        meta["dotted.key"] = i % 3
        if i % 5 == 0:
            meta["maybe"] = None
        elif i % 5 == 1:
            meta["maybe"] = "set"
    docs = dict(zip(ids, encoder.encode_documents(texts), strict=True))
    return encoder, ids, texts, metas, docs


@pytest.fixture(scope="module", params=["none", "mean"])
def index(request, corpus):
    encoder, ids, texts, metas, _ = corpus
    client = QdrantClient(":memory:")
    idx = QdrantIndex(encoder, client=client, first_stage=request.param, prefetch_limit=N)
    idx.add(texts, ids, metas)
    yield idx
    client.close()


def queries(texts, n=6):
    rng = np.random.default_rng(7)
    picks = rng.choice(len(texts), size=n, replace=False)
    return [" ".join(texts[i].split()[:4]) + " w0" for i in picks]


def test_results_equal_brute_force_maxsim(index, corpus, ref):
    encoder, _, texts, _, docs = corpus
    for q in queries(texts):
        qm = encoder.encode_queries([q])[0]
        expected = ref.brute_force(qm, docs, 10)
        for exact in (False, True):
            hits = index.search(q, 10, exact=exact)
            assert [h.id for h in hits] == [i for i, _ in expected]
            np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)
            np.testing.assert_allclose(
                [h.normalized_score for h in hits], [s / qm.shape[0] for _, s in expected],
                atol=1e-6,
            )  # fmt: skip
            assert [h.rank for h in hits] == list(range(10))


def test_search_batch_equals_search_and_takes_matrices(index, corpus):
    encoder, _, texts, _, _ = corpus
    qs = queries(texts, 3)
    batch = index.search_batch([qs[0], encoder.encode_queries([qs[1]])[0], qs[2]], 5)
    single = [index.search(q, 5) for q in qs]
    assert [[h.id for h in hits] for hits in batch] == [[h.id for h in hits] for hits in single]


def test_hits_carry_text_and_metadata(index, corpus):
    _, ids, texts, metas, _ = corpus
    by_id = {i: (t, m) for i, t, m in zip(ids, texts, metas, strict=True)}
    for hit in index.search(texts[10], 5):
        assert (hit.text, hit.metadata) == by_id[hit.id]


def test_mean_first_stage_prefetches_its_candidates(corpus, ref):
    # With prefetch_limit=k the answer is the k best documents by the pooled vector, ranked by
    # MaxSim: computed here independently, it differs from the exact answer for some query.
    encoder, ids, texts, metas, docs = corpus
    idx = QdrantIndex(encoder, client=QdrantClient(":memory:"), first_stage="mean")
    idx.add(texts, ids, metas)

    def unit_mean(m):
        v = np.asarray(m, np.float64).mean(axis=0)
        return v / np.linalg.norm(v)

    means = {i: unit_mean(m) for i, m in docs.items()}
    differs = 0
    for q in queries(texts):
        qm = encoder.encode_queries([q])[0]
        qv = unit_mean(qm)
        first = sorted(means, key=lambda i: -float(means[i] @ qv))[:5]
        expected = [i for i, _ in ref.brute_force(qm, {i: docs[i] for i in first}, 5)]
        got = [h.id for h in idx.search(q, 5, prefetch_limit=5)]
        assert got == expected
        exact = [h.id for h in idx.search(q, 5, exact=True)]
        differs += got != exact
    assert differs > 0, "the first stage must change some answer at prefetch_limit=k"


def _has(meta, key):
    return key in meta


FILTERS = {
    "eq": ({"group": 3}, lambda m: m["group"] == 3),
    "any_of": ({"tag": ["a", "c"]}, lambda m: m["tag"] in ("a", "c")),
    "bool": ({"even": True}, lambda m: m["even"]),
    "float_eq": ({"score": 1.5}, lambda m: m["score"] == 1.5),
    "ne": ({"group": {"$ne": 3}}, lambda m: m["group"] != 3),
    "gt_lte": ({"score": {"$gt": 5, "$lte": 20.5}}, lambda m: 5 < m["score"] <= 20.5),
    "gte_lt": ({"group": {"$gte": 2, "$lt": 4}}, lambda m: 2 <= m["group"] < 4),
    "in": ({"group": {"$in": [1, 5]}}, lambda m: m["group"] in (1, 5)),
    "nin": ({"tag": {"$nin": ["a", "b"]}}, lambda m: m["tag"] not in ("a", "b")),
    "contains": ({"tags": {"$contains": "x"}}, lambda m: "x" in m["tags"]),
    "exists": ({"maybe": {"$exists": True}}, lambda m: m.get("maybe") is not None),
    "not_exists": ({"maybe": {"$exists": False}}, lambda m: m.get("maybe") is None),
    "null": ({"maybe": None}, lambda m: _has(m, "maybe") and m["maybe"] is None),
    "dotted_key": ({"dotted.key": 2}, lambda m: m["dotted.key"] == 2),
    "and": (
        {"$and": [{"group": {"$gte": 3}}, {"even": False}]},
        lambda m: m["group"] >= 3 and not m["even"],
    ),
    "or": ({"$or": [{"group": 0}, {"tag": "c"}]}, lambda m: m["group"] == 0 or m["tag"] == "c"),
    "not": ({"$not": {"tag": "a"}}, lambda m: m["tag"] != "a"),
    "empty_or": ({"$or": []}, lambda m: False),
    "missing_key": ({"absent": 1}, lambda m: False),
}


@pytest.mark.parametrize("case", sorted(FILTERS))
def test_filters_are_applied_by_qdrant(case, index, corpus, ref):
    encoder, ids, texts, metas, docs = corpus
    flt, predicate = FILTERS[case]
    allowed = {i for i, m in zip(ids, metas, strict=True) if predicate(m)}
    q = queries(texts, 1)[0]
    qm = encoder.encode_queries([q])[0]
    hits = index.search(q, N, filter=flt)
    assert {h.id for h in hits} == allowed
    expected = ref.brute_force(qm, docs, 10, allowed)
    assert [h.id for h in index.search(q, 10, filter=flt)] == [i for i, _ in expected]


def test_filter_forms_and_errors(index, corpus):
    _, ids, texts, metas, _ = corpus
    q = texts[0]
    native = models.Filter(
        must=[models.FieldCondition(key="metadata.group", match=models.MatchValue(value=2))]
    )
    assert {h.id for h in index.search(q, N, filter=native)} == {
        i for i, m in zip(ids, metas, strict=True) if m["group"] == 2
    }
    with pytest.raises(TypeError, match="callable cannot run"):
        index.search(q, filter=lambda m: True)
    with pytest.raises(ValueError, match=r"'\$regex' on 'tag' has no Qdrant translation"):
        index.search(q, filter={"tag": {"$regex": "a.*"}})
    with pytest.raises(ValueError, match="unknown logical operator"):
        index.search(q, filter={"$nor": [{"tag": "a"}]})
    with pytest.raises(ValueError, match="compares numbers"):
        index.search(q, filter={"tag": {"$gt": "a"}})
    with pytest.raises(ValueError, match="takes a list"):
        index.search(q, filter={"group": {"$in": 3}})
    with pytest.raises(TypeError, match="filter must be"):
        index.search(q, filter=3)


def test_ids_restriction_and_options(index, corpus):
    _, ids, texts, _, _ = corpus
    chosen = [ids[4], ids[40], ids[200], "not-there"]
    hits = index.search(texts[0], 10, ids=chosen, filter={"group": {"$gte": 0}})
    assert {h.id for h in hits} == set(chosen[:3])
    with pytest.raises(ValueError, match="k_token"):
        index.search(texts[0], k_token=5)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(texts[0], k=0)
    with pytest.raises(ValueError, match="query_ef"):
        index.search(texts[0], exact=True, query_ef=10)
    with pytest.raises(ValueError, match=r"queries\[1\] is not valid Unicode"):
        index.search_batch([texts[0], "bad \ud800 query"])
    assert len(index.search(texts[0], 3, query_ef=64)) == 3


def test_writes_get_len_and_empty(fake_encoder):
    idx = QdrantIndex(fake_encoder)  # default client: in memory
    with pytest.raises(EmptyIndexError):
        idx.search("anything")
    ids = idx.add(["alpha beta", "gamma delta", "epsilon"], ids=["a", "b", "c"],
                  metadatas=[{"k": 1}, None, {"k": 3}])  # fmt: skip
    assert ids == ["a", "b", "c"] and len(idx) == 3 and sorted(idx.ids) == ["a", "b", "c"]
    assert [d.id for d in idx.get(["c", "a"])] == ["c", "a"]
    assert idx.get("b")[0].metadata == {} and "b" in idx and "z" not in idx
    with pytest.raises(KeyError, match="'z'"):
        idx.get(["a", "z"])
    # Upsert: the same id gets the new text, metadata and vectors.
    idx.add(["zeta eta"], ids=["a"], metadatas=[{"k": 9}])
    assert len(idx) == 3 and idx.get("a")[0].text == "zeta eta"
    assert idx.search("zeta eta", 1)[0].id == "a"
    assert idx.search("alpha beta", 3, filter={"k": 9})[0].id == "a"
    with pytest.raises(KeyError, match="'nope'"):
        idx.delete(["b", "nope"])
    assert len(idx) == 3  # nothing deleted on a bad call
    idx.delete("b")
    assert sorted(idx.ids) == ["a", "c"]
    assert "b" not in {h.id for h in idx.search("gamma delta", 5)}
    with pytest.raises(ValueError, match="duplicate ids"):
        idx.add(["x", "y"], ids=["d", "d"])
    with pytest.raises(TypeError, match="persists in its Qdrant collection"):
        idx.save("somewhere")


def test_large_writes_go_in_requests_under_the_size_limit(fake_encoder, corpus, monkeypatch):
    import late_interaction.qdrant as module

    _, ids, texts, metas, docs = corpus
    monkeypatch.setattr(module, "_REQUEST_FLOATS", 2000)
    idx = QdrantIndex(fake_encoder)
    sizes = []
    upsert = idx.client.upsert
    spy = lambda name, points, **kw: sizes.append(points) or upsert(name, points, **kw)  # noqa: E731
    monkeypatch.setattr(idx.client, "upsert", spy)
    idx.add_embeddings([docs[i] for i in ids[:60]], texts[:60], ids[:60], metas[:60])
    floats = [sum(docs[p.payload["doc_id"]].size for p in batch) for batch in sizes]
    assert len(sizes) > 1 and max(floats) <= 2000
    assert [p.payload["doc_id"] for batch in sizes for p in batch] == ids[:60]
    assert sorted(idx.ids) == sorted(ids[:60])


def test_add_embeddings_equals_add(fake_encoder, corpus):
    _, ids, texts, metas, docs = corpus
    by_text = QdrantIndex(fake_encoder)
    by_text.add(texts[:50], ids[:50], metas[:50])
    by_matrix = QdrantIndex(fake_encoder)
    by_matrix.add_embeddings([docs[i] for i in ids[:50]], texts[:50], ids[:50], metas[:50])
    q = texts[7]
    assert [(h.id, h.score) for h in by_text.search(q, 8)] == [
        (h.id, h.score) for h in by_matrix.search(q, 8)
    ]
    with pytest.raises(DimensionMismatchError):
        by_matrix.add_embeddings([np.ones((2, 3), np.float32)], ["bad"])


def test_reopen_from_path_keeps_documents_and_checks_the_encoder(tmp_path, corpus, monkeypatch):
    from tests.core.conftest import FakeEncoder

    encoder, ids, texts, metas, _ = corpus
    client = QdrantClient(path=str(tmp_path / "db"))
    created = []  # local mode ignores sharding: check the options reach create_collection
    create = client.create_collection
    monkeypatch.setattr(
        client, "create_collection", lambda *a, **kw: created.append(kw) or create(*a, **kw)
    )
    options = {"shard_number": 2, "replication_factor": 2, "on_disk_payload": True}
    idx = QdrantIndex(encoder, client=client, collection_name="docs", first_stage="mean",
                      collection_options=options)  # fmt: skip
    assert created and {k: created[0][k] for k in options} == options
    idx.add(texts[:80], ids[:80], metas[:80])
    before = [(h.id, h.score) for h in idx.search(texts[3], 5, filter={"even": True})]
    client.close()

    client = QdrantClient(path=str(tmp_path / "db"))
    reopened = QdrantIndex(encoder, client=client, collection_name="docs")
    assert reopened.first_stage == "mean" and len(reopened) == 80
    assert [(h.id, h.score) for h in reopened.search(texts[3], 5, filter={"even": True})] == before
    with pytest.raises(ModelMismatchError, match="another encoder"):
        QdrantIndex(FakeEncoder(name="other"), client=client, collection_name="docs")
    with pytest.raises(DimensionMismatchError, match="16-d"):
        QdrantIndex(FakeEncoder(dim=8), client=client, collection_name="docs")
    with pytest.raises(ValueError, match="first_stage='mean'"):
        QdrantIndex(encoder, client=client, collection_name="docs", first_stage="none")
    with pytest.raises(ValueError, match=r"cannot rebuild.*QdrantIndex\(model, client="):
        QdrantIndex(None, client=client, collection_name="docs")  # a fake encoder has no name
    client.create_collection("foreign", vectors_config=models.VectorParams(size=4, distance="Dot"))
    with pytest.raises(ValueError, match="not created by late_interaction"):
        QdrantIndex(encoder, client=client, collection_name="foreign")
    with pytest.raises(ValueError, match="first_stage must be one of"):
        QdrantIndex(encoder, client=client, collection_name="new", first_stage="muvera")
    client.close()


def test_reopen_rebuilds_a_named_checkpoint_and_equals_exact_maxsim(
    tmp_path, tiny_pylate_model, scifact_dir, ref
):
    # A few hundred real SciFact passages through the tiny checkpoint: Qdrant's ranking equals
    # brute-force MaxSim, and the in-process index's exact search to its float16 precision,
    # also after reopening with model=None (the encoder is rebuilt from the fingerprint stored
    # in the collection's metadata).
    with open(scifact_dir / "corpus.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line in islice(f, 150)]
    texts = [f"{r['title']} {r['text']}" for r in records]
    ids = [str(r["_id"]) for r in records]
    embs = tiny_pylate_model.encode_documents(texts)
    local = LateInteractionIndex(tiny_pylate_model)
    local.add_embeddings(embs, texts, ids)
    client = QdrantClient(path=str(tmp_path / "db"))
    QdrantIndex(tiny_pylate_model, client=client).add_embeddings(embs, texts, ids)
    client.close()
    client = QdrantClient(path=str(tmp_path / "db"))
    reopened = QdrantIndex(client=client)
    assert reopened.model.fingerprint() == tiny_pylate_model.fingerprint()
    docs = dict(zip(ids, embs, strict=True))
    for q in ["cell protein gene", "the study of blue water", "what model data"]:
        qm = reopened.model.encode_queries([q])[0]
        expected = ref.brute_force(qm, docs, 10)
        got = reopened.search(q, 10)
        assert [h.id for h in got] == [i for i, _ in expected]
        np.testing.assert_allclose([h.score for h in got], [s for _, s in expected], atol=1e-4)
        in_process = {h.id: h.score for h in local.search(q, 50, exact=True)}
        np.testing.assert_allclose(
            [h.score for h in got], [in_process[h.id] for h in got], atol=5e-3
        )
    explained = reopened.search("cell protein gene", 2, explain=True)
    assert all(h.explanation is not None and h.explanation.matches for h in explained)
    client.close()


class _WeightedEncoder:
    """The fake encoder with a dense_weight, as a default or as an explicit argument."""

    def __init__(self, weight: float, given: bool) -> None:
        from tests.core.conftest import FakeEncoder

        self._fake = FakeEncoder()
        self.config = type("Config", (), {"dense_weight": weight})()
        self.setting_sources = {"dense_weight": "argument" if given else "default"}

    def __getattr__(self, name):
        return getattr(self._fake, name)


def test_a_fused_encoder_is_said_once_and_an_explicit_weight_refused(corpus, caplog):
    """Qdrant ranks by MaxSim alone: the same rule as an index without dense vectors."""
    import logging

    _, ids, texts, metas, _ = corpus
    client = QdrantClient(":memory:")
    default = QdrantIndex(_WeightedEncoder(0.25, given=False), client=client, collection_name="a")
    default.add(texts[:20], ids[:20], metas[:20])
    with caplog.at_level(logging.WARNING, logger="late_interaction"):
        hits = default.search(texts[3], k=3)
        default.search(texts[4], k=3)
    assert sum("ranks by MaxSim alone" in r.getMessage() for r in caplog.records) == 1
    assert hits[0].id == ids[3] and hits[0].dense_score is None
    explicit = QdrantIndex(_WeightedEncoder(0.5, given=True), client=client, collection_name="b")
    explicit.add(texts[:5], ids[:5], metas[:5])
    with pytest.raises(ValueError, match=r"was given dense_weight=0\.5.*no dense vectors"):
        explicit.search(texts[0], k=1)
    client.close()
