"""Contract tests for LlamaIndex retrievers and node postprocessors (langchain-tests style).

LlamaIndex ships no conformance suite, so this mixin states what any retriever or postprocessor
of this package must do. A test class subclasses a mixin and fills in the properties:

.. code-block:: python

    class TestMyRetriever(RetrieverContract):
        @property
        def retriever_constructor(self): return MyRetriever
        @property
        def retriever_constructor_params(self): return {"index": ...}
        ...
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters


def _non_increasing(scores: list[float]) -> bool:
    return all(a >= b - 1e-6 for a, b in itertools.pairwise(scores))


def _summary(nodes: list[NodeWithScore]) -> list[tuple[str, float]]:
    return [(n.node.node_id, round(float(n.score), 4)) for n in nodes]


class EventRecorder(BaseEventHandler):
    """Collects every instrumentation event (register on ``get_dispatcher()``)."""

    events: list = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "EventRecorder"

    def handle(self, event, **kwargs) -> None:
        self.events.append(event)


class RetrieverContract:
    """What every LlamaIndex retriever of this package guarantees."""

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        """The retriever class."""
        raise NotImplementedError

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        """Keyword arguments for the constructor (without ``similarity_top_k``)."""
        raise NotImplementedError

    @property
    def retriever_query_example(self) -> str:
        """A query with several relevant nodes in the corpus."""
        raise NotImplementedError

    @property
    def corpus_size(self) -> int:
        """Number of nodes the constructed retriever can return."""
        raise NotImplementedError

    @property
    def filters_example(self) -> tuple[MetadataFilters, Callable[[dict], bool]]:
        """Filters plus an independent predicate on node metadata that they must equal."""
        raise NotImplementedError

    def make(self, **overrides: Any) -> BaseRetriever:
        return self.retriever_constructor(**{**self.retriever_constructor_params, **overrides})

    def test_base_class(self) -> None:
        assert BaseRetriever in self.retriever_constructor.__mro__

    def test_returns_nodes_with_scores(self) -> None:
        out = self.make(similarity_top_k=3).retrieve(self.retriever_query_example)
        assert isinstance(out, list) and out
        assert all(isinstance(n, NodeWithScore) and isinstance(n.node, BaseNode) for n in out)
        assert all(isinstance(n.score, float) for n in out)

    def test_scores_non_increasing(self) -> None:
        out = self.make(similarity_top_k=8).retrieve(self.retriever_query_example)
        assert _non_increasing([n.score for n in out])

    @pytest.mark.parametrize("k", [1, 3])
    def test_top_k_honoured(self, k: int) -> None:
        out = self.make(similarity_top_k=k).retrieve(self.retriever_query_example)
        assert len(out) == k

    def test_top_k_above_corpus_returns_corpus(self) -> None:
        out = self.make(similarity_top_k=self.corpus_size + 7).retrieve(
            self.retriever_query_example
        )
        assert len({n.node.node_id for n in out}) == len(out) == self.corpus_size

    def test_top_k_below_one_rejected(self) -> None:
        with pytest.raises(ValueError, match="similarity_top_k"):
            self.make(similarity_top_k=0)

    def test_accepts_query_bundle(self) -> None:
        retriever = self.make(similarity_top_k=3)
        by_str = retriever.retrieve(self.retriever_query_example)
        by_bundle = retriever.retrieve(QueryBundle(self.retriever_query_example))
        assert _summary(by_str) == _summary(by_bundle)

    async def test_aretrieve_equals_retrieve(self) -> None:
        retriever = self.make(similarity_top_k=4)
        sync = retriever.retrieve(self.retriever_query_example)
        asynchronous = await retriever.aretrieve(self.retriever_query_example)
        assert _summary(asynchronous) == _summary(sync)

    def reopen(self, retriever: BaseRetriever, folder: str) -> BaseRetriever:
        """Persist ``retriever`` under ``folder`` and load it back (a backend may override)."""
        retriever.persist(folder)
        return self.retriever_constructor.from_persist_dir(folder)

    def test_persist_round_trip(self, tmp_path) -> None:
        retriever = self.make(similarity_top_k=4)
        before = retriever.retrieve(self.retriever_query_example)
        loaded = self.reopen(retriever, str(tmp_path / "persisted"))
        after = loaded.retrieve(self.retriever_query_example)
        assert _summary(after) == _summary(before)
        for a, b in zip(after, before, strict=True):
            assert a.node.get_content() == b.node.get_content()
            assert a.node.metadata == b.node.metadata
            assert a.node.relationships == b.node.relationships

    def test_filters_applied(self) -> None:
        filters, predicate = self.filters_example
        out = self.make(similarity_top_k=self.corpus_size, filters=filters).retrieve(
            self.retriever_query_example
        )
        assert out, "the example filters should keep some nodes"
        assert all(predicate(n.node.metadata) for n in out)
        unfiltered = self.make(similarity_top_k=self.corpus_size).retrieve(
            self.retriever_query_example
        )
        expected = [n.node.node_id for n in unfiltered if predicate(n.node.metadata)]
        assert [n.node.node_id for n in out] == expected


class PostprocessorContract:
    """What every LlamaIndex node postprocessor (reranker) of this package guarantees."""

    @property
    def postprocessor_constructor(self) -> type[BaseNodePostprocessor]:
        """The postprocessor class."""
        raise NotImplementedError

    @property
    def postprocessor_constructor_params(self) -> dict[str, Any]:
        """Keyword arguments for the constructor (without ``top_n``)."""
        raise NotImplementedError

    @property
    def postprocessor_query_example(self) -> str:
        raise NotImplementedError

    @property
    def postprocessor_nodes_example(self) -> list[NodeWithScore]:
        """At least five scored nodes (fresh objects on every access)."""
        raise NotImplementedError

    def make(self, **overrides: Any) -> BaseNodePostprocessor:
        params = {**self.postprocessor_constructor_params, **overrides}
        return self.postprocessor_constructor(**params)

    def test_base_class(self) -> None:
        assert BaseNodePostprocessor in self.postprocessor_constructor.__mro__

    def test_class_name_is_stable(self) -> None:
        name = self.postprocessor_constructor.class_name()
        assert name == self.make(top_n=2).class_name() != BaseNodePostprocessor.class_name()
        assert self.make(top_n=2).to_dict()["class_name"] == name

    @pytest.mark.parametrize("top_n", [1, 3, 100])
    def test_top_n_honoured_and_sorted(self, top_n: int) -> None:
        nodes = self.postprocessor_nodes_example
        out = self.make(top_n=top_n).postprocess_nodes(
            nodes, query_str=self.postprocessor_query_example
        )
        assert len(out) == min(top_n, len(nodes))
        assert all(isinstance(n, NodeWithScore) for n in out)
        assert _non_increasing([n.score for n in out])
        assert {n.node.node_id for n in out} <= {n.node.node_id for n in nodes}

    def test_query_str_equals_query_bundle(self) -> None:
        pp, q = self.make(top_n=3), self.postprocessor_query_example
        by_str = pp.postprocess_nodes(self.postprocessor_nodes_example, query_str=q)
        by_bundle = pp.postprocess_nodes(self.postprocessor_nodes_example, QueryBundle(q))
        assert _summary(by_str) == _summary(by_bundle)

    def test_missing_query_raises(self) -> None:
        with pytest.raises(ValueError, match="query"):
            self.make(top_n=3).postprocess_nodes(self.postprocessor_nodes_example)

    def test_empty_input(self) -> None:
        assert self.make(top_n=3).postprocess_nodes([], query_str="anything") == []

    def test_inputs_not_mutated(self) -> None:
        nodes = self.postprocessor_nodes_example
        snapshot = copy.deepcopy(nodes)
        out = self.make(top_n=3).postprocess_nodes(
            nodes, query_str=self.postprocessor_query_example
        )
        assert [n.model_dump() for n in nodes] == [n.model_dump() for n in snapshot]
        assert not any(o is n for o in out for n in nodes)

    async def test_async_equals_sync(self) -> None:
        pp, q = self.make(top_n=3), self.postprocessor_query_example
        sync = pp.postprocess_nodes(self.postprocessor_nodes_example, query_str=q)
        asynchronous = await pp.apostprocess_nodes(self.postprocessor_nodes_example, query_str=q)
        assert _summary(asynchronous) == _summary(sync)

    def test_serialisation_round_trip(self) -> None:
        pp = self.make(top_n=2)
        data = pp.to_dict()
        clone = self.postprocessor_constructor.from_dict(data)
        assert clone.to_dict() == data
        q = self.postprocessor_query_example
        nodes = self.postprocessor_nodes_example
        assert _summary(clone.postprocess_nodes(nodes, query_str=q)) == _summary(
            pp.postprocess_nodes(nodes, query_str=q)
        )
