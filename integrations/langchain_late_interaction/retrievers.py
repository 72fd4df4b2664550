"""LangChain retriever over a late-interaction index (in process, or in a Qdrant collection)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_config_list
from pydantic import ConfigDict, Field, model_validator
from typing_extensions import Self

from langchain_late_interaction._common import (
    SETTINGS_FILE,
    CheckedFilter,
    SearchKwargs,
    SearchType,
    StrPath,
    as_documents,
    check_search_kwargs,
    check_threshold,
    lift_search_kwargs,
    positive,
    read_settings,
    score_metadata,
    settings_of,
    unpack,
)
from late_interaction import IndexConfig, LateInteractionIndex, SearchableIndex, resolve_model
from late_interaction._encoding.resolve import open_index
from late_interaction._validation import as_texts

__all__ = ["ColBERTRetriever"]

# The hits of one query of a batch, found by one ``search_batch`` before each query's invoke
# runs (so callbacks and tracing still see one retriever run per query).
_PREFETCHED: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "late_interaction_prefetched", default=None
)


class ColBERTRetriever(BaseRetriever):
    """ColBERT late-interaction retriever backed by a ``LateInteractionIndex`` or ``QdrantIndex``.

    Per-token HNSW candidates, ranked by exact MaxSim (fused with the dense cosine when the
    index's ``dense_weight`` > 0, as with the embedded default). Returned ``Document`` objects
    carry the stored ``id``, text and metadata plus the normalised score (in [-1, 1], comparable
    across queries: ``SearchHit.normalized_score``) in ``metadata["relevance_score"]``, the raw
    MaxSim in ``metadata["maxsim_score"]`` and, when fused, the dense cosine in
    ``metadata["dense_score"]`` (as ``ColBERTReranker``; they override stored keys of those
    names in the returned copy). ``explain=True`` adds ``metadata["explanation"]``.

    Setup:
        .. code-block:: bash

            pip install ".[langchain]"  # in a clone; see the README's Install section

    Key init args:
        index: LateInteractionIndex | QdrantIndex
            The index to search (built or loaded with the core, or by ``from_texts``); any
            ``late_interaction.SearchableIndex``. With a ``QdrantIndex`` filters run inside
            Qdrant (dicts, not callables) and persistence is the collection's own.
        k: int
            Number of documents to return (default 4); ``invoke(query, k=...)`` overrides it.
        filter: dict | Callable[[dict], bool] | None
            Metadata filter: ``{key: value}`` (a list value means "any of"), the operators of
            LangChain's vector stores (``{"year": {"$gte": 2020}}``, ``$in``, ``$and``, ``$or``,
            ``$not``...; an unknown one raises) or a predicate.
        search_type: str
            ``"similarity"`` (default) or ``"similarity_score_threshold"`` (keep hits whose
            ``relevance_score`` is at least ``search_kwargs["score_threshold"]``), as
            ``VectorStoreRetriever``.
        search_kwargs: dict
            As ``VectorStoreRetriever``'s: ``k``, ``filter``, ``score_threshold``, plus the core's
            ``query_ef``, ``k_token``, ``ids``, ``exact`` and ``explain``
            (``LateInteractionIndex.search``).

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

    Use within a chain (``prompt``, ``llm`` and ``format_docs`` as usual):
        .. code-block:: python

            chain = (
                {"context": retriever | format_docs, "question": RunnablePassthrough()}
                | prompt
                | llm
                | StrOutputParser()
            )
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    index: SearchableIndex
    """The index to search (shared, not copied): a ``late_interaction.LateInteractionIndex``
    or ``QdrantIndex``."""

    k: Annotated[int, positive("k")] = 4
    """Number of documents to return; ``invoke(query, k=...)`` overrides it per call."""

    filter: CheckedFilter = None
    """Default metadata filter (the core's: ``{key: value}``, LangChain's ``$gt``/``$in``/``$and``
    operators, or a callable); ``invoke(query, filter=...)`` replaces it."""

    search_type: SearchType = "similarity"
    """``"similarity"`` or ``"similarity_score_threshold"`` (needs ``score_threshold``)."""

    search_kwargs: SearchKwargs = Field(default_factory=dict)
    """``k``, ``filter``, ``score_threshold``, the core's ``query_ef``, ``k_token``, ``ids``,
    ``exact`` and ``explain``."""

    _lift = model_validator(mode="before")(classmethod(lift_search_kwargs))

    @model_validator(mode="after")
    def _check_threshold(self) -> Self:
        check_threshold(self.search_type, self.search_kwargs)
        return self

    def _options(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
        given = {key: value for key, value in kwargs.items() if value is not None}
        opts = {"k": self.k, "filter": self.filter, **self.search_kwargs, **given}
        threshold = check_search_kwargs(opts).pop("score_threshold", None)
        return opts, threshold

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        opts, threshold = self._options(kwargs)
        if len(self.index) == 0:  # a retriever over nothing finds nothing, as vector stores do
            return []
        prefetched = _PREFETCHED.get()
        hits = prefetched if prefetched is not None else self.index.search(query, **opts)
        if self.search_type == "similarity_score_threshold":  # on relevance_score, as documented
            hits = [h for h in hits if h.normalized_score >= threshold]
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

    def _search_all(self, inputs: list[Any], kwargs: dict[str, Any]) -> list[list[Any]] | None:
        """Hits for every query with one ``search_batch`` (None: not a batch of query texts)."""
        if not inputs or not all(isinstance(q, str) for q in inputs) or len(self.index) == 0:
            return None
        opts, _ = self._options(kwargs)
        return self.index.search_batch(inputs, **opts)

    def batch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Retrieve for many queries with one ``LateInteractionIndex.search_batch``.

        The queries are encoded in one pass and scored together (on a GPU, one device pass for
        the batch); each query still gets its own retriever run for callbacks and tracing.

        Args:
            inputs: Query texts.
            config: One ``RunnableConfig`` for all, or one per query.
            return_exceptions: Return an exception in place of a failed query's result.
            **kwargs: Search options for every query, as for ``invoke``.

        Returns:
            One document list per query, in input order.
        """
        try:
            found = self._search_all(list(inputs), kwargs)
        except Exception:  # a bad option: let each query's own run report it (callbacks too)
            found = None
        if found is None:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        outputs: list[Any] = []
        for query, hits, cfg in zip(
            inputs, found, get_config_list(config, len(inputs)), strict=True
        ):
            token = _PREFETCHED.set(hits)
            try:
                outputs.append(self.invoke(query, cfg, **kwargs))
            except Exception as exc:
                if not return_exceptions:
                    raise
                outputs.append(exc)
            finally:
                _PREFETCHED.reset(token)
        return outputs

    async def abatch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Async :meth:`batch`: one ``search_batch`` in a worker thread, then one run per query."""
        try:
            found = await asyncio.to_thread(self._search_all, list(inputs), kwargs)
        except Exception:  # a bad option: let each query's own run report it
            found = None
        if found is None:
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
        tasks = []
        for query, hits, cfg in zip(
            inputs, found, get_config_list(config, len(inputs)), strict=True
        ):
            token = _PREFETCHED.set(hits)  # each task keeps a copy of the context made here
            tasks.append(asyncio.ensure_future(self.ainvoke(query, cfg, **kwargs)))
            _PREFETCHED.reset(token)
        return list(await asyncio.gather(*tasks, return_exceptions=return_exceptions))

    @classmethod
    def from_texts(
        cls,
        texts: str | Iterable[str],
        metadatas: Sequence[dict[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
        *,
        model: Any = None,
        device: str | None = None,
        path: StrPath | None = None,
        index_config: IndexConfig | None = None,
        batch_size: int = 32,
        show_progress: bool | None = None,
        **kwargs: Any,
    ) -> ColBERTRetriever:
        """Encode ``texts`` into a new index; return a retriever over it.

        Args:
            texts: Passages to index (a bare string is one passage).
            metadatas: One JSON-serialisable dict per text, or None.
            ids: One id per text, or None to generate them.
            model: A loaded ``late_interaction.ColBERT``, a checkpoint name or path, or None
                (the embedded offline default).
            device: Device for a model loaded by name (``"cpu"``, ``"cuda"``...; None: the
                core's choice); with a loaded model it must be the model's device.
            path: If given, the retriever is saved there after indexing (must not hold an index).
            index_config: A ``late_interaction.IndexConfig``, or None for defaults.
            batch_size: Encoding batch size.
            show_progress: Show an encoding progress bar (None: from 1000 texts on).
            **kwargs: Retriever fields (``k``, ``filter``, ``search_kwargs``, ``tags``, ...).
        """
        index = LateInteractionIndex(resolve_model(model, device=device), path, config=index_config)
        retriever = cls(index=index, **kwargs)  # settings checked before the slow part
        kw = {"batch_size": batch_size, "show_progress_bar": show_progress}
        index.add(as_texts(texts, "texts"), ids=ids, metadatas=metadatas, **kw)
        if path is not None:
            retriever.save()
        return retriever

    @classmethod
    def from_documents(cls, documents: Sequence[Document], **kwargs: Any) -> ColBERTRetriever:
        """Like :meth:`from_texts`, taking ``page_content``, ``metadata`` and ``id`` (if set)."""
        texts, metadatas, ids = unpack(as_documents(documents, "documents"))
        return cls.from_texts(texts, metadatas, ids, **kwargs)

    @classmethod
    def load(
        cls,
        path: StrPath,
        model: Any = None,
        *,
        device: str | None = None,
        trust_remote_model: bool = False,
        verify: bool = True,
        **kwargs: Any,
    ) -> ColBERTRetriever:
        """Return the retriever :meth:`save` wrote (or one over an index the core saved).

        Args:
            path: The index folder.
            model: None rebuilds the recorded encoder; else it must match (ModelMismatchError).
            device: Device for a model loaded by name (or ``model=None``).
            trust_remote_model: With ``model=None``, allow rebuilding an encoder the folder
                names by Hub id (a folder from elsewhere could name any repository).
            verify: Also hash the memory-mapped token arrays; False skips only those.
            **kwargs: Retriever fields overriding the saved ``k``, ``filter``, ``search_type``
                and ``search_kwargs``.
        """
        index = open_index(
            path, model, device=device, trust_remote_model=trust_remote_model, verify=verify
        )
        return cls(index=index, **read_settings(path, kwargs))

    def save(self, path: StrPath | None = None) -> Path:
        """Save the index and the settings (``k``, ``filter``, search options) atomically.

        Args:
            path: Target folder (default: the index's own path).

        Returns:
            The folder.

        Raises:
            TypeError: If the filter is a callable (code cannot be saved).
        """
        settings = settings_of(self.k, self.filter, self.search_type, self.search_kwargs)
        return self.index.save(path, extra_files={SETTINGS_FILE: settings})

    def add_texts(
        self,
        texts: str | Iterable[str],
        metadatas: Sequence[dict[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Encode and add texts (a bare string is one; an existing id is replaced); return ids."""
        return self.index.add(as_texts(texts, "texts"), ids=ids, metadatas=metadatas, **kwargs)

    def add_documents(self, documents: Sequence[Document], **kwargs: Any) -> list[str]:
        """Add documents, keeping ``Document.id`` where set; return their ids."""
        texts, metadatas, ids = unpack(as_documents(documents, "documents"))
        return self.index.add(texts, ids=ids, metadatas=metadatas, **kwargs)

    def delete(self, ids: str | Sequence[str]) -> None:
        """Delete documents by id (``KeyError`` for unknown ids, as the core)."""
        self.index.delete(ids)
