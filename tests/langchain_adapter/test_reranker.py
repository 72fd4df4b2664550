"""ColBERTReranker against a naive MaxSim reference computed from the encoder's token matrices."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from langchain_core.documents import Document
from pydantic import ValidationError

from langchain_late_interaction import ColBERTReranker

QUERY = "How are exceptions raised and handled?"


def naive_scores(colbert, query: str, texts: list[str]) -> np.ndarray:
    """Normalised MaxSim by plain numpy: the mean over query tokens of the best dot product."""
    q = colbert.encode_queries([query])[0].astype(np.float64)
    return np.array(
        [
            sum(max(float(qt @ dt) for dt in d.astype(np.float64)) for qt in q) / len(q)
            for d in colbert.encode_documents(texts)
        ]
    )


@pytest.fixture(scope="module")
def reranker(colbert) -> ColBERTReranker:
    return ColBERTReranker(model=colbert, top_n=3)


@pytest.fixture(scope="module")
def candidates(documents) -> list[Document]:
    return documents[:8]


@pytest.fixture(scope="module")
def top3(reranker, candidates) -> list[Document]:
    """The reranker's output, computed once (tests must not modify it)."""
    return list(reranker.compress_documents(candidates, QUERY))


@pytest.fixture(scope="module")
def reference(colbert, candidates) -> np.ndarray:
    return naive_scores(colbert, QUERY, [d.page_content for d in candidates])


def test_full_ordering_and_scores_match_naive_maxsim(colbert, candidates, reference):
    out = ColBERTReranker(model=colbert, top_n=None).compress_documents(candidates, QUERY)
    expected = np.argsort(-reference, kind="stable")
    assert [d.id for d in out] == [candidates[i].id for i in expected]
    np.testing.assert_allclose(
        [d.metadata["relevance_score"] for d in out], reference[expected], rtol=1e-4, atol=1e-4
    )
    n_query_rows = colbert.encode_queries(QUERY)[0].shape[0]  # the raw score is the sum
    np.testing.assert_allclose(
        [d.metadata["maxsim_score"] for d in out], reference[expected] * n_query_rows, rtol=1e-4
    )


def test_top_n_keeps_the_best(top3, candidates, reference):
    out = top3
    assert len(out) == 3
    assert {d.id for d in out} == {candidates[i].id for i in np.argsort(-reference)[:3]}
    scores = [d.metadata["relevance_score"] for d in out]
    assert scores == sorted(scores, reverse=True)


def test_top_n_larger_than_input_returns_all(colbert, candidates):
    out = ColBERTReranker(model=colbert, top_n=50).compress_documents(candidates[:4], QUERY)
    assert sorted(d.id for d in out) == sorted(d.id for d in candidates[:4])


def test_returns_copies_and_never_mutates_inputs(reranker, candidates):
    before = copy.deepcopy(candidates)
    out = reranker.compress_documents(candidates[:4], QUERY)
    assert candidates == before
    assert all("relevance_score" not in d.metadata for d in candidates)
    by_id = {d.id: d for d in candidates}
    for doc in out:
        original = by_id[doc.id]
        assert doc is not original and doc.metadata is not original.metadata
        assert doc.page_content == original.page_content
        added = ("relevance_score", "maxsim_score")
        assert {k: v for k, v in doc.metadata.items() if k not in added} == (original.metadata)
    out[0].metadata["topic"] = "changed"
    assert by_id[out[0].id].metadata["topic"] != "changed"


def test_empty_input_returns_empty_list(reranker):
    assert reranker.compress_documents([], QUERY) == []
    assert reranker.rerank([], QUERY) == []


def test_rerank_returns_positions_and_scores(reranker, candidates, reference):
    results = reranker.rerank([d.page_content for d in candidates], QUERY, top_n=None)
    assert [r["index"] for r in results] == list(np.argsort(-reference, kind="stable"))
    np.testing.assert_allclose(
        [r["relevance_score"] for r in results], np.sort(reference)[::-1], rtol=1e-4, atol=1e-4
    )
    one = reranker.rerank(candidates[:3], QUERY, top_n=1)  # Documents accepted too
    assert [r["index"] for r in one] == [int(np.argmax(reference[:3]))]


async def test_async_equals_sync(reranker, candidates, top3):
    sync = top3
    asynchronous = await reranker.acompress_documents(candidates, QUERY)
    assert [(d.id, d.metadata) for d in asynchronous] == [(d.id, d.metadata) for d in sync]


def test_shares_a_loaded_encoder(colbert, reranker):
    assert reranker.encoder is colbert


def test_invalid_configuration_is_rejected(colbert):
    assert ColBERTReranker(model=colbert, device="cpu").encoder is colbert  # its own device
    with pytest.raises(ValueError, match="device='cuda:1' but the given encoder is on"):
        ColBERTReranker(model=colbert, device="cuda:1")
    with pytest.raises(TypeError, match="model must be"):
        ColBERTReranker(model=42)
    with pytest.raises(ValidationError):
        ColBERTReranker(model=colbert, top_k=3)  # extra="forbid": the field is top_n
    with pytest.raises(ValidationError):
        ColBERTReranker(model=colbert, top_n=0)


def test_explanations_on_request(colbert, candidates):
    plain = ColBERTReranker(model=colbert, top_n=2).compress_documents(candidates, QUERY)
    assert all("explanation" not in d.metadata for d in plain)
    out = ColBERTReranker(model=colbert, top_n=2, explain=True).compress_documents(
        candidates, QUERY
    )
    for doc in out:
        exp = doc.metadata["explanation"]
        assert exp["normalized_score"] == pytest.approx(doc.metadata["relevance_score"], abs=1e-5)
        assert exp["score"] == pytest.approx(doc.metadata["maxsim_score"], abs=1e-4)
        for match in exp["matches"]:
            if match["document_span"] is not None and match["document_token"] != "[UNK]":
                start, end = match["document_span"]
                token = match["document_token"].removeprefix("##")
                assert doc.page_content[start:end].lower() == token  # WordPiece, lower-cased
