"""LateInteractionManagedIndex: LlamaIndex's native index API over the core index."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core import Document, StorageContext, load_index_from_storage
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.storage.docstore import SimpleDocumentStore

from llama_index.indices.managed.late_interaction import LateInteractionManagedIndex
from llama_index.retrievers.late_interaction import ColBERTRetriever

DOCS = {
    "cats": "The cat sat on the mat. Cats run fast.",
    "paris": "Paris is the capital city of France, on a river.",
    "sea": "The sea is blue; the sky is blue.",
}


def _docs(**changed: str) -> list[Document]:
    return [Document(text=changed.get(k, v), id_=k) for k, v in DOCS.items()]


@pytest.fixture
def index(colbert) -> LateInteractionManagedIndex:
    return LateInteractionManagedIndex.from_documents(_docs(), model=colbert)


def _stored_texts(index) -> dict[str, str]:
    """ref_doc_id -> text of its nodes, read back from the core index (not the docstore)."""
    out: dict[str, str] = {}
    for doc in index.core_index.get(index.core_index.ids):
        out[doc.metadata["ref_doc_id"]] = out.get(doc.metadata["ref_doc_id"], "") + doc.text
    return out


def test_from_documents_retriever_and_engines(index, colbert):
    assert _stored_texts(index) == DOCS
    assert set(index.ref_doc_info) == set(DOCS)
    query = "capital city of france"
    got = index.as_retriever(similarity_top_k=3).retrieve(query)
    q = colbert.encode_queries(query)[0]
    texts = [n.node.get_content() for n in got]
    expected = [float((q @ d.T).max(axis=1).mean()) for d in colbert.encode_documents(texts)]
    assert [n.score for n in got] == sorted([n.score for n in got], reverse=True)
    np.testing.assert_allclose([n.score for n in got], expected, atol=1e-3)  # normalised
    assert isinstance(index.as_retriever(), ColBERTRetriever)
    response = index.as_query_engine(llm=MockLLM(), similarity_top_k=1).query(query)
    assert [n.node.node_id for n in response.source_nodes] == [got[0].node.node_id]
    chat = index.as_chat_engine(chat_mode="context", llm=MockLLM(), similarity_top_k=1)
    assert got[0].node.get_content() in str(chat.chat(query))  # MockLLM echoes the context


def test_insert_delete_update_refresh(index):
    index.insert(Document(text="A dog ran in the water.", id_="dog"))
    assert _stored_texts(index)["dog"] == "A dog ran in the water."
    index.delete_ref_doc("cats", delete_from_docstore=True)
    assert "cats" not in _stored_texts(index) and "cats" not in index.ref_doc_info
    index.update_ref_doc(Document(text="The sea is green.", id_="sea"))
    assert _stored_texts(index)["sea"] == "The sea is green."
    before = {d.id: d.text for d in index.core_index.get(index.core_index.ids)}
    current = _docs(paris="Paris is a city in France.", sea="The sea is green.")
    refreshed = index.refresh_ref_docs(current)
    assert refreshed == [True, True, False]  # cats re-inserted, paris changed, sea unchanged
    after = {d.id: d.text for d in index.core_index.get(index.core_index.ids)}
    unchanged = {i: t for i, t in before.items() if t.startswith(("The sea", "A dog"))}
    assert {i: after[i] for i in unchanged} == unchanged  # same node ids: not re-encoded
    assert _stored_texts(index)["paris"] == "Paris is a city in France."


def test_persist_and_load_index_from_storage(index, colbert, tmp_path):
    index.storage_context.persist(persist_dir=tmp_path / "storage")
    loaded = load_index_from_storage(StorageContext.from_defaults(persist_dir=tmp_path / "storage"))
    assert isinstance(loaded, LateInteractionManagedIndex)
    assert _stored_texts(loaded) == DOCS and set(loaded.ref_doc_info) == set(DOCS)
    query = "blue sky"
    expected = index.as_retriever(similarity_top_k=2).retrieve(query)
    got = loaded.as_retriever(similarity_top_k=2).retrieve(query)
    assert [(n.node.node_id, n.score) for n in got] == [(n.node.node_id, n.score) for n in expected]
    moved = tmp_path / "moved"
    (tmp_path / "storage").rename(moved)
    with pytest.raises(FileNotFoundError, match="persist_dir="):
        load_index_from_storage(StorageContext.from_defaults(persist_dir=moved))
    again = load_index_from_storage(
        StorageContext.from_defaults(persist_dir=moved), persist_dir=moved
    )
    assert _stored_texts(again) == DOCS


def test_ingestion_pipeline_with_docstore_feeds_only_new_nodes(colbert):
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0)],
        docstore=SimpleDocumentStore(),
        docstore_strategy=DocstoreStrategy.DUPLICATES_ONLY,  # no vector store: dedup only
    )
    index = LateInteractionManagedIndex(nodes=pipeline.run(documents=_docs()), model=colbert)
    assert set(_stored_texts(index)) == set(DOCS)
    new = pipeline.run(documents=[*_docs(), Document(text="Blue water.", id_="water")])
    assert [n.ref_doc_id for n in new] == ["water"]  # the docstore skipped the unchanged ones
    index.insert_nodes(new)
    assert _stored_texts(index)["water"] == "Blue water."


def test_query_engine_arguments_reach_the_engine(index):
    from llama_index.core.postprocessor import SimilarityPostprocessor

    hits = index.as_retriever(similarity_top_k=3).retrieve("blue sky")
    cutoff = SimilarityPostprocessor(similarity_cutoff=hits[0].score - 1e-6)  # keeps the best
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=3, node_postprocessors=[cutoff])
    response = engine.query("blue sky")
    assert [n.node.node_id for n in response.source_nodes] == [hits[0].node.node_id]
