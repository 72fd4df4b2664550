"""SearchableIndex: what the adapters need from an index, whichever backend keeps it.

:class:`~late_interaction.LateInteractionIndex` (in process, Voyager + exact MaxSim) and
:class:`~late_interaction.QdrantIndex` (a Qdrant collection, MaxSim server-side) both satisfy it,
so the LlamaIndex and LangChain retrievers take either without knowing which.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from late_interaction.types import Encoder, SearchHit, StoredDocument

__all__ = ["SearchableIndex"]


@runtime_checkable
class SearchableIndex(Protocol):
    """The shared contract of the late-interaction index backends.

    ``filter`` arguments take the core filter language (a ``{key: value}`` mapping); each
    backend documents what else it accepts (the in-process index: a Python callable; Qdrant: a
    ``qdrant_client.models.Filter``). ``save`` persists where the backend persists (a folder,
    or nothing to do for a Qdrant collection, which raises ``TypeError`` saying so).

    Attributes:
        model: The encoder that embeds texts and queries.
        dim: Token vector dimension.
    """

    model: Encoder

    @property
    def dim(self) -> int:  # noqa: D102
        ...

    @property
    def ids(self) -> list[str]:
        """Ids of the stored documents."""
        ...

    def __len__(self) -> int: ...

    def __contains__(self, doc_id: object) -> bool: ...

    def get(self, ids: str | Iterable[str]) -> list[StoredDocument]:
        """Stored documents by id, in the order asked (``KeyError`` for unknown ids)."""
        ...

    def add(
        self,
        texts: str | Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> list[str]:
        """Encode and upsert documents; return their ids."""
        ...

    def add_embeddings(
        self,
        embeddings: Sequence[Any],
        texts: str | Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Upsert documents with precomputed token matrices; return their ids."""
        ...

    def delete(self, ids: str | Iterable[str]) -> None:
        """Delete documents by id (``KeyError`` for unknown ids; nothing deleted then)."""
        ...

    def save(self, path: str | Path | None = None, *, extra_files: Any = None) -> Path:
        """Persist the index where the backend persists."""
        ...

    def search(
        self,
        query: str | np.ndarray,
        k: int = 10,
        *,
        filter: Any = None,
        ids: Iterable[str] | None = None,
        exact: bool = False,
        query_ef: int | None = None,
        k_token: int | None = None,
        explain: bool = False,
    ) -> list[SearchHit]:
        """The ``k`` best documents by MaxSim, best first."""
        ...

    def search_batch(
        self,
        queries: Sequence[str | np.ndarray],
        k: int = 10,
        *,
        filter: Any = None,
        ids: Iterable[str] | None = None,
        exact: bool = False,
        query_ef: int | None = None,
        k_token: int | None = None,
        explain: bool = False,
        batch_size: int = 32,
    ) -> list[list[SearchHit]]:
        """:meth:`search` for many queries."""
        ...
