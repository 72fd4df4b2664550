"""The LangChain adapters over a compressed core index (``IndexConfig(nbits=2)``).

LangChain's standard vector-store and retriever suites with compression on, then rankings
against brute-force MaxSim over the decoded vectors, filters, writes after the codec was
trained, and save/load. Exact scans are off, so searches take the centroid path.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import (
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)
from tests.langchain_adapter.test_standard_retriever import PASSAGES

from langchain_late_interaction import ColBERTRetriever, ColBERTVectorStore
from late_interaction import IndexConfig
from late_interaction._index import search as search_module

COMPRESSED = IndexConfig(nbits=2, exact_scan_tokens=0, exact_scan_fraction=0.0)
# Candidates wide enough to reach every document: the result must equal brute force.
WIDE = dataclasses.replace(COMPRESSED, n_probe=10_000, n_full_scores=10_000)
QUERY = "How do I catch an exception?"


class TestCompressedVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, default_model) -> ColBERTVectorStore:
        return ColBERTVectorStore(model=default_model, index_config=COMPRESSED)


@functools.cache
def _shared_index() -> Any:
    from late_interaction import ColBERT, LateInteractionIndex

    index = LateInteractionIndex(ColBERT.from_pretrained(), config=COMPRESSED)
    index.add(list(PASSAGES.values()), ids=list(PASSAGES))
    return index


class TestCompressedRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[ColBERTRetriever]:
        return ColBERTRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index": _shared_index(), "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "how do I handle exceptions?"


@pytest.fixture
def counted(monkeypatch):
    """Counts calls of the centroid candidate stage (proves the compressed path ran)."""
    calls = []
    real = search_module.centroid_candidates
    monkeypatch.setattr(
        search_module, "centroid_candidates", lambda *a, **kw: calls.append(1) or real(*a, **kw)
    )
    return calls


@pytest.fixture
def store(colbert, documents) -> ColBERTVectorStore:
    store = ColBERTVectorStore.from_documents(documents, model=colbert, index_config=WIDE)
    assert store.index._state.store.codec is not None  # really compressed
    return store


def decoded_ranking(index, query: str, keep=lambda metadata: True) -> list[tuple[str, float]]:
    """Reference: per live document, mean over query rows of the best dot with its decoded rows."""
    q = index.model.encode_queries([query])[0]
    snap = index._state.snap
    scored = []
    for slot in np.flatnonzero(snap.live).tolist():
        if keep(snap.docs.metadatas[slot]):
            rows = snap.tokens[snap.offsets[slot] : snap.offsets[slot + 1]]  # decoded here
            scored.append((snap.docs.ids[slot], float((q @ rows.T).max(axis=1).mean())))
    return sorted(scored, key=lambda pair: -pair[1])


def test_scores_equal_brute_force_over_decoded_vectors(store, counted):
    pairs = store.similarity_search_with_score(QUERY, k=5)
    reference = decoded_ranking(store.index, QUERY)[:5]
    assert [d.id for d, _ in pairs] == [i for i, _ in reference]
    np.testing.assert_allclose([s for _, s in pairs], [s for _, s in reference], atol=1e-5)
    assert counted


def test_filter_matches_brute_force(store, counted):
    docs = store.similarity_search(QUERY, k=4, filter={"odd": True})
    reference = decoded_ranking(store.index, QUERY, lambda m: m["odd"])[:4]
    assert [d.id for d in docs] == [i for i, _ in reference]
    assert counted


def test_upsert_and_delete_after_training_keep_the_codec(store, documents, counted):
    checksum = store.index._state.store.codec.checksum()
    store.delete([documents[0].id])
    changed = Document(id=documents[1].id, page_content="Lambda makes a small anonymous function.",
                       metadata=documents[1].metadata)  # fmt: skip
    store.add_documents([changed, Document(id="new", page_content="Decorators wrap functions.")])
    assert store.index._state.store.codec.checksum() == checksum  # old codec, no retraining
    query = "anonymous function decorators"
    got = store.similarity_search(query, k=len(documents) + 1)
    assert [d.id for d in got] == [i for i, _ in decoded_ranking(store.index, query)]
    assert documents[0].id not in {d.id for d in got}
    assert {d.id: d.page_content for d in got}[changed.id] == changed.page_content
    assert counted


def test_save_load_and_retriever_over_a_compressed_store(store, colbert, tmp_path):
    folder = store.save(tmp_path / "vs")
    loaded = ColBERTVectorStore.load(folder, model=colbert)
    assert loaded.index.config.nbits == 2
    assert loaded.index._state.store.codec.checksum() == store.index._state.store.codec.checksum()
    before = store.similarity_search_with_score(QUERY, k=4)
    after = loaded.similarity_search_with_score(QUERY, k=4)
    assert [(d.id, s) for d, s in after] == [(d.id, s) for d, s in before]
    retriever = ColBERTRetriever(index=loaded.index, k=4)
    assert [d.id for d in retriever.invoke(QUERY)] == [d.id for d, _ in before]
