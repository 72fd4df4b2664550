"""IndexConfig.hnsw_storage: validation, 8-bit graph vectors, exact scores, round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from late_interaction import IndexConfig, IndexFormatError, LateInteractionIndex
from late_interaction._index.hnsw import VoyagerTokenIndex

_ANN_ONLY = {"hnsw_m": 8, "ef_construction": 32, "exact_scan_tokens": 0, "exact_scan_fraction": 0}


def test_unknown_hnsw_storage_is_refused():
    with pytest.raises(ValueError, match="hnsw_storage must be one of"):
        IndexConfig(hnsw_storage="float8")


@pytest.mark.parametrize("storage", ["float32", "e4m3"])
def test_graph_precision_never_changes_scores(fake_encoder, ref, tmp_path, storage):
    ids, texts, _ = ref.make_corpus(150, seed=5)
    config = IndexConfig(storage_dtype="float32", hnsw_storage=storage, **_ANN_ONLY)
    index = LateInteractionIndex(fake_encoder, config=config)
    index.add(texts, ids=ids)
    docs = dict(zip(ids, fake_encoder.encode_documents(texts), strict=True))
    loaded = LateInteractionIndex.load(index.save(tmp_path / "idx"), fake_encoder)
    manifest = json.loads((tmp_path / "idx" / "config.json").read_text())
    assert manifest["index_config"]["hnsw_storage"] == storage
    assert loaded.config == config
    for query in ["w1 w7 w30", "w250 w3", "w99"]:
        qm = fake_encoder.encode_queries([query])[0]
        want = ref.brute_force(qm, docs, 5)
        for idx in (index, loaded):
            # A search wide enough to reach every document: candidates cover the corpus, so the
            # ranking must equal brute force whatever precision the graph stores.
            hits = idx.search(query, k=5, k_token=3000, query_ef=3000)
            assert [h.id for h in hits] == [i for i, _ in want]
            np.testing.assert_allclose([h.score for h in hits], [s for _, s in want], atol=1e-5)


def test_e4m3_graph_is_smaller_and_still_finds_neighbours(tmp_path):
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((400, 64)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    sizes = {}
    for storage in ("float32", "e4m3"):
        graph = VoyagerTokenIndex(64, storage=storage)
        graph.add(vecs, 0)
        graph.save(tmp_path / f"{storage}.voyager")
        sizes[storage] = (tmp_path / f"{storage}.voyager").stat().st_size
        ids, _ = graph.query(vecs[:20], k=1, query_ef=100)
        assert (ids[:, 0] == np.arange(20)).all()  # each vector is its own nearest neighbour
    # 64 float32 values (256 B) become 64 bytes. Links are about the same but not exactly:
    # 8-bit distances build a slightly different graph, and the build is multi-threaded (a
    # fresh-clone CI run once saw 76,748 B saved, 52 B short of the vectors' 76,800).
    assert sizes["float32"] - sizes["e4m3"] >= 0.95 * 400 * (256 - 64)


def test_loading_a_graph_of_another_precision_fails(tmp_path):
    vecs = np.eye(12, dtype=np.float32)
    graph = VoyagerTokenIndex(12, storage="e4m3")
    graph.add(vecs, 0)
    graph.save(tmp_path / "t.voyager")
    live = np.ones(12, bool)
    with pytest.raises(IndexFormatError, match="float32"):
        VoyagerTokenIndex.load(
            tmp_path / "t.voyager", dim=12, space="cosine", live=live, storage="float32"
        )
    for storage in ("e4m3", None):  # None: accept the precision the file holds
        loaded = VoyagerTokenIndex.load(
            tmp_path / "t.voyager", dim=12, space="cosine", live=live, storage=storage
        )
        assert loaded.n_live == 12
