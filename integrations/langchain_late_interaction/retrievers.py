"""LangChain retriever over a :class:`late_interaction.LateInteractionIndex`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from langchain_late_interaction._common import (
    Filter,
    SearchKwargs,
    StrPath,
    check_search_kwargs,
    score_metadata,
    unpack,
)
from late_interaction import IndexConfig, LateInteractionIndex, resolve_model

__all__ = ["ColBERTRetriever"]


class ColBERTRetriever(BaseRetriever):
    r"""ColBERT late-interaction retriever backed by a ``LateInteractionIndex``.

    Per-token HNSW candidates, ranked by exact MaxSim. Returned ``Document`` objects carry the
    stored ``id``, text and metadata plus the normalised score (MaxSim / query tokens, in
    [-1, 1], comparable across queries) in ``metadata["relevance_score"]`` and the raw MaxSim in
    ``metadata["maxsim_score"]`` (as ``ColBERTReranker``; they override stored keys of those
    names in the returned copy). ``explain=True`` adds ``metadata["explanation"]``.

    Setup:
        .. code-block:: bash

            pip install -U "late-interaction[langchain]"

    Key init args:
        index: LateInteractionIndex
            The index to search (built or loaded with the core, or by ``from_texts``).
        k: int
            Number of documents to return (default 4); ``invoke(query, k=...)`` overrides it.
        filter: dict | Callable[[dict], bool] | None
            Metadata filter: ``{key: value}`` (a list value means "any of") or a predicate.
        search_kwargs: dict
            ``query_ef``, ``k_token``, ``ids`` or ``exact`` passed to
            ``LateInteractionIndex.search``.

    Instantiate:
        .. code-block:: python

            from langchain_late_interaction import ColBERTRetriever

            retriever = ColBERTRetriever.from_texts(
                ["ColBERT compares every query token.", "BM25 counts words."],
                metadatas=[{"kind": "neural"}, {"kind": "lexical"}],
                model="answerdotai/answerai-colbert-small-v1",  # None: embedded default
                k=2,
            )

    Usage:
        .. code-block:: python

            docs = retriever.invoke("token-level matching", k=1, filter={"kind": "neural"})
            docs[0].metadata["relevance_score"]

    Use within a chain:
        .. code-block:: python

            from langchain_core.output_parsers import StrOutputParser
            from langchain_core.prompts import ChatPromptTemplate
            from langchain_core.runnables import RunnablePassthrough

            prompt = ChatPromptTemplate.from_template("Context: {context}\nQuestion: {question}")

            def format_docs(docs):
                return " / ".join(doc.page_content for doc in docs)

            chain = (
                {"context": retriever | format_docs, "question": RunnablePassthrough()}
                | prompt
                | llm  # any chat model
                | StrOutputParser()
            )
            chain.invoke("What does ColBERT compare?")
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    index: LateInteractionIndex
    """The ``late_interaction.LateInteractionIndex`` to search (shared, not copied)."""

    k: int = Field(default=4, ge=1)
    """Number of documents to return; ``invoke(query, k=...)`` overrides it per call."""

    filter: Filter = None
    """Default metadata filter (core semantics); ``invoke(query, filter=...)`` replaces it."""

    search_kwargs: SearchKwargs = Field(default_factory=dict)
    """Extra ``index.search`` options: ``query_ef``, ``k_token``, ``ids``, ``exact``,
    ``explain``."""

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: Filter = None,
        **kwargs: Any,
    ) -> list[Document]:
        search_kwargs = {**self.search_kwargs, **check_search_kwargs(kwargs)}
        k, filter = self.k if k is None else k, self.filter if filter is None else filter
        if len(self.index) == 0:  # a retriever over nothing finds nothing, as vector stores do
            return []
        hits = self.index.search(query, k=k, filter=filter, **search_kwargs)
        return [
            Document(id=h.id, page_content=h.text, metadata={**h.metadata, **score_metadata(h)})
            for h in hits
        ]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        # Encoding and scoring are CPU/GPU bound: run them in a worker thread, off the loop.
        return await asyncio.to_thread(
            self._get_relevant_documents, query, run_manager=run_manager.get_sync(), **kwargs
        )

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        metadatas: Sequence[dict[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
        *,
        model: Any = None,
        device: str | None = None,
        path: StrPath | None = None,
        index_config: IndexConfig | None = None,
        batch_size: int = 32,
        **kwargs: Any,
    ) -> ColBERTRetriever:
        """Encode ``texts`` into a new index; return a retriever over it.

        Args:
            texts: Passages to index.
            metadatas: One JSON-serialisable dict per text, or None.
            ids: One id per text, or None to generate them.
            model: A loaded ``late_interaction.ColBERT``, a checkpoint name or path, or None
                (the embedded offline default).
            device: Device for a model loaded by name (``"cpu"``, ``"cuda"``...; None: the
                core's choice); with a loaded model it must be the model's device.
            path: If given, the index is saved there after indexing (must not hold an index).
            index_config: A ``late_interaction.IndexConfig``, or None for defaults.
            batch_size: Encoding batch size.
            **kwargs: Retriever fields (``k``, ``filter``, ``search_kwargs``, ``tags``, ...).
        """
        index = LateInteractionIndex(resolve_model(model, device=device), path, config=index_config)
        index.add(list(texts), ids=ids, metadatas=metadatas, batch_size=batch_size)
        if path is not None:
            index.save()
        return cls(index=index, **kwargs)

    @classmethod
    def from_documents(cls, documents: Sequence[Document], **kwargs: Any) -> ColBERTRetriever:
        """Like :meth:`from_texts`, taking ``page_content``, ``metadata`` and ``id`` (if set)."""
        texts, metadatas, ids = unpack(documents)
        return cls.from_texts(texts, metadatas, ids, **kwargs)

    @classmethod
    def load(
        cls, path: StrPath, model: Any = None, *, device: str | None = None, **kwargs: Any
    ) -> ColBERTRetriever:
        """Return a retriever over an index saved by :meth:`save` / ``LateInteractionIndex.save``.

        Args:
            path: The index folder.
            model: None rebuilds the recorded encoder; else it must match (ModelMismatchError).
            device: Device for a model loaded by name (or ``model=None``).
            **kwargs: Retriever fields (``k``, ``filter``, ``search_kwargs``, ...).
        """
        encoder = None if model is None else resolve_model(model, device=device)
        index = LateInteractionIndex.load(path, encoder, device=None if model else device)
        return cls(index=index, **kwargs)

    def save(self, path: StrPath | None = None) -> Path:
        """Save the index atomically to ``path`` (default: the index's own path); return it."""
        return self.index.save(path)

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Sequence[dict[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Encode and add texts (an existing id is replaced); return their ids."""
        return self.index.add(list(texts), ids=ids, metadatas=metadatas, **kwargs)

    def add_documents(self, documents: Sequence[Document], **kwargs: Any) -> list[str]:
        """Add documents, keeping ``Document.id`` where set; return their ids."""
        texts, metadatas, ids = unpack(documents)
        return self.index.add(texts, ids=ids, metadatas=metadatas, **kwargs)

    def delete(self, ids: Sequence[str]) -> None:
        """Delete documents by id (``KeyError`` for unknown ids, as the core)."""
        self.index.delete(ids)
