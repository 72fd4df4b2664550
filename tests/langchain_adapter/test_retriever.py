"""ColBERTRetriever: scores and filters vs brute-force MaxSim, updates, persistence, async."""

from __future__ import annotations

import asyncio
import copy
import threading

import numpy as np
import pytest
from langchain_core.documents import Document
from pydantic import ValidationError

from langchain_late_interaction import ColBERTRetriever

QUERY = "What happens when a module is imported?"
# Wide enough that candidate generation reaches every token of the ~40-passage corpus, so the
# ANN stage cannot drop a document and results must equal brute force exactly.
EXHAUSTIVE = {"k_token": 5000, "query_ef": 5000}


@pytest.fixture(scope="module")
def doc_embeddings(colbert, documents) -> list[np.ndarray]:
    return colbert.encode_documents([d.page_content for d in documents])


@pytest.fixture(scope="module")
def brute_force(colbert, documents, doc_embeddings):
    """(ids, scores) of the top-k documents passing ``keep``, by plain-numpy MaxSim."""
    q = colbert.encode_queries([QUERY])[0]
    all_scores = np.array([(q @ e.T).max(axis=1).mean() for e in doc_embeddings])  # normalised

    def top(k, keep=lambda meta: True):
        kept = [i for i, d in enumerate(documents) if keep(d.metadata)]
        order = sorted(kept, key=lambda i: -all_scores[i])[:k]
        return [documents[i].id for i in order], all_scores[order]

    return top


@pytest.fixture(scope="module")
def exhaustive(corpus_retriever):
    return corpus_retriever.model_copy(update={"search_kwargs": EXHAUSTIVE})


def assert_matches(docs, expected_ids, expected_scores):
    # Stored token matrices are float16: allow ~2e-3 of normalised score (per-token mean) error.
    assert sorted(d.id for d in docs) == sorted(expected_ids)
    got = {d.id: d.metadata["relevance_score"] for d in docs}
    np.testing.assert_allclose([got[i] for i in expected_ids], expected_scores, atol=2e-3)
    scores = [d.metadata["relevance_score"] for d in docs]
    assert scores == sorted(scores, reverse=True)


def test_results_match_brute_force_and_carry_document_fields(brute_force, documents, exhaustive):
    docs = exhaustive.invoke(QUERY, k=5)
    assert_matches(docs, *brute_force(5))
    by_id = {d.id: d for d in documents}
    for doc in docs:
        assert doc.page_content == by_id[doc.id].page_content
        # The stored metadata comes back unchanged beside the score (checked in assert_matches).
        added = ("relevance_score", "maxsim_score")
        assert {k: v for k, v in doc.metadata.items() if k not in added} == (by_id[doc.id].metadata)


def test_ann_path_matches_brute_force(colbert, documents, brute_force, monkeypatch):
    # Force the ANN stage (no exact-scan shortcut for a small corpus) and candidate pruning
    # (n_full_scores below the corpus size); float32 graph vectors so pruning ranks by exact
    # similarities. Every search must then go through Voyager and still equal brute force.
    from late_interaction import IndexConfig
    from late_interaction._index.hnsw import VoyagerTokenIndex

    config = IndexConfig(
        exact_scan_tokens=0, exact_scan_fraction=0.0, n_full_scores=8, hnsw_storage="float32"
    )
    retriever = ColBERTRetriever.from_documents(
        documents, model=colbert, index_config=config, k=5, search_kwargs=EXHAUSTIVE
    )
    calls = []
    query = VoyagerTokenIndex.query
    monkeypatch.setattr(
        VoyagerTokenIndex, "query", lambda self, *a: calls.append(a) or query(self, *a)
    )
    assert_matches(retriever.invoke(QUERY), *brute_force(5))
    odd = retriever.invoke(QUERY, filter={"odd": True})
    assert_matches(odd, *brute_force(5, lambda meta: meta["odd"]))
    assert len(calls) == 2  # both answered through the HNSW graph, not by an exact scan


def test_k_field_and_k_kwarg(corpus_retriever):
    assert len(corpus_retriever.invoke(QUERY)) == 4
    assert len(corpus_retriever.invoke(QUERY, k=2)) == 2
    assert len(corpus_retriever.invoke(QUERY, k=1000)) == len(corpus_retriever.index)


def test_dict_filter_matches_brute_force(brute_force, exhaustive):
    topics = ["import", "exceptions", "try"]
    docs = exhaustive.invoke(QUERY, k=3, filter={"topic": topics})
    assert all(d.metadata["topic"] in topics for d in docs)
    assert_matches(docs, *brute_force(3, lambda m: m["topic"] in topics))


