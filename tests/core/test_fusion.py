"""The dense vector from the forward pass, the dense_weight setting and fused reranking.

References are independent of the package: sentence-transformers' own ``encode`` of the embedded
model for the dense vectors, and a float64 numpy MaxSim.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from late_interaction import ColBERT

DOCS = [
    "Lambdas create anonymous functions in Python.",
    "Generators yield values lazily, one at a time.",
    "Paris is the capital of France.",
    # longer than document_length (256 tokens): both sides cut it at 256
    "Token-level late interaction keeps one vector per token. " * 40,
]
QUERY = "how do I write an anonymous function?"


def _fused(q, d, q_dense, d_dense, weight):
    sims = np.asarray(q, np.float64) @ np.asarray(d, np.float64).T
    raw = sims.max(axis=1).sum()
    cos = float(np.dot(np.asarray(q_dense, np.float64), np.asarray(d_dense, np.float64)))
    return (raw / len(q) + weight * cos) / (1 + weight), raw, cos


def test_dense_vectors_equal_sentence_transformers(default_model, st_dense):
    mats, dense = default_model.encode_documents(DOCS, return_dense=True)
    assert dense.dtype == np.float32 and dense.shape == (len(DOCS), 384)
    np.testing.assert_allclose(dense, st_dense(DOCS), atol=1e-5)
    # the token matrices are the ones encode_documents returns without return_dense
    for a, b in zip(mats, default_model.encode_documents(DOCS), strict=True):
        np.testing.assert_array_equal(a, b)
    (q,), q_dense = default_model.encode_queries([QUERY], return_dense=True)
    np.testing.assert_allclose(q_dense, st_dense([QUERY]), atol=1e-5)
    assert q.shape[1] == 384
    empty_mats, empty_dense = default_model.encode_documents([], return_dense=True)
    assert empty_mats == [] and empty_dense.shape == (0, 384)


def test_dense_weight_defaults_by_format(default_model, tiny_pylate_model, tiny_stanford_model):
    assert default_model.config.dense_weight == 0.25
    assert default_model.setting_sources["dense_weight"] == "sentence-transformers default"
    assert tiny_pylate_model.config.dense_weight == 0.0
    assert tiny_stanford_model.config.dense_weight == 0.0
    # a scoring rule, not part of the embeddings' identity
    assert "dense_weight" not in default_model.fingerprint()


def test_dense_weight_precedence(tiny_pylate_path, tmp_path):
    # argument > checkpoint config > format default (PyLate: 0)
    explicit = ColBERT.from_pretrained(tiny_pylate_path, device="cpu", dense_weight=0.5)
    assert explicit.config.dense_weight == 0.5
    assert explicit.setting_sources["dense_weight"] == "argument"
    saved = explicit.save_pretrained(tmp_path / "saved")
    stored = json.loads((saved / "config_sentence_transformers.json").read_text())
    assert stored["late_interaction"]["dense_weight"] == 0.5
    reloaded = ColBERT.from_pretrained(saved, device="cpu")
    assert reloaded.config.dense_weight == 0.5
    assert reloaded.setting_sources["dense_weight"] == "config_sentence_transformers.json"
    overridden = ColBERT.from_pretrained(saved, device="cpu", dense_weight=0)
    assert overridden.config.dense_weight == 0.0
    assert ColBERT.from_pretrained(device="cpu", dense_weight=0).config.dense_weight == 0.0


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "0.25"])
def test_bad_dense_weight_is_refused(tiny_pylate_path, bad):
    with pytest.raises(ValueError, match="dense_weight must be a finite number >= 0"):
        ColBERT.from_pretrained(tiny_pylate_path, device="cpu", dense_weight=bad)


def test_rerank_fuses_like_the_reference(default_model, st_dense):
    q = default_model.encode_queries([QUERY])[0]
    mats = default_model.encode_documents(DOCS)
    q_dense, d_dense = st_dense([QUERY])[0], st_dense(DOCS)
    expected = [_fused(q, m, q_dense, dd, 0.25) for m, dd in zip(mats, d_dense, strict=True)]
    results = default_model.rerank(QUERY, DOCS)
    assert [r.position for r in results] == sorted(range(len(DOCS)), key=lambda i: -expected[i][0])
    for r in results:
        fused, raw, cos = expected[r.position]
        assert r.normalized_score == pytest.approx(fused, abs=1e-5)
        assert r.score == pytest.approx(raw, abs=1e-4)
        assert r.dense_score == pytest.approx(cos, abs=1e-5)


def test_fusion_changes_the_order_where_dense_disagrees(default_model):
    # Fusion must reach the ranking, not only the reported scores: MaxSim alone prefers the
    # lexical match about trains, the fused score the paraphrase about immunity.
    query = "How do vaccines train the immune system?"
    docs = [
        "Train the system: how vaccines are shipped by rail.",
        "Immune cells learn from vaccines.",
    ]
    plain = ColBERT.from_pretrained(device="cpu", dense_weight=0)
    alone = plain.rerank(query, docs)
    assert [r.position for r in alone] == [0, 1]
    assert all(r.dense_score is None for r in alone)
    n_rows = len(plain.encode_queries([query])[0])
    assert [r.normalized_score for r in alone] == pytest.approx([r.score / n_rows for r in alone])
    fused = default_model.rerank(query, docs)
    assert [r.position for r in fused] == [1, 0]
    assert fused[0].score < fused[1].score  # raw MaxSim stays as it was


def test_explanation_reports_the_dense_part(default_model, st_dense):
    exp = default_model.explain(QUERY, DOCS[0])
    cos = float(np.dot(st_dense([QUERY])[0], st_dense([DOCS[0]])[0]))
    assert exp.dense_weight == 0.25
    assert exp.dense_score == pytest.approx(cos, abs=1e-5)
    (result,) = default_model.rerank(QUERY, DOCS[:1])
    fused = (exp.normalized_score + 0.25 * exp.dense_score) / 1.25
    assert result.normalized_score == pytest.approx(fused, abs=1e-5)
    assert exp.to_dict()["dense_score"] == exp.dense_score


def test_trained_checkpoints_do_not_fuse(tiny_pylate_model):
    results = tiny_pylate_model.rerank("a query", ["one document", "another document"])
    assert all(r.dense_score is None for r in results)
    assert tiny_pylate_model.explain("a query", "one document").dense_score is None
