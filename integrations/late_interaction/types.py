"""Result types shared by the core and the adapters, and the :class:`Encoder` seam."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Encoder", "RerankResult", "SearchHit", "StoredDocument"]


@runtime_checkable
class Encoder(Protocol):
    """What an index and the rerankers need from an encoder (:class:`~late_interaction.ColBERT`).

    Any object with these members works (e.g. a fake encoder in tests, or a wrapper around a
    remote model), as long as equal fingerprints mean equal embeddings.

    Attributes:
        dim: Dimension of each token vector.
    """

    @property
    def dim(self) -> int:  # noqa: D102
        ...

    def encode_queries(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> list[np.ndarray]:
        """One ``(n_tokens, dim)`` float matrix per query, in input order."""
        ...

    def encode_documents(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> list[np.ndarray]:
        """One ``(n_tokens, dim)`` float matrix per document, in input order."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """JSON-serialisable identity: equal dicts mean equal embeddings (saved with an index)."""
        ...


@dataclass(frozen=True)
class RerankResult:
    """One reranked text.

    Attributes:
        position: Index of the text in the list given to ``rerank``.
        score: Exact MaxSim score (higher is better).
    """

    position: int
    score: float


@dataclass(frozen=True)
class StoredDocument:
    """A document as kept by :class:`~late_interaction.LateInteractionIndex`.

    Attributes:
        id: Caller-chosen (or generated) string id.
        text: The text that was encoded.
        metadata: JSON-serialisable metadata given at ``add`` time.
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchHit:
    """One search result.

    Attributes:
        id: Document id.
        score: Exact MaxSim score (higher is better).
        rank: 0-based rank in the result list.
        text: Document text.
        metadata: Document metadata (a copy; mutating it does not change the index).
    """

    id: str
    score: float
    rank: int
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
