"""ColBERTVectorStore: LangChain's standard vector-store contract, the indexing API, our options."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.indexing import InMemoryRecordManager, index
from langchain_core.vectorstores import VectorStoreRetriever
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from langchain_late_interaction import ColBERTVectorStore
from late_interaction import IndexConfig


class TestColBERTVectorStoreStandard(VectorStoreIntegrationTests):
    # The standard tests search "foo"/"bar"/"baz": words the tiny checkpoint's 100-token
    # vocabulary lacks (all [UNK], so ties), hence the embedded model, loaded once per session.
    @pytest.fixture
    def vectorstore(self, default_model) -> ColBERTVectorStore:
        return ColBERTVectorStore(model=default_model)


class TestColBERTVectorStoreQdrantStandard(VectorStoreIntegrationTests):
    """The same suite over a Qdrant collection (local mode, in memory): the store needs only
    the index protocol, so a user who outgrows one machine keeps the VectorStore API."""

    @pytest.fixture
    def vectorstore(self, default_model) -> ColBERTVectorStore:
        from late_interaction import QdrantIndex

        return ColBERTVectorStore(index=QdrantIndex(default_model))


@pytest.fixture
def store(colbert, documents) -> ColBERTVectorStore:
    return ColBERTVectorStore.from_documents(documents, model=colbert)


def _naive(colbert, query: str, texts: list[str]) -> np.ndarray:
    """Normalised MaxSim by brute force: mean over query rows of the best dot product."""
    q = colbert.encode_queries(query)[0]
    return np.array([(q @ d.T).max(axis=1).mean() for d in colbert.encode_documents(texts)])


def test_scores_are_normalised_maxsim_and_relevance_maps_to_unit_range(store, colbert, documents):
    query = "How do I catch an exception?"
    expected = _naive(colbert, query, [d.page_content for d in documents])
    by_id = {d.id: i for i, d in enumerate(documents)}
    pairs = store.similarity_search_with_score(query, k=5, exact=True)
    order = np.argsort(-expected)[:5]
    assert [d.id for d, _ in pairs] == [documents[i].id for i in order]
    np.testing.assert_allclose([s for _, s in pairs], expected[order], atol=1e-3)
    relevance = store.similarity_search_with_relevance_scores(query, k=5, exact=True)
    for (doc, score), (_, rel) in zip(pairs, relevance, strict=True):
        assert rel == pytest.approx((score + 1) / 2) and 0 <= rel <= 1
        assert doc.metadata == documents[by_id[doc.id]].metadata  # no score mixed in


def test_retriever_search_types_and_filter(store, documents):
    retriever = store.as_retriever(search_kwargs={"k": 3, "filter": {"odd": True}})
    assert isinstance(retriever, VectorStoreRetriever)
    docs = retriever.invoke("modules and imports")
    assert len(docs) == 3 and all(d.metadata["odd"] for d in docs)
    threshold = store.as_retriever(
        search_type="similarity_score_threshold",
        search_kwargs={"k": 10, "score_threshold": 0.999},
    )
    assert threshold.invoke("modules and imports") == []  # nothing that close: all filtered out
    with pytest.raises(ValueError, match="mmr"):
        store.as_retriever(search_type="mmr")
    with pytest.raises(NotImplementedError, match="MMR"):
        store.max_marginal_relevance_search("x")
    with pytest.raises(NotImplementedError, match="token matrix"):
        store.similarity_search_by_vector([0.1, 0.2])
    with pytest.raises(TypeError, match="Unsupported search argument"):
        store.similarity_search("x", fetch_k=3)


def test_constructor_errors(colbert, tmp_path):
    with pytest.raises(TypeError, match="not an Embeddings object"):
        ColBERTVectorStore.from_texts(["a"], embedding=object(), model=colbert)
    store = ColBERTVectorStore(model=colbert, index_config=IndexConfig(storage_dtype="float32"))
    with pytest.raises(ValueError, match="not both"):
        ColBERTVectorStore(store.index, model=colbert)
    assert store.add_texts("one text") and len(store.index) == 1  # a bare str is one text
    reloaded = ColBERTVectorStore.load(store.save(tmp_path / "vs"), model=colbert)
    assert [d.page_content for d in reloaded.get_by_ids(store.index.ids)] == ["one text"]
    assert reloaded.index.config.storage_dtype == "float32"


def test_indexing_api_incremental_and_full(colbert):
    store = ColBERTVectorStore(model=colbert)
    manager = InMemoryRecordManager(namespace="colbert")
    manager.create_schema()
    docs = [
        Document(page_content="the cat sat", metadata={"source": "a.txt"}),
        Document(page_content="the dog ran", metadata={"source": "a.txt"}),
        Document(page_content="blue sky", metadata={"source": "b.txt"}),
    ]
    kw = {"cleanup": "incremental", "source_id_key": "source", "key_encoder": "sha256"}
    assert index(docs, manager, store, **kw) == {
        "num_added": 3, "num_updated": 0, "num_skipped": 0, "num_deleted": 0
    }  # fmt: skip
    assert index(docs, manager, store, **kw)["num_skipped"] == 3  # unchanged: nothing encoded
    changed = [docs[0], Document(page_content="the dog runs fast", metadata={"source": "a.txt"})]
    result = index(changed, manager, store, **kw)
    assert (result["num_added"], result["num_skipped"], result["num_deleted"]) == (1, 1, 1)
    assert sorted(d.page_content for d in store.get_by_ids(store.index.ids)) == [
        "blue sky", "the cat sat", "the dog runs fast"
    ]  # fmt: skip
    full = index([docs[2]], manager, store, **{**kw, "cleanup": "full"})
    assert full["num_deleted"] == 2
    assert [d.page_content for d in store.get_by_ids(store.index.ids)] == ["blue sky"]
