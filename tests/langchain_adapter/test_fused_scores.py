"""LangChain adapters with the embedded default: the fused score and its parts in metadata.

Reference: numpy MaxSim of the encoder's token matrices plus sentence-transformers' own dense
vectors, fused as ``(MaxSim/|q| + 0.25 cos) / 1.25``.
"""

from __future__ import annotations

import pytest
from langchain_core.documents import Document

from langchain_late_interaction import ColBERTReranker, ColBERTRetriever, ColBERTVectorStore

TEXTS = [
    "Train the system: how vaccines are shipped by rail.",
    "Immune cells learn from vaccines.",
    "Paris is the capital of France.",
    "Generators yield values lazily.",
]
QUERY = "How do vaccines train the immune system?"


@pytest.fixture(scope="module")
def expected(default_model, st_dense):
    q = default_model.encode_queries([QUERY])[0]
    cos = st_dense(TEXTS) @ st_dense([QUERY])[0]
    out = {}
    for i, d in enumerate(default_model.encode_documents(TEXTS)):
        raw = float((q @ d.T).max(axis=1).sum())
        out[f"d{i}"] = ((raw / len(q) + 0.25 * cos[i]) / 1.25, raw, float(cos[i]))
    return dict(sorted(out.items(), key=lambda kv: -kv[1][0]))


def _documents():
    return [Document(id=f"d{i}", page_content=t, metadata={"n": i}) for i, t in enumerate(TEXTS)]


def _check(docs, expected):
    assert [d.id for d in docs] == list(expected)[: len(docs)]
    for d in docs:
        fused, raw, cos = expected[d.id]
        assert d.metadata["relevance_score"] == pytest.approx(fused, abs=1e-4)
        assert d.metadata["maxsim_score"] == pytest.approx(raw, abs=1e-3)
        assert d.metadata["dense_score"] == pytest.approx(cos, abs=1e-4)


def test_reranker_reports_the_fused_score_and_its_parts(default_model, expected):
    reranker = ColBERTReranker(model=default_model, top_n=3)
    _check(reranker.compress_documents(_documents(), QUERY), expected)
    rows = reranker.rerank(TEXTS, QUERY)
    assert [f"d{r['index']}" for r in rows] == list(expected)[:3]
    assert {"relevance_score", "maxsim_score", "dense_score"} <= set(rows[0])


def test_retriever_and_vector_store_rank_by_the_fused_score(default_model, expected):
    retriever = ColBERTRetriever.from_documents(_documents(), model=default_model, k=3)
    _check(retriever.invoke(QUERY), expected)
    store = ColBERTVectorStore.from_documents(_documents(), model=default_model)
    pairs = store.similarity_search_with_score(QUERY, k=3)
    assert [d.id for d, _ in pairs] == list(expected)[:3]
    assert [s for _, s in pairs] == pytest.approx([expected[d.id][0] for d, _ in pairs], abs=1e-4)
    assert all(d.metadata == {"n": int(d.id[1:])} for d, _ in pairs)  # stored metadata only
