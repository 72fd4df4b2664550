"""Small result types shared by the core and the adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RerankResult", "SearchHit", "StoredDocument"]


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
