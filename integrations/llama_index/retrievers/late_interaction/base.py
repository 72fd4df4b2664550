"""ColBERTRetriever: a LlamaIndex retriever over a late-interaction (ColBERT) index."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.schema import BaseNode, IndexNode, NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters
from llama_index.core.vector_stores.utils import metadata_dict_to_node

from late_interaction import LateInteractionIndex, SearchableIndex, resolve_model
from late_interaction._encoding.resolve import open_index
from late_interaction._validation import as_texts, positive_int
from llama_index.retrievers.late_interaction._translate import (
    as_nodes,
    check_score_mode,
    collect_nodes,
    node_records,
    scored_node,
    to_predicate,
)

if TYPE_CHECKING:
    from llama_index.core.indices.vector_store.base import VectorStoreIndex
    from llama_index.core.storage.docstore.types import BaseDocumentStore

    from late_interaction import ColBERT, Encoder, IndexConfig

logger = logging.getLogger(__name__)

PERSIST_FILENAME = "retriever.json"
_SETTINGS = (
    "similarity_top_k", "filters", "node_ids", "doc_ids", "exact", "query_ef", "score_mode",
    "explain",
)  # fmt: skip


class ColBERTRetriever(BaseRetriever):
    """Retrieve nodes by ColBERT late interaction (per-token ANN, then exact MaxSim).

    Each node is stored in the wrapped index (any :class:`late_interaction.SearchableIndex`: the
    in-process ``LateInteractionIndex`` or a Qdrant-backed ``QdrantIndex``) under its
    ``node_id``, with its text as ``get_content(MetadataMode.EMBED)`` and, as metadata, the dict
    LlamaIndex vector stores use (``node_to_metadata_dict``: the node's metadata plus the
    serialised node), so results are the original nodes and metadata filters run in the index
    (in Qdrant, for a ``QdrantIndex``).

    Instantiate (in a clone ``pip install ".[llama-index]"``; see the README's Install section):
        .. code-block:: python

            from llama_index.retrievers.late_interaction import ColBERTRetriever

            retriever = ColBERTRetriever.from_defaults(
                nodes=nodes, model="answerdotai/answerai-colbert-small-v1", similarity_top_k=5
            )

    Use in a query engine:
        .. code-block:: python

            engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
            engine.query("What does the assert statement do?")

    Args:
        index: A built core index (cheap to inject; share one across retrievers): a
            ``LateInteractionIndex`` or a ``QdrantIndex`` (filters then run inside Qdrant;
            ``persist`` is Qdrant's own: reopen the collection instead).
        similarity_top_k: Number of nodes to return (all of them if the index holds fewer).
        filters: LlamaIndex metadata filters, applied inside the core search.
        node_ids: Restrict results to these node ids (a bare string is one id).
        doc_ids: Restrict results to nodes of these source documents (``ref_doc_id``).
        exact: Brute-force MaxSim over all (filtered) nodes instead of the ANN stage.
        query_ef: HNSW search breadth (Voyager's ``query_ef``; Qdrant's ``hnsw_ef``; None: the
            backend's default).
        score_mode: ``NodeWithScore.score``: ``"normalized"`` (default; ``SearchHit.
            normalized_score``: MaxSim divided by the query's token count, fused with the dense
            cosine when the index's ``dense_weight`` > 0 as with the embedded default; in
            [-1, 1], comparable across queries, so ``SimilarityPostprocessor(similarity_cutoff=
            ...)`` works) or ``"maxsim"`` (the raw sum). When fused, the node's metadata gets
            ``"maxsim_score"`` and ``"dense_score"`` (hidden from the LLM).
        explain: Put each hit's per-token explanation (``Explanation.to_dict()``: matched
            document tokens, spans, similarities) in the node's ``metadata["explanation"]``,
            hidden from the LLM; costs one more encoding per hit.
        callback_manager, objects, object_map, verbose: As ``BaseRetriever``.

    Raises:
        ValueError: If ``similarity_top_k`` or ``query_ef`` is not a positive integer, a filter
            uses an unsupported operator, ``query_ef`` comes with ``exact=True``, or
            ``score_mode`` is unknown.
        TypeError: If ``index`` is not a ``SearchableIndex`` or ids are not strings.
    """

    def __init__(
        self,
        index: SearchableIndex,
        similarity_top_k: int = 10,
        filters: MetadataFilters | None = None,
        node_ids: Sequence[str] | None = None,
        doc_ids: Sequence[str] | None = None,
        exact: bool = False,
        query_ef: int | None = None,
        score_mode: str = "normalized",
        explain: bool = False,
        callback_manager: CallbackManager | None = None,
        objects: list[IndexNode] | None = None,
        object_map: dict | None = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(index, SearchableIndex):
            msg = "index must be a late_interaction.LateInteractionIndex or QdrantIndex; "
            msg += f"got {type(index)}. "
            msg += "For nodes, documents or a VectorStoreIndex use ColBERTRetriever.from_defaults."
            raise TypeError(msg)
        self.similarity_top_k = positive_int(similarity_top_k, "similarity_top_k")
        self.query_ef = positive_int(query_ef, "query_ef", optional=True)
        if exact and query_ef is not None:
            msg = "query_ef tunes the ANN stage, which exact=True skips; pass one of them."
            raise ValueError(msg)
        to_predicate(filters, doc_ids)  # validate now: a bad operator fails here, not later
        self._index, self.filters, self.exact = index, filters, exact
        self.node_ids = None if node_ids is None else as_texts(node_ids, "node_ids")
        self.doc_ids = None if doc_ids is None else as_texts(doc_ids, "doc_ids")
        self.score_mode, self.explain = check_score_mode(score_mode), explain
        super().__init__(callback_manager, object_map, objects, verbose)

    @classmethod
    def from_defaults(
        cls,
        nodes: Sequence[BaseNode] | None = None,
        documents: Sequence[BaseNode] | None = None,
        index: VectorStoreIndex | None = None,
        docstore: BaseDocumentStore | None = None,
        model: str | ColBERT | Encoder | None = None,
        similarity_top_k: int = 10,
        filters: MetadataFilters | None = None,
        transformations: list[Any] | None = None,
        batch_size: int = 32,
        index_config: IndexConfig | None = None,
        device: str | None = None,
        show_progress: bool | None = None,
        **kwargs: Any,
    ) -> ColBERTRetriever:
        """Encode nodes from exactly one source into a new index and wrap it.

        Args:
            nodes: Nodes, indexed as they are.
            documents: Documents, split into nodes by ``transformations``.
            index: A LlamaIndex ``VectorStoreIndex``: the nodes of its docstore are indexed.
            docstore: A LlamaIndex docstore whose nodes are indexed.
            model: Checkpoint id/path, a loaded ``ColBERT``, or None for the embedded default.
            similarity_top_k: Number of nodes to return.
            filters: Metadata filters applied at query time.
            transformations: Node parsers for ``documents``; default a ``SentenceSplitter``
                whose chunks fit the encoder's ``document_length`` (longer text is truncated).
            batch_size: Encoding batch size.
            index_config: Storage and search settings of the new index
                (``late_interaction.IndexConfig``, e.g. ``pool_factor=2``); None for the defaults.
            device: Device for a model loaded by name (``"cpu"``, ``"cuda"``...; None: the
                core's choice); with a loaded model it must be the model's device.
            show_progress: Show an encoding progress bar (None: from 1000 nodes on, or
                always with ``verbose=True``).
            **kwargs: Other ``ColBERTRetriever`` arguments.

        Raises:
            ValueError: Unless exactly one of nodes, documents, index, docstore is given.
        """
        encoder = resolve_model(model, device=device)
        # Chunks that fit the encoder's document length (None for an encoder without a config).
        size = getattr(getattr(encoder, "config", None), "document_length", None)
        found = collect_nodes(
            nodes, documents, index, docstore, chunk_size=size, transformations=transformations
        )
        core_index = LateInteractionIndex(model=encoder, config=index_config)
        retriever = cls(core_index, similarity_top_k, filters, **kwargs)
        retriever.insert_nodes(found, batch_size=batch_size, show_progress=show_progress)
        return retriever

    @property
    def index(self) -> SearchableIndex:
        """The wrapped core index."""
        return self._index

    def insert_nodes(
        self,
        nodes: Sequence[BaseNode],
        *,
        embeddings: Sequence[Any] | None = None,
        batch_size: int = 32,
        show_progress: bool | None = None,
    ) -> None:
        """Add nodes, replacing indexed ids; ``embeddings`` (token matrices) skip encoding.

        Args:
            nodes: The nodes.
            embeddings: Their token matrices, or None to encode them.
            batch_size: Encoding batch size.
            show_progress: Show an encoding progress bar (None: from 1000 nodes on, or always
                with ``verbose=True``).
        """
        nodes = as_nodes(nodes, "nodes")
        texts, ids, metas = node_records(nodes)
        if embeddings is not None:
            self._index.add_embeddings(embeddings, texts, ids=ids, metadatas=metas)
        elif nodes:
            show = show_progress if show_progress is not None else (self._verbose or None)
            kw = {"batch_size": batch_size, "show_progress_bar": show}
            self._index.add(texts, ids=ids, metadatas=metas, **kw)

    def delete_nodes(self, node_ids: str | Sequence[str]) -> None:
        """Remove nodes by id (no re-encoding of the others).

        Args:
            node_ids: Node ids, or one id.

        Raises:
            KeyError: Listing ids that are not indexed (nothing is deleted then).
        """
        self._index.delete(node_ids)

    def delete_ref_doc(self, ref_doc_id: str) -> None:
        """Remove every node whose source document is ``ref_doc_id`` (as ``VectorStoreIndex``).

        Args:
            ref_doc_id: The source document's id; with no nodes, nothing is deleted and a
                warning is logged, as LlamaIndex indexes do.
        """
        # Performance note: a scan of the stored metadata; deletes are rare next to queries.
        docs = self._index.get(self._index.ids)
        found = [d.id for d in docs if d.metadata.get("ref_doc_id") == ref_doc_id]
        if not found:
            logger.warning("ref_doc_id %s not found, nothing deleted.", ref_doc_id)
        self._index.delete(found)

    def persist(self, path: str | Path) -> None:
        """Save the index (core format) and the retriever settings to ``path``, atomically."""
        settings = {name: getattr(self, name) for name in _SETTINGS}
        settings["filters"] = self.filters.model_dump(mode="json") if self.filters else None
        self._index.save(path, extra_files={PERSIST_FILENAME: settings})

    @classmethod
    def from_persist_dir(
        cls,
        path: str | Path,
        model: str | ColBERT | Encoder | None = None,
        device: str | None = None,
        *,
        trust_remote_model: bool = False,
        verify: bool = True,
        **kwargs: Any,
    ) -> ColBERTRetriever:
        """Load a retriever written by :meth:`persist`; ``kwargs`` override saved settings.

        Args:
            path: The folder given to :meth:`persist`.
            model: None rebuilds the saved encoder; else a checkpoint name/path or loaded encoder
                that must be the one that built the index (``ModelMismatchError`` otherwise).
            device: Device for a model loaded by name (or rebuilt with ``model=None``).
            trust_remote_model: With ``model=None``, allow rebuilding an encoder the folder
                names by Hub id (a folder from elsewhere could name any repository).
            verify: Also hash the memory-mapped token arrays; False skips only those.
            **kwargs: ``ColBERTRetriever`` arguments overriding the saved settings.
        """
        settings = json.loads(Path(path, PERSIST_FILENAME).read_text(encoding="utf-8"))
        if settings.get("filters"):
            settings["filters"] = MetadataFilters.model_validate(settings["filters"])
        settings.update(kwargs)
        index = open_index(
            path, model, device=device, trust_remote_model=trust_remote_model, verify=verify
        )
        return cls(index, **settings)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if len(self._index) == 0:
            return []
        # Fewer nodes than similarity_top_k: all of them, silently (as VectorStoreIndex).
        q, k = query_bundle.query_str, self.similarity_top_k
        opts = {"filter": to_predicate(self.filters, self.doc_ids), "ids": self.node_ids}
        opts.update(exact=self.exact, query_ef=self.query_ef, explain=self.explain)
        hits = self._index.search(q, k, **opts)
        return [scored_node(metadata_dict_to_node(h.metadata), h, self.score_mode) for h in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # Encoding and MaxSim are CPU/GPU bound: keep them off the event loop.
        return await asyncio.to_thread(self._retrieve, query_bundle)
