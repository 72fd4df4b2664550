"""End to end through LlamaIndex query engines, offline (MockLLM)."""

from __future__ import annotations

from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.retrievers.bm25 import BM25Retriever

from llama_index.postprocessor.late_interaction_rerank import ColBERTRerank
from llama_index.retrievers.late_interaction import ColBERTRetriever

QUERY = "How do I write an anonymous function with lambda?"


def test_query_engine_with_colbert_retriever(corpus_index):
    retriever = ColBERTRetriever(corpus_index, similarity_top_k=3)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = engine.query(QUERY)
    expected = retriever.retrieve(QUERY)
    assert [n.node.node_id for n in response.source_nodes] == [n.node.node_id for n in expected]
    # MockLLM echoes its prompt, so the retrieved text reached the LLM.
    assert expected[0].node.get_content() in str(response)


async def test_query_engine_bm25_then_colbert_rerank(colbert, nodes):
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=10)
    rerank = ColBERTRerank(model=colbert, top_n=3)
    engine = RetrieverQueryEngine.from_args(bm25, llm=MockLLM(), node_postprocessors=[rerank])
    response = engine.query(QUERY)
    candidates = bm25.retrieve(QUERY)
    expected = rerank.postprocess_nodes(candidates, query_str=QUERY)
    got = [(n.node.node_id, round(n.score, 4)) for n in response.source_nodes]
    assert got == [(n.node.node_id, round(n.score, 4)) for n in expected]
    assert len(got) == 3
    aresponse = await engine.aquery(QUERY)
    assert [n.node.node_id for n in aresponse.source_nodes] == [g for g, _ in got]
