"""What LangChain users write out of habit works: VectorStoreRetriever-style settings, saving
them, and ContextualCompressionRetriever from langchain_classic."""

from __future__ import annotations

import json

import pytest
from langchain_core.retrievers import BaseRetriever
from pydantic import ValidationError

from langchain_late_interaction import ColBERTReranker, ColBERTRetriever
from langchain_late_interaction._common import SETTINGS_FILE

QUERY = "What happens when a module is imported?"


def ids(docs) -> list[str]:
    return [d.id for d in docs]


def test_search_kwargs_take_k_and_filter_as_vector_store_retrievers_do(corpus_retriever):
    index = corpus_retriever.index
    plain = ColBERTRetriever(index=index, k=2, filter={"odd": True})
    styled = ColBERTRetriever(index=index, search_kwargs={"k": 2, "filter": {"odd": True}})
    assert (styled.k, styled.filter, styled.search_kwargs) == (2, {"odd": True}, {})
    assert ids(styled.invoke(QUERY)) == ids(plain.invoke(QUERY)) and len(plain.invoke(QUERY)) == 2
    assert all(d.metadata["odd"] for d in styled.invoke(QUERY))
    # A per-call value still wins, and None means "not given".
    assert len(styled.invoke(QUERY, k=3)) == 3 and len(styled.invoke(QUERY, k=None)) == 2
    # Set later on the object, search_kwargs apply too (as VectorStoreRetriever reads them).
    styled.search_kwargs["k"] = 1
    assert len(styled.invoke(QUERY)) == 1
    with pytest.raises(ValidationError, match="k is given twice"):
        ColBERTRetriever(index=index, k=3, search_kwargs={"k": 1})
    assert ColBERTRetriever(index=index, k=3, search_kwargs={"k": 3}).k == 3  # same value: fine


def test_similarity_score_threshold_keeps_only_hits_at_or_above_it(corpus_retriever):
    index = corpus_retriever.index
    scores = [d.metadata["relevance_score"] for d in corpus_retriever.invoke(QUERY, k=10)]
    cut = (scores[2] + scores[3]) / 2  # between the 3rd and 4th best
    thresholded = ColBERTRetriever(
        index=index,
        search_type="similarity_score_threshold",
        search_kwargs={"k": 10, "score_threshold": cut},
    )
    assert len(thresholded.invoke(QUERY)) == 3
    assert len(thresholded.invoke(QUERY, score_threshold=scores[0] + 1)) == 0
    with pytest.raises(ValidationError, match=r"needs search_kwargs\[\"score_threshold\"\]"):
        ColBERTRetriever(index=index, search_type="similarity_score_threshold")
    with pytest.raises(TypeError, match="score_threshold must be a number"):
        thresholded.invoke(QUERY, score_threshold="high")


def test_save_keeps_k_filter_and_search_settings(colbert, documents, tmp_path):
    original = ColBERTRetriever.from_documents(
        documents[:12],
        model=colbert,
        search_kwargs={"k": 2, "filter": {"odd": True}, "k_token": 64},
    )
    path = original.save(tmp_path / "saved")
    assert json.loads((path / "config.json").read_text())["files"][SETTINGS_FILE] > 0
    loaded = ColBERTRetriever.load(path, model=colbert)
    assert (loaded.k, loaded.filter, loaded.search_kwargs) == (2, {"odd": True}, {"k_token": 64})
    assert ids(loaded.invoke(QUERY)) == ids(original.invoke(QUERY))
    assert ColBERTRetriever.load(path, model=colbert, k=5).k == 5  # arguments override
    assert ColBERTRetriever.load(path, model=colbert, search_kwargs={"k": 3}).k == 3
    # from_texts(path=...) saves the settings too; an index saved by the core alone loads with
    # the defaults.
    built = ColBERTRetriever.from_documents(
        documents[:3], model=colbert, path=tmp_path / "built", k=1
    )
    assert ColBERTRetriever.load(tmp_path / "built", model=colbert).k == built.k == 1
    built.index.save(tmp_path / "core")
    assert ColBERTRetriever.load(tmp_path / "core", model=colbert).k == 4


def test_a_callable_filter_is_refused_by_save_not_dropped(corpus_retriever, tmp_path):
    keep_odd = corpus_retriever.model_copy(update={"filter": lambda meta: meta["odd"]})
    with pytest.raises(TypeError, match="filter is a callable, which cannot be saved"):
        keep_odd.save(tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_contextual_compression_retriever_from_langchain_classic(colbert, documents):
    pytest.importorskip("langchain_classic")
    from langchain_classic.retrievers import ContextualCompressionRetriever

    class FirstSix(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager):
            return documents[:6]

    reranker = ColBERTReranker(model=colbert, top_n=3)
    compression = ContextualCompressionRetriever(
        base_compressor=reranker, base_retriever=FirstSix()
    )
    expected = reranker.compress_documents(documents[:6], QUERY)
    got = compression.invoke(QUERY)
    assert [(d.id, d.metadata) for d in got] == [(d.id, d.metadata) for d in expected]
    assert len(got) == 3
    assert ids(reranker.with_retriever(FirstSix()).invoke(QUERY)) == ids(got)
