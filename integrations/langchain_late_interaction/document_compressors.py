"""LangChain document compressor that reranks documents by exact ColBERT MaxSim."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from copy import deepcopy
from typing import Annotated, Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import RetrieverLike
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel, RunnablePassthrough
from pydantic import ConfigDict, PrivateAttr, model_validator
from typing_extensions import Self

from langchain_late_interaction._common import as_documents, positive, score_metadata
from late_interaction import resolve_model
from late_interaction.reranking import rerank

__all__ = ["ColBERTReranker"]


class ColBERTReranker(BaseDocumentCompressor):
    """Rerank documents by exact ColBERT late-interaction (MaxSim) scores.

    All documents are encoded and scored against the query in one batched pass. The result holds
    copies of the ``top_n`` best documents, best first, each with its normalised score (MaxSim /
    query tokens, in [-1, 1], comparable across queries; fused with the dense cosine for an
    encoder with ``dense_weight`` > 0, as the embedded default) under
    ``metadata["relevance_score"]``, the raw sum under ``metadata["maxsim_score"]`` and, when
    fused, the cosine under ``metadata["dense_score"]`` (the keys ``ColBERTRetriever`` uses);
    the caller's documents are never modified.

    Setup:
        .. code-block:: bash

            pip install ".[langchain]"  # in a clone; see the README's Install section

    Key init args:
        model: str | ColBERT | None
            Checkpoint name or path, a loaded ``late_interaction.ColBERT`` (share one with a
            ``ColBERTRetriever``), or None for the embedded offline default.
        top_n: int | None
            Number of documents to keep (default 3; None keeps all, reordered).
        batch_size: int
            Encoding batch size.
        device: str | None
            Device used when loading the model by name (``"cpu"``, ``"cuda"``...); with a loaded
            model it must name the model's device.

    Instantiate:
        .. code-block:: python

            from langchain_late_interaction import ColBERTReranker

            reranker = ColBERTReranker(model="answerdotai/answerai-colbert-small-v1", top_n=3)

    Usage (``Document`` objects or plain strings):
        .. code-block:: python

            reranked = reranker.compress_documents(docs, "how are query tokens matched?")
            [(d.id, d.metadata["relevance_score"]) for d in reranked]

    Use with another retriever, through ``langchain_classic``'s
    ``ContextualCompressionRetriever`` (``pip install langchain-classic``) or, with
    ``langchain_core`` alone, :meth:`with_retriever`:
        .. code-block:: python

            from langchain_classic.retrievers import ContextualCompressionRetriever

            base = vectorstore.as_retriever(search_kwargs={"k": 30})
            rerank_retriever = ContextualCompressionRetriever(
                base_compressor=reranker, base_retriever=base
            )
            rerank_retriever.invoke("how are query tokens matched?")  # top_n documents

            rerank_retriever = reranker.with_retriever(base)  # the same, as an LCEL Runnable
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: Any = None
    """Checkpoint name or path, a loaded ``late_interaction.ColBERT``, or None (the default)."""

    top_n: Annotated[int | None, positive("top_n", optional=True)] = 3
    """Number of documents to return; None returns all of them, reordered."""

    batch_size: Annotated[int, positive("batch_size")] = 32
    """Encoding batch size."""

    explain: bool = False
    """Add each document's per-token explanation in ``metadata["explanation"]``."""

    device: str | None = None
    """Device for loading ``model`` by name; with a loaded model, it must be the model's."""

    _encoder: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _load_model(self) -> Self:
        self._encoder = resolve_model(self.model, device=self.device)
        return self

    @property
    def encoder(self) -> Any:
        """The loaded ``late_interaction.ColBERT``."""
        return self._encoder

    def rerank(
        self,
        documents: str | Document | Sequence[str | Document],
        query: str,
        *,
        top_n: int | None = -1,
    ) -> list[dict[str, Any]]:
        """Score documents against ``query`` by exact MaxSim, best first.

        Args:
            documents: Texts or ``Document`` objects (their ``page_content`` is scored); a bare
                string or Document is one document.
            query: The query.
            top_n: Number of results; ``-1`` (default) uses ``self.top_n``, None returns all.

        Returns:
            ``{"index": position in documents, "relevance_score": normalised (fused) score,
            "maxsim_score": raw MaxSim}`` dicts (and ``"dense_score"`` when fused,
            ``"explanation"`` with ``explain``), best first.

        Raises:
            TypeError: If an item is neither a ``Document`` nor a str (e.g. a LlamaIndex node).
        """
        texts = [d.page_content for d in as_documents(documents, "documents", texts_ok=True)]
        if not texts:
            return []
        limit = self.top_n if top_n == -1 else top_n
        results = rerank(
            self._encoder, query, texts, limit, batch_size=self.batch_size, explain=self.explain
        )
        return [{"index": r.position, **score_metadata(r)} for r in results]

    def compress_documents(
        self,
        documents: Sequence[Document | str],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Return copies of the ``top_n`` best documents with ``metadata["relevance_score"]``.

        Args:
            documents: Documents to rerank (not modified); plain strings are accepted and come
                back as ``Document(page_content=text)``.
            query: The query.
            callbacks: Unused; accepted for the ``BaseDocumentCompressor`` interface.

        Returns:
            Up to ``top_n`` new ``Document`` objects, best first; ``[]`` for empty input.

        Raises:
            TypeError: If an item is neither a ``Document`` nor a str (e.g. a LlamaIndex node).
        """
        documents = as_documents(documents, "documents", texts_ok=True)
        out = []
        for res in self.rerank(documents, query):
            doc = documents[res["index"]]
            metadata = {**deepcopy(doc.metadata), **{k: v for k, v in res.items() if k != "index"}}
            out.append(doc.model_copy(update={"metadata": metadata}))
        return out

    async def acompress_documents(
        self,
        documents: Sequence[Document | str],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`, run in a worker thread (encoding is CPU/GPU bound)."""
        return await asyncio.to_thread(self.compress_documents, documents, query, callbacks)

    def with_retriever(self, retriever: RetrieverLike) -> Runnable[str, list[Document]]:
        """Chain ``retriever`` and this reranker: a Runnable from a query to reranked documents.

        The LCEL counterpart of ``ContextualCompressionRetriever`` (``langchain_classic``), needing
        only ``langchain_core``: the query goes to ``retriever`` and, unchanged, to
        :meth:`compress_documents` with its results.

        Args:
            retriever: Any Runnable from a query string to a list of ``Document`` (a retriever).

        Returns:
            A ``Runnable[str, list[Document]]`` supporting ``invoke``/``ainvoke``/``batch``.
        """

        def _compress(inputs: dict[str, Any]) -> list[Document]:
            return list(self.compress_documents(inputs["documents"], inputs["query"]))

        async def _acompress(inputs: dict[str, Any]) -> list[Document]:
            return list(await self.acompress_documents(inputs["documents"], inputs["query"]))

        gather = RunnableParallel(documents=retriever, query=RunnablePassthrough())
        rerank = RunnableLambda(_compress, afunc=_acompress, name="ColBERTReranker")
        return (gather | rerank).with_config(run_name="ColBERTRerankRetriever")
