"""ColBERTRerank: the contract, scores against naive MaxSim, events, copies, shared encoder."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import MetadataMode, NodeWithScore
from tests.llamaindex_adapter.contract import EventRecorder, PostprocessorContract

from llama_index.postprocessor.late_interaction_rerank import ColBERTRerank

QUERY = "How do I define a function that takes keyword arguments?"


def scored(nodes) -> list[NodeWithScore]:
    # Incoming scores deliberately in a different order than any MaxSim ranking would give.
    return [NodeWithScore(node=n, score=float(i)) for i, n in enumerate(nodes[:6])]


class TestColBERTRerankContract(PostprocessorContract):
    @pytest.fixture(autouse=True)
    def _setup(self, colbert, nodes):
        self._colbert, self._nodes = colbert, nodes

    @property
    def postprocessor_constructor(self):
        return ColBERTRerank

    @property
    def postprocessor_constructor_params(self):
        return {"model": self._colbert}

    @property
    def postprocessor_query_example(self):
        return QUERY

    @property
    def postprocessor_nodes_example(self):
        return scored(self._nodes)


def test_scores_equal_naive_maxsim(colbert, nodes):
    items = scored(nodes)
    q = colbert.encode_queries([QUERY])[0]
    docs = colbert.encode_documents(
        [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in items]
    )
    naive = {
        it.node.node_id: float((q @ d.T).max(axis=1).mean())  # normalised: mean over rows
        for it, d in zip(items, docs, strict=True)
    }
    expected = sorted(naive.items(), key=lambda kv: -kv[1])[:4]
    out = ColBERTRerank(model=colbert, top_n=4).postprocess_nodes(items, query_str=QUERY)
    assert [n.node.node_id for n in out] == [i for i, _ in expected]
    np.testing.assert_allclose([n.score for n in out], [s for _, s in expected], rtol=1e-4)


def test_keep_retrieval_score_copies_the_node(colbert, nodes):
    items = scored(nodes)
    out = ColBERTRerank(model=colbert, top_n=3, keep_retrieval_score=True).postprocess_nodes(
        items, query_str=QUERY
    )
    by_id = {it.node.node_id: it for it in items}
    for n in out:
        original = by_id[n.node.node_id]
        assert n.node.metadata["retrieval_score"] == original.score
        assert "retrieval_score" not in original.node.metadata
        assert n.node is not original.node and n.node.text == original.node.text


def test_shares_the_given_encoder(colbert):
    rerank = ColBERTRerank(model=colbert)
    assert rerank.encoder is colbert
    assert rerank.model == colbert.name_or_path and rerank.device == str(colbert.device)
    with pytest.raises(ValueError, match="device"):
        ColBERTRerank(model=colbert, device="meta")
    assert ColBERTRerank(model=colbert, device="cpu").encoder is colbert  # its own device
    with pytest.raises(TypeError, match="model must be None"):
        ColBERTRerank(model=123)  # never looked up as a hub id
    with pytest.raises(ValueError, match="top_n"):
        ColBERTRerank(model=colbert, top_n=0)


async def test_events_and_callbacks_fire(colbert, nodes):
    recorder, debug = EventRecorder(), LlamaDebugHandler()
    root = get_dispatcher()
    root.add_event_handler(recorder)
    try:
        rerank = ColBERTRerank(model=colbert, top_n=2, callback_manager=CallbackManager([debug]))
        rerank.postprocess_nodes(scored(nodes), query_str=QUERY)
        await rerank.apostprocess_nodes(scored(nodes), query_str=QUERY)
    finally:
        root.event_handlers.remove(recorder)
    ours = [e for e in recorder.events if isinstance(e, ReRankStartEvent | ReRankEndEvent)]
    assert [type(e) for e in ours] == [ReRankStartEvent, ReRankEndEvent] * 2
    assert ours[0].top_n == 2 and ours[0].model_name == colbert.name_or_path
    assert len(ours[1].nodes) == 2
    pairs = debug.get_event_pairs(CBEventType.RERANKING)
    assert len(pairs) == 2
    assert len(pairs[0][1].payload["nodes"]) == 2


def test_normalised_scores_and_explanations(colbert, nodes):
    n_rows = colbert.encode_queries(QUERY)[0].shape[0]
    normalised = ColBERTRerank(model=colbert, top_n=3).postprocess_nodes(
        scored(nodes), query_str=QUERY
    )
    raw = ColBERTRerank(model=colbert, top_n=3, score_mode="maxsim").postprocess_nodes(
        scored(nodes), query_str=QUERY
    )
    np.testing.assert_allclose([n.score for n in raw], [n.score * n_rows for n in normalised])
    explained = ColBERTRerank(model=colbert, top_n=3, explain=True).postprocess_nodes(
        scored(nodes), query_str=QUERY
    )
    for n, plain in zip(explained, normalised, strict=True):
        assert n.node.metadata["explanation"]["normalized_score"] == pytest.approx(plain.score)
        assert "explanation" not in n.node.get_content(metadata_mode=MetadataMode.LLM)
    assert all("explanation" not in n.node.metadata for n in scored(nodes))  # inputs untouched
