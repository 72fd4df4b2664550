"""LlamaIndex adapters with the embedded default: the fused score and its parts in metadata.

Reference: numpy MaxSim of the encoder's token matrices plus sentence-transformers' own dense
vectors, fused as ``(MaxSim/|q| + 0.25 cos) / 1.25``.
"""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

from llama_index.postprocessor.late_interaction_rerank import ColBERTRerank
from llama_index.retrievers.late_interaction import ColBERTRetriever

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
        out[f"n{i}"] = ((raw / len(q) + 0.25 * cos[i]) / 1.25, raw, float(cos[i]))
    return dict(sorted(out.items(), key=lambda kv: -kv[1][0]))


def _check(nodes, expected):
    assert [n.node.node_id for n in nodes] == list(expected)[: len(nodes)]
    for n in nodes:
        fused, raw, cos = expected[n.node.node_id]
        assert n.score == pytest.approx(fused, abs=1e-4)
        assert n.node.metadata["maxsim_score"] == pytest.approx(raw, abs=1e-3)
        assert n.node.metadata["dense_score"] == pytest.approx(cos, abs=1e-4)
        llm_view = n.node.get_content(metadata_mode=MetadataMode.LLM)
        assert "dense_score" not in llm_view and "maxsim_score" not in llm_view


def test_rerank_puts_the_fused_score_and_its_parts(default_model, expected):
    nodes = [NodeWithScore(node=TextNode(id_=f"n{i}", text=t)) for i, t in enumerate(TEXTS)]
    out = ColBERTRerank(model=default_model, top_n=3).postprocess_nodes(nodes, query_str=QUERY)
    _check(out, expected)
    assert all("dense_score" not in n.node.metadata for n in nodes)  # the input is untouched


def test_retriever_puts_the_fused_score_and_its_parts(default_model, expected):
    nodes = [TextNode(id_=f"n{i}", text=t) for i, t in enumerate(TEXTS)]
    retriever = ColBERTRetriever.from_defaults(nodes=nodes, model=default_model, similarity_top_k=3)
    _check(retriever.retrieve(QUERY), expected)
    raw = ColBERTRetriever.from_defaults(
        nodes=nodes, model=default_model, similarity_top_k=3, score_mode="maxsim"
    ).retrieve(QUERY)
    np.testing.assert_allclose(
        [n.score for n in raw], [n.node.metadata["maxsim_score"] for n in raw], rtol=1e-6
    )
