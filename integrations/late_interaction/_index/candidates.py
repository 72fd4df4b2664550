"""Stage one of a search: candidate documents from per-query-token HNSW neighbours.

Every query token fetches its nearest document tokens from the Voyager graph; the documents they
belong to are candidates, cut to the ``n_full_scores`` most promising before exact MaxSim
(colbert-live's and PLAID's two stages).
"""

from __future__ import annotations

import logging

import numpy as np

from late_interaction._index.hnsw import RecallError
from late_interaction._index.snapshot import View

logger = logging.getLogger(__name__)


def ann_candidates(
    view: View, queries: list[np.ndarray], per_token: int, query_ef: int, n_full: int
) -> list[np.ndarray] | None:
    """Candidate slots for each query, or None when the graph cannot answer.

    Args:
        view: Snapshot and restriction (its graph must exist).
        queries: float32 query matrices, each ``(n_query_tokens, dim)``.
        per_token: Neighbours fetched per query token (before the restriction's over-fetch).
        query_ef: HNSW search breadth.
        n_full: How many documents exact MaxSim may score per query.

    Returns:
        One sorted slot array per query; None if Voyager raised ``RecallError`` (a graph
        degraded by deletions), logged with the fix (``compact()``).
    """
    snap, allowed = view.snap, view.mask()
    if view.allowed is not None:
        # Over-fetch so that roughly as many allowed candidates come back as unfiltered.
        per_token = int(per_token * min(snap.n_live_tokens / view.allowed_tokens(), 8.0))
    ef = max(query_ef, per_token)
    try:
        neighbours, distances = snap.hnsw.query(np.concatenate(queries), per_token, ef)  # type: ignore[union-attr]
    except RecallError:
        logger.warning(
            "the HNSW graph could not return %d live neighbours per token (deletions degrade "
            "it); answering with an exact scan. Call compact() to rebuild the graph.",
            per_token,
        )
        return None
    out, row = [], 0
    for q in queries:
        token_ids = neighbours[row : row + q.shape[0]]
        sims = 1.0 - distances[row : row + q.shape[0]]
        row += q.shape[0]
        out.append(best_candidates(snap.token_doc, allowed, token_ids, sims, n_full))
    return out


def best_candidates(
    token_doc: np.ndarray,
    allowed: np.ndarray,
    token_ids: np.ndarray,
    sims: np.ndarray,
    n_full: int,
) -> np.ndarray:
    """Allowed documents hit by the ANN stage, cut to the ``n_full`` most promising.

    Args:
        token_doc: Token row -> document slot of the snapshot searched.
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
    published = token_ids < token_doc.shape[0]
    docs = token_doc[token_ids[published]]
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
