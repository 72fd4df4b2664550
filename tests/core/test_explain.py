"""Normalised scores and token-level explanations, against brute-force MaxSim and the tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

from late_interaction import LateInteractionIndex

DOC = "  Lambdas create anonymous functions; generators yield values lazily!"
QUERY = "what creates an anonymous function?"


def _brute(q: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sims = np.asarray(q, np.float64) @ np.asarray(d, np.float64).T
    return sims.argmax(axis=1), sims.max(axis=1)


def test_explanation_matches_brute_force_on_the_embedded_model(default_model):
    q = default_model.encode_queries(QUERY)[0]
    d = default_model.encode_documents(DOC)[0]
    best, maxes = _brute(q, d)
    exp = default_model.explain(QUERY, DOC)
    assert len(exp.matches) == q.shape[0]
    np.testing.assert_allclose([m.similarity for m in exp.matches], maxes, atol=1e-5)
    assert exp.score == pytest.approx(maxes.sum(), abs=1e-4)
    assert exp.normalized_score == pytest.approx(maxes.sum() / q.shape[0], abs=1e-5)
    # Each span is where the matched token stands in the original text (WordPiece, lower-cased).
    doc_tokens = default_model._pipeline.tokenizer.tokenize(DOC.strip().lower())
    for m, j in zip(exp.matches, best.tolist(), strict=True):
        if m.document_kind == "special":
            assert m.document_span is None and m.document_token in ("[CLS]", "[SEP]")
        else:
            start, end = m.document_span
            assert DOC[start:end].lower() == m.document_token.removeprefix("##")
            assert m.document_token in doc_tokens
        assert (m.document_kind == "special") == (j in (0, d.shape[0] - 1))  # [CLS] ... [SEP]
    # Punctuation is on the skiplist: never a document row, so never matched.
    assert not any(m.document_token in ";!" for m in exp.matches)
    spans = exp.highlights(min_similarity=0.8)
    assert ("anonymous", "functions") == tuple(DOC[s:e] for s, e, _ in spans)


def test_markers_and_expansion_rows_are_named(tiny_pylate_model):
    exp = tiny_pylate_model.explain("the cat", "the cat sat")
    kinds = [m.query_kind for m in exp.matches]
    assert len(kinds) == 32  # query_length, with [MASK] expansion
    assert kinds[:5] == ["special", "marker", "text", "text", "special"]
    assert set(kinds[5:]) == {"expansion"}
    assert exp.matches[1].query_token == "[Q] " and exp.matches[5].query_token == "[MASK]"
    assert all(m.document_kind != "expansion" for m in exp.matches)
    q = tiny_pylate_model.encode_queries("the cat")[0]
    d = tiny_pylate_model.encode_documents("the cat sat")[0]
    np.testing.assert_allclose([m.similarity for m in exp.matches], _brute(q, d)[1], atol=1e-5)
    assert exp.to_dict()["matches"][2]["document_span"] in ([0, 3], [4, 7], [8, 11])


def test_rerank_scores_normalised_and_explained(tiny_pylate_model):
    docs = ["the cat sat", "a dog ran", "cats"]
    q = tiny_pylate_model.encode_queries("the cat")[0]
    results = tiny_pylate_model.rerank("the cat", docs, explain=True)
    for r in results:
        d = tiny_pylate_model.encode_documents(docs[r.position])[0]
        total = _brute(q, d)[1].sum()
        assert r.score == pytest.approx(total, abs=1e-4)
        assert r.normalized_score == pytest.approx(total / q.shape[0], abs=1e-5)
        assert r.explanation.score == pytest.approx(r.score, abs=1e-4)
    assert tiny_pylate_model.rerank("the cat", docs)[0].explanation is None


def test_search_hits_are_normalised_and_explained(tiny_pylate_model, fake_encoder):
    index = LateInteractionIndex(tiny_pylate_model)
    index.add(["the cat sat", "a dog ran", "cats and dogs"], ids=["a", "b", "c"])
    q = tiny_pylate_model.encode_queries("the cat")[0]
    hits = index.search("the cat", k=3, explain=True)
    for hit in hits:
        d = tiny_pylate_model.encode_documents(hit.text)[0]
        total = _brute(q, d)[1].sum()
        assert hit.normalized_score == pytest.approx(hit.score / q.shape[0], abs=1e-6)
        assert hit.score == pytest.approx(total, abs=2e-2)  # float16 store
        assert hit.explanation.score == pytest.approx(total, abs=1e-4)  # fresh encoding
    assert index.search("the cat", k=1)[0].explanation is None
    with pytest.raises(ValueError, match="explain=True needs query texts"):
        index.search(q, k=1, explain=True)
    fake = LateInteractionIndex(fake_encoder)
    fake.add(["w1 w2"], ids=["x"])
    with pytest.raises(TypeError, match="explain=True needs an encoder with explain"):
        fake.search("w1", explain=True)
