"""ColBERTRerank: a LlamaIndex node postprocessor scoring nodes by exact ColBERT MaxSim."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle, TextNode

from late_interaction import resolve_model
from late_interaction._validation import FROM_LANGCHAIN, as_items, positive_int
from late_interaction.reranking import rerank
from llama_index.retrievers.late_interaction._translate import check_score_mode, scored_node

if TYPE_CHECKING:
    from late_interaction import ColBERT, Encoder

dispatcher = get_dispatcher(__name__)


class ColBERTRerank(BaseNodePostprocessor):
    """Rerank nodes by exact late-interaction (MaxSim) scores from a ColBERT checkpoint.

    All nodes are encoded and scored in one batched pass through ``ColBERT.rerank``; the
    caller's ``NodeWithScore`` objects are never modified (new ones are returned). Bare nodes
    and plain strings are accepted too (as ``NodeWithScore`` with no score, a string as a
    ``TextNode``).

    Setup:
        .. code-block:: bash

            pip install ".[llama-index]"  # in a clone; see the README's Install section

    Instantiate:
        .. code-block:: python

            from llama_index.postprocessor.late_interaction_rerank import ColBERTRerank

            rerank = ColBERTRerank(model="answerdotai/answerai-colbert-small-v1", top_n=5)

    Use in a query engine:
        .. code-block:: python

            engine = RetrieverQueryEngine.from_args(
                bm25_retriever, llm=llm, node_postprocessors=[rerank]
            )
            engine = vector_index.as_query_engine(similarity_top_k=20, node_postprocessors=[rerank])

    Args:
        model: Checkpoint id or local path, a loaded ``late_interaction.ColBERT`` (to share one
            encoder with a retriever), or None for the embedded offline default model.
        top_n: Number of nodes to return.
        device: Torch device for a model loaded by name (None: the core's choice).
        keep_retrieval_score: Copy each node's incoming score to
            ``metadata["retrieval_score"]`` of a copied node.
        batch_size: Encoding batch size.
        score_mode: ``"normalized"`` (default; MaxSim divided by the query's token count, fused
            with the dense cosine for an encoder with ``dense_weight`` > 0 as the embedded
            default; in [-1, 1], so ``SimilarityPostprocessor`` cutoffs mean the same for every
            query) or ``"maxsim"`` (the raw sum). When fused, a copied node's metadata gets
            ``"maxsim_score"`` and ``"dense_score"`` (hidden from the LLM).
        explain: Put each node's per-token explanation in ``metadata["explanation"]`` of a
            copied node (hidden from the LLM); costs one more encoding per returned node.
        **kwargs: Other ``BaseNodePostprocessor`` fields (e.g. ``callback_manager``).

    Raises:
        ValueError: If ``top_n`` or ``batch_size`` is not a positive integer, or ``device``
            contradicts a given ``ColBERT``.
        TypeError: If ``model`` is not a name, a path, a loaded encoder or None.
    """

    model: str = Field(description="Checkpoint id or path of the ColBERT encoder.")
    top_n: int = Field(default=5, description="Number of nodes to return, best first.")
    device: str | None = Field(default=None, description="Torch device of the encoder.")
    keep_retrieval_score: bool = Field(
        default=False,
        description="Keep the incoming score in metadata['retrieval_score'] of a copied node.",
    )
    batch_size: int = Field(default=32, description="Encoding batch size.")
    score_mode: str = Field(default="normalized", description="'normalized' or 'maxsim'.")
    explain: bool = Field(default=False, description="Attach per-token explanations.")

    _model: Any = PrivateAttr()

    def __init__(
        self,
        model: str | ColBERT | Encoder | None = None,
        top_n: int = 5,
        device: str | None = None,
        keep_retrieval_score: bool = False,
        batch_size: int = 32,
        score_mode: str = "normalized",
        explain: bool = False,
        **kwargs: Any,
    ) -> None:
        top_n, batch_size = positive_int(top_n, "top_n"), positive_int(batch_size, "batch_size")
        encoder = resolve_model(model, device=device)
        own_device = getattr(encoder, "device", None)
        super().__init__(
            model=str(getattr(encoder, "name_or_path", type(encoder).__name__)),
            top_n=top_n,
            device=None if own_device is None else str(own_device),
            keep_retrieval_score=keep_retrieval_score,
            batch_size=batch_size,
            score_mode=check_score_mode(score_mode),
            explain=explain,
            **kwargs,
        )
        self._model = encoder  # private attributes only after pydantic's __init__

    @classmethod
    def class_name(cls) -> str:
        """Stable name used in serialisation."""
        return "ColBERTRerank"

    @property
    def encoder(self) -> Encoder:
        """The loaded encoder (a ``ColBERT``, unless another encoder was given)."""
        return self._model

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            msg = "ColBERTRerank needs a query: pass query_str= or query_bundle=."
            raise ValueError(msg)
        nodes = _as_scored(nodes)
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle, nodes=nodes, top_n=self.top_n, model_name=self.model
            )
        )
        if not nodes:
            dispatcher.event(ReRankEndEvent(nodes=[]))
            return []
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: self.model,
                EventPayload.QUERY_STR: query_bundle.query_str,
                EventPayload.TOP_K: self.top_n,
            },
        ) as event:
            texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
            ranked = rerank(
                self._model,
                query_bundle.query_str,
                texts,
                self.top_n,
                batch_size=self.batch_size,
                explain=self.explain,
            )
            new_nodes = [self._rescored(nodes[r.position], r) for r in ranked]
            event.on_end(payload={EventPayload.NODES: new_nodes})
        dispatcher.event(ReRankEndEvent(nodes=new_nodes))
        return new_nodes

    def _rescored(self, item: NodeWithScore, result: Any) -> NodeWithScore:
        node = item.node
        if self.keep_retrieval_score:
            # Copy node and metadata: the caller's node must keep its own metadata.
            metadata = {**node.metadata, "retrieval_score": item.score}
            node = node.model_copy(update={"metadata": metadata})
        return scored_node(node, result, self.score_mode)

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        # Encoding is CPU/GPU bound: keep it off the event loop.
        return await asyncio.to_thread(self._postprocess_nodes, nodes, query_bundle)


def _as_scored(nodes: object) -> list[NodeWithScore]:
    """``NodeWithScore`` items from scored nodes, bare nodes (no score) or plain strings."""
    text_fix = {"langchain_core": FROM_LANGCHAIN}
    expected = "a NodeWithScore, a LlamaIndex node or a str"
    items = as_items(nodes, "nodes", (NodeWithScore, BaseNode, str), expected, text_fix)
    return [
        item
        if isinstance(item, NodeWithScore)
        else NodeWithScore(node=TextNode(text=item) if isinstance(item, str) else item)
        for item in items
    ]
