"""LangChain ``VectorStore`` over a ``LateInteractionIndex`` or a ``QdrantIndex``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever
from typing_extensions import Self

from langchain_late_interaction._common import (
    CORE_SEARCH_KWARGS,
    Filter,
    StrPath,
    as_documents,
    check_search_kwargs,
)
from late_interaction import IndexConfig, LateInteractionIndex, SearchableIndex, resolve_model
from late_interaction._encoding.resolve import open_index
from late_interaction._validation import as_list, as_texts

__all__ = ["ColBERTVectorStore"]


class ColBERTVectorStore(VectorStore):
    """A LangChain vector store whose documents are ColBERT token matrices, searched by MaxSim.

    Documents keep their ``id`` and metadata; scores are ``SearchHit.normalized_score``, in
    [-1, 1]: the mean over query tokens of the best cosine with a document token, fused with the
    dense cosine when the index's ``dense_weight`` w > 0 (the embedded default's 0.25:
    ``(MaxSim / query tokens + w * dense) / (1 + w)``; ``ColBERTRetriever`` also reports the
    parts in metadata);
    ``similarity_search_with_relevance_scores`` maps them to [0, 1] as ``(score + 1) / 2``. It
    works with LangChain's indexing API (``langchain_core.indexing.index``) and ``as_retriever``.
    MMR and search by a single vector are not supported (a ColBERT document is many vectors).

    Setup:
        .. code-block:: bash

            pip install ".[langchain]"  # in a clone; see the README's Install section

    Instantiate:
        .. code-block:: python

            from langchain_late_interaction import ColBERTVectorStore

            store = ColBERTVectorStore(model="answerdotai/answerai-colbert-small-v1")  # or None
            store.add_documents(docs)  # ids kept; an existing id is replaced
            store.similarity_search_with_relevance_scores("token matching", k=3)
            retriever = store.as_retriever(search_kwargs={"k": 5, "filter": {"topic": "search"}})

    Args:
        index: An existing index to wrap (shared, not copied): a ``LateInteractionIndex``, or a
            ``QdrantIndex`` (documents and filters then live in a Qdrant collection); None
            builds an empty in-process one.
        model: For a new index: a checkpoint name or path, a loaded ``ColBERT`` or None (the
            embedded offline default).
        device: Device for a model loaded by name.
        index_config: For a new index: ``late_interaction.IndexConfig`` (None: defaults).

    Raises:
        ValueError: If ``model``, ``device`` or ``index_config`` come with an ``index``.
    """

    def __init__(
        self,
        index: SearchableIndex | None = None,
        *,
        model: Any = None,
        device: str | None = None,
        index_config: IndexConfig | None = None,
    ) -> None:
        if index is None:
            index = LateInteractionIndex(resolve_model(model, device=device), config=index_config)
        elif model is not None or device is not None or index_config is not None:
            msg = "pass either an index or model/device/index_config for a new one, not both."
            raise ValueError(msg)
        self.index = index

    @property
    def embeddings(self) -> Embeddings | None:
        """None: documents are encoded by the index's ColBERT model, not an ``Embeddings``."""
        return None

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        batch_size: int = 32,
        show_progress: bool | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Encode and add texts (a bare string is one text); an existing id is replaced.

        Args:
            texts: Texts to add.
            metadatas: One JSON-serialisable dict per text, or None.
            ids: One id per text; None (or a None entry) generates a uuid4.
            batch_size: Encoding batch size.
            show_progress: Show an encoding progress bar (None: from 1000 texts on).
            **kwargs: Not accepted (named in the error).

        Returns:
            The ids, in input order.
        """
        if kwargs:
            msg = f"unexpected argument(s) {sorted(kwargs)}; add_texts takes metadatas and ids."
            raise TypeError(msg)
        texts = as_texts(texts, "texts")  # a bare str is one text
        if ids is not None:
            ids = [str(uuid.uuid4()) if i is None else i for i in as_list(ids, "ids")]
        kw = {"batch_size": batch_size, "show_progress_bar": show_progress}
        return self.index.add(texts, ids=ids, metadatas=metadatas, **kw)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete documents by id (ids not in the store are ignored); None deletes everything.

        Returns:
            True.
        """
        if kwargs:
            msg = f"unexpected argument(s) {sorted(kwargs)}; delete takes ids."
            raise TypeError(msg)
        wanted = (
            self.index.ids if ids is None else [i for i in as_texts(ids, "ids") if i in self.index]
        )
        if wanted:
            self.index.delete(wanted)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids (missing ids are skipped), in the order asked."""
        found = [i for i in dict.fromkeys(as_texts(ids, "ids")) if i in self.index]
        return [
            Document(id=d.id, page_content=d.text, metadata=d.metadata)
            for d in self.index.get(found)
        ]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The ``k`` best documents with their normalised MaxSim scores, best first.

        Args:
            query: Query text.
            k: Number of documents.
            filter: Metadata filter: ``{key: value}`` (a list value means "any of"), the
                operators of LangChain's vector stores (``{"year": {"$gte": 2020}}``, ``$in``,
                ``$nin``, ``$and``, ``$or``, ``$not``...; an unknown one raises) or a predicate
                on the metadata dict.
            **kwargs: ``query_ef``, ``k_token``, ``ids`` or ``exact`` for the core search.

        Returns:
            ``(Document, score)`` pairs; ``[]`` when the store is empty.
        """
        if len(self.index) == 0:
            return []
        check_search_kwargs(kwargs, CORE_SEARCH_KWARGS, "ColBERTVectorStore")
        hits = self.index.search(query, k, filter=filter, **kwargs)
        return [
            (Document(id=h.id, page_content=h.text, metadata=h.metadata), h.normalized_score)
            for h in hits
        ]

    def similarity_search(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` best documents (arguments as :meth:`similarity_search_with_score`)."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # Normalised MaxSim is a mean of cosines, in [-1, 1]: map it linearly onto [0, 1].
        return lambda score: (score + 1.0) / 2.0

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        """Not supported: a ColBERT query is a matrix of token vectors, not one vector.

        Raises:
            NotImplementedError: Always; search with text, or ``store.index.search(matrix)``.
        """
        msg = (
            "ColBERTVectorStore searches with a query's token matrix, not one vector: use "
            "similarity_search(text), or store.index.search(matrix) for a precomputed matrix."
        )
        raise NotImplementedError(msg)

    def max_marginal_relevance_search(self, query: str, *args: Any, **kwargs: Any) -> Any:
        """Not supported: MMR needs one vector per document to compare documents.

        Raises:
            NotImplementedError: Always; use similarity search.
        """
        msg = "ColBERTVectorStore does not support MMR (documents are token matrices)."
        raise NotImplementedError(msg)

    def as_retriever(self, **kwargs: Any) -> VectorStoreRetriever:
        """A ``VectorStoreRetriever`` (``search_type`` similarity or similarity_score_threshold).

        Args:
            **kwargs: ``search_type``, ``search_kwargs`` (as :meth:`similarity_search`), tags.

        Raises:
            ValueError: For ``search_type="mmr"``, which this store cannot serve.
        """
        if kwargs.get("search_type") == "mmr":
            msg = (
                "search_type='mmr' is not supported (documents are token matrices); use "
                "'similarity' or 'similarity_score_threshold'."
            )
            raise ValueError(msg)
        return super().as_retriever(**kwargs)

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        model: Any = None,
        device: str | None = None,
        index_config: IndexConfig | None = None,
        **kwargs: Any,
    ) -> Self:
        """A new store holding ``texts``.

        Args:
            texts: Texts to add (a bare string is one text).
            embedding: Must be None: the ColBERT ``model`` encodes (kept for the interface).
            metadatas: One dict per text, or None.
            ids: One id per text, or None.
            model: Checkpoint name or path, a loaded ``ColBERT``, or None (embedded default).
            device: Device for a model loaded by name.
            index_config: ``late_interaction.IndexConfig`` of the new index.
            **kwargs: ``batch_size`` and ``show_progress`` for encoding.

        Raises:
            TypeError: If an ``Embeddings`` object is given.
        """
        if embedding is not None:
            msg = (
                f"ColBERTVectorStore encodes with its ColBERT model (model=...), not an "
                f"Embeddings object; got {type(embedding).__name__}. Pass embedding=None."
            )
            raise TypeError(msg)
        store = cls(model=model, device=device, index_config=index_config)
        store.add_texts(texts, metadatas, ids=ids, **kwargs)
        return store

    @classmethod
    def from_documents(
        cls, documents: list[Document], embedding: Embeddings | None = None, **kwargs: Any
    ) -> Self:
        """A new store holding ``documents`` (ids kept); arguments as :meth:`from_texts`."""
        documents = as_documents(documents, "documents")
        return super().from_documents(documents, embedding, **kwargs)  # type: ignore[arg-type]

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Add documents (one Document counts as one; ids kept); return their ids.

        Args:
            documents: LangChain ``Document`` objects, or one of them.
            **kwargs: As :meth:`add_texts` (``ids`` overrides the documents' ids).

        Raises:
            TypeError: For anything but Documents (e.g. a LlamaIndex node), with the conversion.
        """
        return super().add_documents(as_documents(documents, "documents"), **kwargs)

    def save(self, path: StrPath) -> Path:
        """Save the index atomically to ``path``; :meth:`load` reopens it."""
        return self.index.save(path)

    @classmethod
    def load(
        cls,
        path: StrPath,
        model: Any = None,
        *,
        device: str | None = None,
        trust_remote_model: bool = False,
        verify: bool = True,
    ) -> Self:
        """Reopen a store saved by :meth:`save`.

        Args:
            path: The folder given to :meth:`save`.
            model: None rebuilds the recorded encoder; else it must match (ModelMismatchError).
            device: Device for a model loaded by name (or ``model=None``).
            trust_remote_model: With ``model=None``, allow rebuilding an encoder the folder
                names by Hub id (a folder from elsewhere could name any repository).
            verify: Also hash the memory-mapped token arrays; False skips only those.
        """
        return cls(
            open_index(
                path, model, device=device, trust_remote_model=trust_remote_model, verify=verify
            )
        )
