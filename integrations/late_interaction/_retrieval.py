"""The read path of LateInteractionIndex: snapshots, restrictions, candidates, exact ranking.

Everything here works on an immutable :class:`Snapshot`, so a search never sees a half-applied
write. Two stages, as colbert-live: per-query-token ANN over the HNSW graph gives candidate
documents; exact MaxSim on the token store ranks them.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from late_interaction.config import IndexConfig
from late_interaction.exceptions import EmptyIndexError
from late_interaction.index import RecallError, VoyagerTokenIndex
from late_interaction.store import DocumentStore, TokenStore, score_slots
from late_interaction.types import SearchHit

__all__ = [
    "Filter",
    "Snapshot",
    "View",
    "filter_predicate",
    "make_view",
    "positive_int",
    "prepare_search",
    "rank",
    "search_snapshot",
]

logger = logging.getLogger(__name__)

Filter = Mapping[str, Any] | Callable[[dict[str, Any]], bool] | None
_MISSING = object()


@dataclass(frozen=True)
class Snapshot:
    """What one search reads; never mutated after publication.

    Attributes:
        tokens: Exact token store (prefix view). Shape: ``(n_tokens, dim)``.
        offsets: Slot offsets into ``tokens``. Shape: ``(n_slots + 1,)``.
        token_doc: Token row -> slot. Shape: ``(n_tokens,)``.
        live: Live slots. Shape: ``(n_slots,)``.
        n_live: Number of live slots.
        n_live_tokens: Tokens of live slots.
        docs: Append-only slot data; only slots ``< n_slots`` are read.
        hnsw: The token graph (None before the first add).
    """

    tokens: np.ndarray
    offsets: np.ndarray
    token_doc: np.ndarray
    live: np.ndarray
    n_live: int
    n_live_tokens: int
    docs: DocumentStore
    hnsw: VoyagerTokenIndex | None

    @classmethod
    def build(
        cls,
        store: TokenStore,
        docs: DocumentStore,
        live: np.ndarray,
        hnsw: VoyagerTokenIndex | None,
    ) -> Snapshot:
        """Snapshot of the published prefix of ``store`` with the given live mask."""
        tokens, offsets, token_doc = store.views()
        n_live_tokens = int(np.diff(offsets)[live].sum())
        return cls(tokens, offsets, token_doc, live, int(live.sum()), n_live_tokens, docs, hnsw)

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


def filter_predicate(filter: Filter) -> Callable[[dict[str, Any]], bool] | None:
    """Turn the public ``filter`` argument into a predicate on a metadata dict.

    Raises:
        TypeError: If ``filter`` is neither None, a mapping nor a callable.
    """
    if filter is None:
        return None
    if callable(filter):
        return lambda meta: bool(filter(dict(meta)))  # a copy: the predicate cannot edit the index
    if not isinstance(filter, Mapping):
        msg = (
            "filter must be None, a mapping {key: value or list of allowed values} or a callable "
            f"taking the metadata dict; got {type(filter).__name__}."
        )
        raise TypeError(msg)
    conditions = [
        (key, list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value])
        for key, value in filter.items()
    ]

    def predicate(meta: dict[str, Any]) -> bool:
        for key, allowed in conditions:
            value = meta.get(key, _MISSING)
            if value is _MISSING or not any(value == a for a in allowed):
                return False
        return True

    return predicate


def make_view(
    snap: Snapshot,
    slots: Sequence[int | None] | None,
    predicate: Callable[[dict[str, Any]], bool] | None,
) -> View:
    """Compute the allowed-slot mask for an ``ids`` restriction (``slots``) and a predicate."""
    if slots is None and predicate is None:
        return View(snap, None)
    allowed = snap.live.copy()
    if slots is not None:
        mask = np.zeros_like(allowed)
        mask[[s for s in slots if s is not None and s < mask.shape[0]]] = True
        allowed &= mask
    if predicate is not None:
        # Performance note: one Python call per allowed document; a batch evaluates it once.
        metadatas = snap.docs.metadatas
        for slot in np.flatnonzero(allowed).tolist():
            if not predicate(metadatas[slot]):
                allowed[slot] = False
    return View(snap, allowed)


def positive_int(value: Any, name: str, *, optional: bool = False) -> int | None:
    """Return ``value`` as an int if it is a positive integer (or None when ``optional``).

    Raises:
        ValueError: Otherwise, naming the argument.
    """
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        msg = f"{name} must be a positive integer{' or None' if optional else ''}; got {value!r}."
        raise ValueError(msg)
    return int(value)


def prepare_search(
    snap: Snapshot,
    slots: Sequence[int | None] | None,
    config: IndexConfig,
    k: Any,
    filter: Filter,
    query_ef: Any,
    k_token: Any,
) -> dict[str, Any]:
    """Validate search arguments and build the view: keyword arguments of ``search_snapshot``.

    Raises:
        ValueError: If ``k``, ``query_ef`` or ``k_token`` is not a positive integer.
        TypeError: If ``filter`` is of an unsupported type.
        EmptyIndexError: If the snapshot holds no live documents.
    """
    args = {
        "k": positive_int(k, "k"),
        "query_ef": positive_int(query_ef, "query_ef", optional=True),
        "k_token": positive_int(k_token, "k_token", optional=True),
        "config": config,
    }
    predicate = filter_predicate(filter)
    if snap.n_live == 0:
        msg = "the index holds no documents; add documents before searching."
        raise EmptyIndexError(msg)
    return {"view": make_view(snap, slots, predicate), **args}


def search_snapshot(
    view: View,
    queries: list[np.ndarray],
    k: int,
    config: IndexConfig,
    query_ef: int | None = None,
    k_token: int | None = None,
) -> list[list[SearchHit]]:
    """Per-token ANN -> candidate documents -> exact MaxSim top-k, for each query.

    Args:
        view: Snapshot and restriction.
        queries: float32 query matrices, each ``(n_query_tokens, dim)``.
        k: Results per query.
        config: Defaults for ``k_token``, ``query_ef`` and the exact-scan thresholds.
        query_ef: HNSW search breadth override.
        k_token: Neighbours per query token override.

    Returns:
        One best-first hit list per query.
    """
    snap = view.snap
    allowed = view.mask()
    n_allowed = int(allowed.sum())
    if n_allowed == 0:
        return [[] for _ in queries]
    if view.allowed is None:
        allowed_tokens = snap.n_live_tokens
    else:
        allowed_tokens = int(np.diff(snap.offsets)[view.allowed].sum())
    small = max(config.exact_scan_tokens, config.exact_scan_fraction * snap.n_live_tokens)
    if allowed_tokens <= small or snap.hnsw is None:
        return exact_rank_all(snap, queries, allowed, k)
    per_token = k_token if k_token is not None else max(config.k_token, 2 * k)
    if view.allowed is not None:
        # Over-fetch so that roughly as many allowed candidates come back as unfiltered.
        per_token = int(per_token * min(snap.n_live_tokens / allowed_tokens, 8.0))
    ef = max(query_ef if query_ef is not None else config.query_ef, per_token)
    try:
        neighbours, distances = snap.hnsw.query(np.concatenate(queries), per_token, ef)
    except RecallError:
        logger.warning(
            "the HNSW graph could not return %d live neighbours per token (deletions degrade "
            "it); answering with an exact scan. Call compact() to rebuild the graph.",
            per_token,
        )
        return exact_rank_all(snap, queries, allowed, k)
    n_full = max(config.n_full_scores, 4 * k)
    results, row = [], 0
    for q in queries:
        token_ids = neighbours[row : row + q.shape[0]]
        sims = 1.0 - distances[row : row + q.shape[0]]
        row += q.shape[0]
        slots = best_candidates(snap, allowed, token_ids, sims, n_full)
        if len(slots) < min(k, n_allowed):
            # Too few candidates (tight filter, small k_token): scan the allowed set exactly.
            slots = np.flatnonzero(allowed)
        results.append(rank(snap, q, slots, k))
    return results


def best_candidates(
    snap: Snapshot, allowed: np.ndarray, token_ids: np.ndarray, sims: np.ndarray, n_full: int
) -> np.ndarray:
    """Allowed documents hit by the ANN stage, cut to the ``n_full`` most promising.

    Args:
        snap: The snapshot searched.
        allowed: Boolean mask over document slots.
        token_ids: Neighbour token ids. Shape: ``(n_query_tokens, per_token)``.
        sims: Their similarities to the query token (1 - Voyager distance), same shape.
        n_full: How many documents exact MaxSim may score.

    Returns:
        Sorted slot ids.
    """
    rows = np.broadcast_to(np.arange(token_ids.shape[0])[:, None], token_ids.shape).ravel()
    token_ids, sims = token_ids.ravel(), sims.ravel()
    # Ids past the snapshot belong to a concurrent add that is not published yet.
    published = token_ids < snap.token_doc.shape[0]
    docs = snap.token_doc[token_ids[published]]
    rows, sims = rows[published], sims[published]
    keep = allowed[docs]
    docs, rows, sims = docs[keep], rows[keep], sims[keep]
    slots, doc_index = np.unique(docs, return_inverse=True)
    if len(slots) <= n_full:
        return slots
    # Performance note: the approximate score is each query token's best ANN hit within the
    # document (a lower bound of its exact max), summed; exact MaxSim then scores only the
    # n_full most promising documents instead of every document any token touched.
    pair = rows.astype(np.int64) * len(slots) + doc_index
    order = np.lexsort((-sims, pair))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pair[order][1:] != pair[order][:-1]
    approx = np.bincount(doc_index[order][first], weights=sims[order][first], minlength=len(slots))
    best = np.argpartition(-approx, n_full - 1)[:n_full]
    return np.sort(slots[best])


def exact_rank_all(
    snap: Snapshot, queries: list[np.ndarray], allowed: np.ndarray, k: int
) -> list[list[SearchHit]]:
    """Exact MaxSim over every allowed slot, for each query."""
    slots = np.flatnonzero(allowed)
    return [rank(snap, q, slots, k) for q in queries]


def rank(snap: Snapshot, query: np.ndarray, slots: np.ndarray, k: int) -> list[SearchHit]:
    """Score ``slots`` exactly and return the top ``k`` (ties broken by storage order)."""
    scores = score_slots(query, snap.tokens, snap.offsets, slots)
    if len(slots) > 4 * k:
        top = np.argpartition(-scores, k)[: k + 1]
        scores, slots = scores[top], slots[top]
    order = np.lexsort((slots, -scores))[:k].tolist()
    docs = snap.docs
    return [
        SearchHit(
            id=docs.ids[slots[i]],  # type: ignore[arg-type]
            score=float(scores[i]),
            rank=position,
            text=docs.texts[slots[i]],
            metadata=copy.deepcopy(docs.metadatas[slots[i]]),
        )
        for position, i in enumerate(order)
    ]
