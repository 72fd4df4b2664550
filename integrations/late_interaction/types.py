"""Result types shared by the core and the adapters, and the :class:`Encoder` seam."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Encoder", "Explanation", "RerankResult", "SearchHit", "StoredDocument", "TokenMatch"]


@runtime_checkable
class Encoder(Protocol):
    """What an index and the rerankers need from an encoder (:class:`~late_interaction.ColBERT`).

    Any object with these members works (e.g. a fake encoder in tests, or a wrapper around a
    remote model), as long as equal fingerprints mean equal embeddings. Fusion with a dense
    cosine needs more (as ``ColBERT`` has): ``config.dense_weight`` > 0 and ``encode_*`` taking
    ``return_dense=True``; an encoder without them is scored by MaxSim alone.

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
class TokenMatch:
    """One query token's contribution to a MaxSim score: its best document token.

    Attributes:
        query_token: The query token (``[MASK]`` for a query expansion row).
        query_kind: ``"text"``, ``"special"`` (``[CLS]``/``[SEP]``), ``"marker"`` (``[Q]``) or
            ``"expansion"``.
        document_token: The document token it matched best.
        document_kind: That token's kind (as ``query_kind``, never ``"expansion"``).
        document_span: ``(start, end)`` character offsets of that token in the document text;
            None for special and marker tokens, which stand for no text.
        similarity: Their dot product (cosine for unit vectors): this row's share of the score.
    """

    query_token: str
    query_kind: str
    document_token: str
    document_kind: str
    document_span: tuple[int, int] | None
    similarity: float


@dataclass(frozen=True)
class Explanation:
    """Why a document scored what it did: the MaxSim, query token by query token.

    Attributes:
        score: MaxSim score (the sum of the matches' similarities).
        normalized_score: ``score`` divided by the number of query rows (MaxSim alone).
        matches: One :class:`TokenMatch` per query row, in query order.
        dense_score: Cosine of the query's and document's dense vectors when the encoder fuses
            it (``dense_weight`` > 0), else None.
        dense_weight: The encoder's ``dense_weight``; the hit's fused ``normalized_score`` is
            ``(normalized_score + dense_weight * dense_score) / (1 + dense_weight)``.
    """

    score: float
    normalized_score: float
    matches: list[TokenMatch]
    dense_score: float | None = None
    dense_weight: float = 0.0

    def highlights(self, min_similarity: float = 0.0) -> list[tuple[int, int, float]]:
        """Document spans matched by text query tokens, for highlighting evidence.

        Args:
            min_similarity: Leave out matches below this similarity.

        Returns:
            ``(start, end, similarity)`` per distinct span, the best similarity a span got,
            in text order. Special, marker and expansion query rows are left out (they match
            context, not a word the user typed).
        """
        best: dict[tuple[int, int], float] = {}
        for m in self.matches:
            if m.query_kind == "text" and m.document_span and m.similarity >= min_similarity:
                best[m.document_span] = max(best.get(m.document_span, m.similarity), m.similarity)
        return [(start, end, sim) for (start, end), sim in sorted(best.items())]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (what the adapters put in metadata)."""
        return {
            "score": self.score,
            "normalized_score": self.normalized_score,
            "dense_score": self.dense_score,
            "dense_weight": self.dense_weight,
            "matches": [
                {**vars(m), "document_span": list(m.document_span) if m.document_span else None}
                for m in self.matches
            ],
        }


@dataclass(frozen=True)
class RerankResult:
    """One reranked text.

    Attributes:
        position: Index of the text in the list given to ``rerank``.
        score: Exact MaxSim score (higher is better; grows with the query's token count).
        normalized_score: The relevance score results are ranked by, in [-1, 1] and comparable
            across queries (use it for thresholds). With the encoder's ``dense_weight`` w = 0:
            ``score`` divided by the number of query rows (the mean best cosine of a query
            token). With w > 0: ``(score / n_query_rows + w * dense_score) / (1 + w)``.
        explanation: The per-token breakdown, when asked for (``explain=True``).
        dense_score: Cosine of the query's and document's dense vectors, when fused (w > 0).
    """

    position: int
    score: float
    normalized_score: float
    explanation: Explanation | None = None
    dense_score: float | None = None


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
        score: Exact MaxSim score (higher is better; grows with the query's token count).
        normalized_score: The relevance score hits are ranked by, in [-1, 1] and comparable
            across queries (use it for thresholds). With the index's ``dense_weight`` w = 0:
            ``score`` divided by the number of query rows (the mean best cosine of a query
            token). With w > 0: ``(score / n_query_rows + w * dense_score) / (1 + w)``.
        rank: 0-based rank in the result list.
        text: Document text.
        metadata: Document metadata (a copy; mutating it does not change the index).
        explanation: The per-token breakdown, when asked for (``explain=True``).
        dense_score: Cosine of the query's and the document's dense vectors, when fused (w > 0).
    """

    id: str
    score: float
    normalized_score: float
    rank: int
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    explanation: Explanation | None = None
    dense_score: float | None = None
