"""The immutable view one search reads: a published prefix of the stores plus a live mask.

A writer builds a new :class:`Snapshot` and publishes it in one assignment, so a search never sees
a half-applied write. A :class:`View` adds the allowed-document mask of a ``filter``/``ids``
restriction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from late_interaction._index.codec import ResidualCodec
from late_interaction._index.document_store import DocumentStore
from late_interaction._index.hnsw import VoyagerTokenIndex
from late_interaction._index.ivf import InvertedLists
from late_interaction._index.token_store import TokenStore


@dataclass(frozen=True)
class Snapshot:
    """What one search reads; never mutated after publication.

    Attributes:
        tokens: Exact token store (prefix view). Shape: ``(n_tokens, dim)``.
        offsets: Slot offsets into ``tokens``. Shape: ``(n_slots + 1,)``.
        token_doc: Token row -> slot. Shape: ``(n_tokens,)``; empty for a compressed store,
            whose candidates come from inverted lists of slots.
        live: Live slots. Shape: ``(n_slots,)``.
        n_live: Number of live slots.
        n_live_tokens: Tokens of live slots.
        docs: Append-only slot data; only slots ``< n_slots`` are read.
        hnsw: The token graph (None before the first add, and for a compressed store).
        codec: The residual codec of a compressed store (None: exact store).
        codes: Centroid id of each token of a compressed store. Shape: ``(n_tokens,)``.
        ivf: Centroid -> slots inverted lists of a compressed store.
        source: The token store the arrays view (keys its device mirror; None when empty).
    """

    tokens: np.ndarray
    offsets: np.ndarray
    token_doc: np.ndarray
    live: np.ndarray
    n_live: int
    n_live_tokens: int
    docs: DocumentStore
    hnsw: VoyagerTokenIndex | None
    codec: ResidualCodec | None = None
    codes: np.ndarray | None = None
    ivf: InvertedLists | None = None
    source: TokenStore | None = None

    @classmethod
    def build(
        cls,
        store: TokenStore,
        docs: DocumentStore,
        live: np.ndarray,
        hnsw: VoyagerTokenIndex | None,
        ivf: InvertedLists | None = None,
    ) -> Snapshot:
        """Snapshot of the published prefix of ``store`` with the given live mask."""
        tokens, offsets, token_doc = store.views()
        n_live_tokens = int(np.diff(offsets)[live].sum())
        return cls(
            tokens, offsets, token_doc, live, int(live.sum()), n_live_tokens, docs, hnsw,
            store.codec, store.codes(), ivf, store,
        )  # fmt: skip

    @classmethod
    def empty(cls, docs: DocumentStore) -> Snapshot:
        """The snapshot of an index with no slots."""
        return cls(
            np.zeros((0, 0), np.float32), np.zeros(1, np.int64), np.zeros(0, np.int32),
            np.zeros(0, bool), 0, 0, docs, None,
        )  # fmt: skip


@dataclass(frozen=True)
class View:
    """A snapshot plus the allowed-slot mask of a ``filter``/``ids`` restriction (None: all)."""

    snap: Snapshot
    allowed: np.ndarray | None

    def mask(self) -> np.ndarray:
        """Allowed live slots as a boolean mask over slots."""
        return self.snap.live if self.allowed is None else self.allowed

    def allowed_tokens(self) -> int:
        """Tokens held by the allowed live slots."""
        if self.allowed is None:
            return self.snap.n_live_tokens
        return int(np.diff(self.snap.offsets)[self.allowed].sum())
