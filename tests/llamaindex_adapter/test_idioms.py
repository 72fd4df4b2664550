"""What LlamaIndex users write out of habit works: query engines, node parsers, ref-doc deletes."""

from __future__ import annotations

import json
import logging

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings.mock_embed_model import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.query_engine import RetrieverQueryEngine
from tests.llamaindex_adapter.conftest import make_nodes

from llama_index.postprocessor.late_interaction_rerank import ColBERTRerank
from llama_index.retrievers.late_interaction import ColBERTRetriever
from llama_index.retrievers.late_interaction.base import PERSIST_FILENAME

QUERY = "How do I catch an exception and handle the error?"


def long_documents() -> list[Document]:
    """Three documents of several passages each (no metadata: node text is passage text)."""
    nodes = make_nodes(step=1)
    return [
        Document(text="\n\n".join(n.text for n in nodes[i : i + 6]), doc_id=f"doc-{i // 6}")
        for i in range(0, 18, 6)
    ]


def summary(nodes) -> list[tuple[str, float]]:
    return [(n.node.node_id, round(float(n.score), 4)) for n in nodes]


async def test_vector_store_query_engine_with_colbert_rerank(colbert, nodes):
    # The usual LlamaIndex recipe: a dense index's query engine with the reranker as a
    # node postprocessor. MockEmbedding gives every node the same vector, so the dense order is
    # arbitrary and any sensible answer must come from the reranker.
    vector_index = VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=8))
    rerank = ColBERTRerank(model=colbert, top_n=3)
    engine = vector_index.as_query_engine(
        llm=MockLLM(), similarity_top_k=20, node_postprocessors=[rerank]
    )
    response = engine.query(QUERY)
    candidates = vector_index.as_retriever(similarity_top_k=20).retrieve(QUERY)
    expected = rerank.postprocess_nodes(candidates, query_str=QUERY)
    assert summary(response.source_nodes) == summary(expected) and len(expected) == 3
    assert expected[0].node.get_content() in str(response)  # MockLLM echoes its context
    aresponse = await engine.aquery(QUERY)
    assert summary(aresponse.source_nodes) == summary(expected)


async def test_async_query_engine_over_the_retriever(corpus_index):
    retriever = ColBERTRetriever(corpus_index, similarity_top_k=4)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    expected = summary(retriever.retrieve(QUERY))
    assert summary((await engine.aquery(QUERY)).source_nodes) == expected
    assert summary(engine.query(QUERY).source_nodes) == expected


def test_from_defaults_documents_with_a_node_parser(colbert):
    documents = long_documents()
    parser = SentenceSplitter(chunk_size=96, chunk_overlap=0)
    retriever = ColBERTRetriever.from_defaults(
        documents=documents, transformations=[parser], model=colbert, similarity_top_k=100
    )
    expected = parser.get_nodes_from_documents(documents)
    stored = retriever.index.get(retriever.index.ids)
    assert sorted(d.text for d in stored) == sorted(n.text for n in expected)
    assert len(stored) > len(documents)  # the parser's chunks, not whole documents
    found = retriever.retrieve(QUERY)
    assert {n.node.ref_doc_id for n in found} == {d.doc_id for d in documents}


def test_delete_ref_doc_removes_every_chunk_of_a_document(colbert, caplog):
    documents = long_documents()
    retriever = ColBERTRetriever.from_defaults(
        documents=documents,
        transformations=[SentenceSplitter(chunk_size=96, chunk_overlap=0)],
        model=colbert,
        similarity_top_k=100,
    )
    before = {n.node.node_id: n.node.ref_doc_id for n in retriever.retrieve(QUERY)}
    retriever.delete_ref_doc("doc-1")
    after = {n.node.node_id: n.node.ref_doc_id for n in retriever.retrieve(QUERY)}
    assert "doc-1" in before.values() and "doc-1" not in after.values()
    assert after == {i: ref for i, ref in before.items() if ref != "doc-1"}
    with caplog.at_level(logging.WARNING):
        retriever.delete_ref_doc("no-such-doc")  # as VectorStoreIndex: a warning, no error
    assert "no-such-doc not found" in caplog.text
    assert len(retriever.index) == len(after)


def test_persist_writes_settings_inside_the_atomic_save(corpus_index, tmp_path):
    retriever = ColBERTRetriever(corpus_index, similarity_top_k=2, node_ids=["x"])
    retriever.persist(tmp_path / "r")
    manifest = json.loads((tmp_path / "r" / "config.json").read_text())
    assert PERSIST_FILENAME in manifest["files"]  # written and checked with the index files
    saved = json.loads((tmp_path / "r" / PERSIST_FILENAME).read_text())
    assert saved["similarity_top_k"] == 2 and saved["node_ids"] == ["x"]
