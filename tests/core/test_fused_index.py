"""LateInteractionIndex with dense vectors: fused ranking, persistence, old indexes, add_embeddings.

References: naive float64 MaxSim (``ref``) and sentence-transformers' own dense vectors
(``st_dense``) of the embedded model, fused as ``(MaxSim/|q| + w cos) / (1 + w)``.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from late_interaction import ColBERT, IndexConfig, LateInteractionIndex

TEXTS = [
    "Vaccines expose the body to a harmless piece of a pathogen so immunity develops.",
    "Train the system: how vaccines are shipped by rail.",
    "Immune cells learn from vaccines.",
    "Paris is the capital of France.",
    "Lambdas create anonymous functions in Python.",
    "Generators yield values lazily, one at a time.",
    "The immune system fights disease.",
    "Berlin is the capital of Germany.",
]
IDS = [f"d{i}" for i in range(len(TEXTS))]
QUERIES = ["How do vaccines train the immune system?", "capital city of France", "python lambda"]
EXACT = IndexConfig(storage_dtype="float32")


@pytest.fixture(scope="module")
def reference(default_model, st_dense):
    docs = dict(zip(IDS, default_model.encode_documents(TEXTS), strict=True))
    doc_dense = dict(zip(IDS, st_dense(TEXTS), strict=True))
    queries = default_model.encode_queries(QUERIES)
    return docs, doc_dense, queries, st_dense(QUERIES)


@pytest.fixture(scope="module")
def fused_index(default_model):
    index = LateInteractionIndex(default_model, config=EXACT)
    index.add(TEXTS, ids=IDS)
    return index


def _check(hits, expected, atol=1e-4):
    assert [h.id for h in hits] == [e[0] for e in expected]
    np.testing.assert_allclose(
        [h.normalized_score for h in hits], [e[1] for e in expected], atol=atol
    )
    np.testing.assert_allclose([h.score for h in hits], [e[2] for e in expected], atol=atol)
    np.testing.assert_allclose([h.dense_score for h in hits], [e[3] for e in expected], atol=atol)


def test_search_paths_rank_by_the_fused_reference(fused_index, reference, ref):
    docs, doc_dense, q_mats, q_dense = reference
    assert fused_index.dense_weight == 0.25
    batch = fused_index.search_batch(QUERIES, k=5)
    exact = fused_index.search_batch(QUERIES, k=5, exact=True)
    for qm, qd, hits, exact_hits in zip(q_mats, q_dense, batch, exact, strict=True):
        expected = ref.brute_force_fused(qm, qd, docs, doc_dense, 0.25, 5)
        _check(hits, expected)
        _check(exact_hits, expected)
    # a token-matrix query needs its dense vector (else a clear error), and then ranks the same
    with pytest.raises(ValueError, match="query_dense"):
        fused_index.search(q_mats[0], k=3)
    by_matrix = fused_index.search(q_mats[0], k=3, query_dense=q_dense[0])
    assert [h.id for h in by_matrix] == [h.id for h in batch[0][:3]]
    # explanations carry the dense part, consistent with the hit's fused score
    (hit,) = fused_index.search(QUERIES[0], k=1, explain=True)
    exp = hit.explanation
    fused = (exp.normalized_score + exp.dense_weight * exp.dense_score) / (1 + exp.dense_weight)
    assert fused == pytest.approx(hit.normalized_score, abs=1e-4)


def test_save_load_round_trip_keeps_dense_vectors(fused_index, tmp_path):
    folder = fused_index.save(tmp_path / "ix")
    manifest = json.loads((folder / "config.json").read_text())
    assert manifest["dense_weight"] == 0.25 and "dense.npy" in manifest["files"]
    stored = np.load(folder / "dense.npy")
    _, dense = fused_index.model.encode_documents(TEXTS, return_dense=True)
    np.testing.assert_allclose(stored, dense, atol=1e-6)
    loaded = LateInteractionIndex.load(folder)  # encoder rebuilt from the fingerprint
    assert loaded.dense_weight == 0.25
    before, after = fused_index.search(QUERIES[0], k=4), loaded.search(QUERIES[0], k=4)
    assert [h.id for h in after] == [h.id for h in before]
    for name in ("normalized_score", "score", "dense_score"):
        np.testing.assert_allclose(
            [getattr(h, name) for h in after], [getattr(h, name) for h in before], atol=1e-5
        )
    # the same index without fusion, by an explicit encoder setting
    off = LateInteractionIndex.load(folder, ColBERT.from_pretrained(device="cpu", dense_weight=0))
    assert off.dense_weight == 0.0
    assert all(h.dense_score is None for h in off.search(QUERIES[0], k=3))
    # writes keep the vectors: add, delete, compact
    loaded.add(["Antibodies neutralise viruses."], ids=["new"])
    loaded.delete(["d3"])
    loaded.compact()
    assert loaded._state.docs.dense.n == len(TEXTS)  # 8 - 1 deleted + 1 added
    (hit,) = loaded.search("antibodies against viruses", k=1)
    assert hit.id == "new" and hit.dense_score is not None


def _old_index(default_model, folder):
    """A folder as a release before dense vectors wrote it: no dense.npy, no dense_weight key
    (and no checksums, which came in the same release)."""
    index = LateInteractionIndex(
        ColBERT.from_pretrained(device="cpu", dense_weight=0), config=EXACT
    )
    index.add(TEXTS, ids=IDS)
    index.save(folder)
    manifest = json.loads((folder / "config.json").read_text())
    for key in ("dense_weight", "checksums", "manifest_checksum"):
        del manifest[key]
    (folder / "config.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    assert not (folder / "dense.npy").exists()


def test_an_old_index_loads_and_ranks_by_maxsim(default_model, reference, ref, tmp_path, caplog):
    docs, _, q_mats, _ = reference
    folder = tmp_path / "old"
    _old_index(default_model, folder)
    with caplog.at_level(logging.WARNING, logger="late_interaction"):
        old = LateInteractionIndex.load(folder)  # the rebuilt encoder's default weight is 0.25
        hits = old.search(QUERIES[0], k=5)
        old.search(QUERIES[1], k=5)
    notices = [r for r in caplog.records if "holds no dense vectors" in r.getMessage()]
    assert len(notices) == 1  # said once, not per search
    assert old.dense_weight == 0.0 and all(h.dense_score is None for h in hits)
    expected = ref.brute_force(q_mats[0], docs, 5)
    assert [h.id for h in hits] == [i for i, _ in expected]
    # with a given default encoder too, and saving records the weight it ranked by
    again = LateInteractionIndex.load(folder, default_model)
    assert again.dense_weight == 0.0
    again.save()
    assert json.loads((folder / "config.json").read_text())["dense_weight"] == 0.0
    assert LateInteractionIndex.load(folder).dense_weight == 0.0
    # an explicit request for fusion cannot be met: a clear error that says how to fix it
    explicit = ColBERT.from_pretrained(device="cpu", dense_weight=0.5)
    with pytest.raises(ValueError, match=r"holds no dense vectors.*Rebuild"):
        LateInteractionIndex.load(folder, explicit)


def test_add_embeddings_with_and_without_dense(default_model, reference, ref):
    docs, doc_dense, q_mats, q_dense = reference
    mats = [docs[i] for i in IDS]
    dense = np.stack([doc_dense[i] for i in IDS])
    with_dense = LateInteractionIndex(default_model, config=EXACT)
    with_dense.add_embeddings(mats, TEXTS, IDS, dense=dense)
    expected = ref.brute_force_fused(q_mats[1], q_dense[1], docs, doc_dense, 0.25, 4)
    _check(with_dense.search(QUERIES[1], k=4), expected)
    with pytest.raises(ValueError, match="pass them too"):
        with_dense.add_embeddings(mats[:1], TEXTS[:1], ["x"])
    with pytest.raises(ValueError, match="shape"):
        with_dense.add_embeddings(mats[:1], TEXTS[:1], ["x"], dense=dense[:2])
    with pytest.raises(ValueError, match="width"):
        with_dense.add_embeddings(mats[:1], TEXTS[:1], ["x"], dense=dense[:1, :10])
    assert "x" not in with_dense and len(with_dense) == len(TEXTS)  # nothing half-written
    # without dense vectors: MaxSim alone (the default weight is not an explicit request)
    without = LateInteractionIndex(default_model, config=EXACT)
    without.add_embeddings(mats, TEXTS, IDS)
    assert without.dense_weight == 0.0
    assert [h.id for h in without.search(QUERIES[1], k=4)] == [
        i for i, _ in ref.brute_force(q_mats[1], docs, 4)
    ]
    with pytest.raises(ValueError, match="holds no dense vectors"):
        without.add_embeddings(mats[:1], TEXTS[:1], ["x"], dense=dense[:1])
    # an encoder given dense_weight explicitly refuses matrices without them, before adding
    explicit = LateInteractionIndex(ColBERT.from_pretrained(device="cpu", dense_weight=0.25))
    with pytest.raises(ValueError, match="was given dense_weight"):
        explicit.add_embeddings(mats, TEXTS, IDS)
    assert len(explicit) == 0


def test_compressed_index_fuses_and_trained_checkpoints_keep_no_dense(
    default_model, tiny_pylate_model, st_dense
):
    index = LateInteractionIndex(default_model, config=IndexConfig(nbits=4, n_centroids=16))
    index.add(TEXTS, ids=IDS)
    q_dense = st_dense([QUERIES[0]])[0]
    doc_dense = dict(zip(IDS, st_dense(TEXTS), strict=True))
    n_rows = default_model.encode_queries([QUERIES[0]])[0].shape[0]
    for exact in (False, True):
        hits = index.search(QUERIES[0], k=4, exact=exact)
        for h in hits:
            assert h.dense_score == pytest.approx(float(q_dense @ doc_dense[h.id]), abs=1e-5)
            fused = (h.score / n_rows + 0.25 * h.dense_score) / 1.25
            assert h.normalized_score == pytest.approx(fused, abs=1e-6)
        assert [h.normalized_score for h in hits] == sorted(
            (h.normalized_score for h in hits), reverse=True
        )
    plain = LateInteractionIndex(tiny_pylate_model)
    plain.add(TEXTS, ids=IDS)
    assert plain.dense_weight == 0.0 and plain._state.docs.dense is None
    assert all(h.dense_score is None for h in plain.search(QUERIES[0], k=3))


def test_a_folder_saved_by_the_release_before_dense_vectors(default_model, ref, tmp_path, caplog):
    # tests/golden/make_index_before_dense.py wrote it with the code of commit eabb88d.
    golden = Path(__file__).resolve().parents[1] / "golden" / "index_before_dense"
    folder = shutil.copytree(golden, tmp_path / "old")
    texts = [
        d.text
        for d in LateInteractionIndex.load(folder, default_model).get(["d0", "d1", "d2", "d3"])
    ]
    with caplog.at_level(logging.WARNING, logger="late_interaction"):
        old = LateInteractionIndex.load(folder)
    assert any("holds no dense vectors" in r.getMessage() for r in caplog.records)
    assert old.dense_weight == 0.0
    query = "How do vaccines train the immune system?"
    docs = dict(zip(["d0", "d1", "d2", "d3"], default_model.encode_documents(texts), strict=True))
    expected = ref.brute_force(default_model.encode_queries([query])[0], docs, 4)
    hits = old.search(query, k=4)
    assert [h.id for h in hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-4)
    with pytest.raises(ValueError, match="holds no dense vectors"):
        LateInteractionIndex.load(folder, ColBERT.from_pretrained(device="cpu", dense_weight=0.25))