def test_callable_filter_field_and_per_call_override(brute_force, exhaustive):
    odd = exhaustive.model_copy(update={"filter": lambda meta: meta["odd"]})
    docs = odd.invoke(QUERY, k=4)
    assert_matches(docs, *brute_force(4, lambda m: m["odd"]))
    even = odd.invoke(QUERY, k=4, filter={"odd": False})  # a per-call filter replaces the field
    assert_matches(even, *brute_force(4, lambda m: not m["odd"]))


def test_ids_search_kwarg_restricts_results(corpus_retriever, documents):
    allowed = [d.id for d in documents[:3]]
    docs = corpus_retriever.invoke(QUERY, k=10, ids=allowed)
    assert sorted(d.id for d in docs) == sorted(allowed)


def test_unknown_arguments_are_rejected(corpus_retriever):
    with pytest.raises(TypeError, match="Unsupported search argument"):
        corpus_retriever.invoke(QUERY, top_k=2)
    with pytest.raises(TypeError, match="Unsupported search argument"):
        ColBERTRetriever(index=corpus_retriever.index, search_kwargs={"ef": 10})
    with pytest.raises(ValidationError):
        ColBERTRetriever(index=corpus_retriever.index, top_k=2)
    with pytest.raises(ValidationError):
        ColBERTRetriever(index={"not": "an index"})
    with pytest.raises(ValidationError):
        ColBERTRetriever(index=corpus_retriever.index, k=0)


async def test_ainvoke_equals_invoke_and_runs_off_the_event_loop(corpus_retriever):
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def keep(meta):  # the core calls the filter inside the search, i.e. in the worker thread
        seen.append(threading.get_ident())
        return True

    sync = corpus_retriever.invoke(QUERY, k=3)
    results = await asyncio.gather(
        corpus_retriever.ainvoke(QUERY, k=3), corpus_retriever.ainvoke(QUERY, k=3, filter=keep)
    )
    for docs in results:
        assert [(d.id, d.metadata) for d in docs] == [(d.id, d.metadata) for d in sync]
    assert seen and loop_thread not in seen


def test_from_documents_keeps_ids_and_does_not_mutate(colbert, documents):
    docs = [*copy.deepcopy(documents[:4]), Document(page_content="No id here.", metadata={})]
    before = copy.deepcopy(docs)
    retriever = ColBERTRetriever.from_documents(docs, model=colbert)
    assert docs == before
    ids = retriever.index.ids
    assert set(documents[i].id for i in range(4)) <= set(ids) and len(ids) == 5


def test_incremental_add_upsert_delete(colbert, documents):
    retriever = ColBERTRetriever.from_documents(documents[:4], model=colbert, k=1)
    new = Document(id="walrus", page_content="The walrus operator := assigns inside expressions.")
    assert retriever.add_documents([new]) == ["walrus"]
    found = {d.id: d for d in retriever.invoke("assignment expressions", k=10)}
    assert set(found) == {d.id for d in documents[:4]} | {"walrus"}
    assert found["walrus"].page_content == new.page_content
    retriever.add_texts(["Lambda expressions create anonymous functions."], ids=["walrus"])
    assert len(retriever.index) == 5  # replaced, not added
    found = {d.id: d for d in retriever.invoke("anonymous functions made by lambda", k=10)}
    assert found["walrus"].page_content == "Lambda expressions create anonymous functions."
    retriever.delete(["walrus"])
    assert "walrus" not in [d.id for d in retriever.invoke("lambda anonymous functions", k=10)]
    with pytest.raises(KeyError):
        retriever.delete(["walrus"])


def test_save_load_round_trip(colbert, documents, tmp_path):
    original = ColBERTRetriever.from_documents(
        documents[:6], model=colbert, path=tmp_path / "idx", k=3
    )
    assert (tmp_path / "idx").is_dir()  # from_texts(path=...) saves after indexing
    original.add_texts(["Extra passage about generators and yield."], ids=["gen"])
    saved = original.save(tmp_path / "copy")
    loaded = ColBERTRetriever.load(saved, model=colbert, k=3)
    for query in (QUERY, "generators yield values"):
        a, b = original.invoke(query), loaded.invoke(query)
        assert [(d.id, d.page_content, d.metadata) for d in a] == [
            (d.id, d.page_content, d.metadata) for d in b
        ]
    assert sorted(loaded.index.ids) == sorted(original.index.ids)


def test_empty_index_returns_no_documents(colbert):
    from late_interaction import LateInteractionIndex

    retriever = ColBERTRetriever(index=LateInteractionIndex(colbert), k=3)
    assert retriever.invoke(QUERY) == []
    retriever.add_texts(["Lambda expressions create anonymous functions."], ids=["lambda"])
    assert [d.id for d in retriever.invoke(QUERY)] == ["lambda"]
