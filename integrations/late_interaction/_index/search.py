"""The read path of LateInteractionIndex: a typed request, candidates, exact ranking.

Everything here works on an immutable :class:`~late_interaction._index.snapshot.View`, so a search
never sees a half-applied write. Small restrictions and ``exact=True`` are answered by exact
MaxSim over every allowed document; otherwise candidates are scored: token-HNSW neighbours
(``candidates.py``) for the exact store, centroid probes (``centroid_candidates.py``) for a
compressed one, whose rows are decoded as they are scored.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from late_interaction._index.candidates import ann_candidates
from late_interaction._index.centroid_candidates import centroid_candidates, default_budgets
from late_interaction._index.snapshot import Snapshot, View
from late_interaction._validation import positive_int
from late_interaction.config import IndexConfig
from late_interaction.fusion import fused_scores
from late_interaction.scoring import score_slots
from late_interaction.types import SearchHit

# (dense_weight, the query's dense vector or None): how a query's ranking score is made.
Fusion = tuple[float, "np.ndarray | None"]

if TYPE_CHECKING:  # pragma: no cover  # torch loads only for a search on a device
    from late_interaction._index.device_search import SearchDevice
    from late_interaction._index.device_store import DeviceMirror


@dataclass(frozen=True)
class SearchRequest:
    """The validated options of one ``search``/``search_batch`` call.

    Attributes:
        k: Results per query.
        exact: Brute-force exact MaxSim over every allowed document (no ANN stage).
        query_ef: HNSW search breadth override (None: ``IndexConfig.query_ef``).
        k_token: Neighbours per query token override (None: ``max(IndexConfig.k_token, 2k)``).
    """

    k: int
    exact: bool = False
    query_ef: int | None = None
    k_token: int | None = None

    @classmethod
    def validated(
        cls, k: object, exact: object, query_ef: object, k_token: object
    ) -> SearchRequest:
        """Check the public arguments.

        Raises:
            ValueError: If ``k``, ``query_ef`` or ``k_token`` is not a positive integer, or
                ``query_ef``/``k_token`` (ANN settings) come with ``exact=True``.
            TypeError: If ``exact`` is not a bool.
        """
        if not isinstance(exact, (bool, np.bool_)):
            msg = f"exact must be True or False; got {exact!r}."
            raise TypeError(msg)
        request = cls(
            k=positive_int(k, "k"),  # type: ignore[arg-type]
            exact=bool(exact),
            query_ef=positive_int(query_ef, "query_ef", optional=True),
            k_token=positive_int(k_token, "k_token", optional=True),
        )
        if request.exact and (request.query_ef is not None or request.k_token is not None):
            msg = (
                "query_ef and k_token tune the ANN stage, which exact=True skips; drop them or "
                "search with exact=False."
            )
            raise ValueError(msg)
        return request


def run_search(
    view: View,
    queries: list[np.ndarray],
    request: SearchRequest,
    config: IndexConfig,
    device: SearchDevice | None = None,
    dense_weight: float = 0.0,
    query_dense: list[np.ndarray] | None = None,
) -> list[list[SearchHit]]:
    """Answer ``request`` for each query: ANN candidates then exact MaxSim, or an exact scan.

    Args:
        view: Snapshot and restriction.
        queries: float32 query matrices, each ``(n_query_tokens, dim)``.
        request: Validated options.
        config: Defaults for ``k_token``, ``query_ef``, ``n_full_scores`` and the exact-scan
            thresholds.
        device: Score on this device (its mirror of the store); None or CPU: numpy.
        dense_weight: Weight of the dense cosine in the ranking score (0: MaxSim alone).
        query_dense: One dense vector per query when ``dense_weight`` > 0 (the snapshot's
            documents then have theirs).

    Returns:
        One best-first hit list per query.
    """
    snap, allowed, k = view.snap, view.mask(), request.k
    n_allowed = int(allowed.sum())
    if n_allowed == 0:
        return [[] for _ in queries]
    small = max(config.exact_scan_tokens, config.exact_scan_fraction * snap.n_live_tokens)
    everything = np.flatnonzero(allowed)
    if snap.ivf is not None and (request.query_ef is not None or request.k_token is not None):
        msg = (
            "query_ef and k_token tune the token HNSW, which a compressed index (nbits) does "
            "not have; its candidates are set by IndexConfig.n_probe and n_full_scores."
        )
        raise ValueError(msg)
    searchable = snap.hnsw is not None or snap.ivf is not None
    fusion: list[Fusion] = (
        [(dense_weight, v) for v in query_dense] if query_dense else [(0.0, None)] * len(queries)
    )
    mirror = None
    if device is not None:
        from late_interaction._index.device_search import mirror_of

        mirror = mirror_of(snap, device)
    if request.exact or not searchable or view.allowed_tokens() <= small:
        return _exact(view, queries, k, mirror, fusion)
    if snap.ivf is not None:
        # Budgets left None in the config grow with the index (explicit settings are kept).
        n_probe, n_full = default_budgets(config.n_probe, config.n_full_scores, snap.n_live, k)
        candidates: list[np.ndarray] | None = centroid_candidates(view, queries, n_probe, n_full)
    else:
        n_full = max(config.n_full_scores, 4 * k)  # type: ignore[type-var]  # resolved to an int
        per_token = request.k_token if request.k_token is not None else max(config.k_token, 2 * k)
        query_ef = request.query_ef if request.query_ef is not None else config.query_ef
        candidates = ann_candidates(view, queries, per_token, query_ef, n_full)
    if candidates is None:
        return _exact(view, queries, k, mirror, fusion)
    results = []
    for q, slots, f in zip(queries, candidates, fusion, strict=True):
        if len(slots) < min(k, n_allowed):
            # Too few candidates (tight filter, small k_token): scan the allowed set exactly.
            slots = everything
        if mirror is not None and slots is not everything:
            results.append(rank(snap, q, slots, k, f, mirror.score_slots(q, slots)))
        elif mirror is not None:  # too few candidates: the exact scan, on the device
            results.extend(_exact(view, [q], k, mirror, [f]))
        else:
            results.append(rank(snap, q, slots, k, f))
    return results


def _exact(
    view: View,
    queries: list[np.ndarray],
    k: int,
    mirror: DeviceMirror | None,
    fusion: list[Fusion],
) -> list[list[SearchHit]]:
    """Exact scores of every allowed document: on the device for a batch, else numpy."""
    snap, everything = view.snap, np.flatnonzero(view.mask())
    pairs = zip(queries, fusion, strict=True)
    if mirror is None:
        return [rank(snap, q, everything, k, f) for q, f in pairs]
    if 4 * len(everything) < len(view.mask()):  # a small restriction: score only its documents
        return [
            rank(snap, q, everything, k, f, mirror.score_slots(q, everything)) for q, f in pairs
        ]
    from late_interaction._index.device_search import exact_top_k

    top = exact_top_k(mirror, view, queries, k, fusion)
    return [hits(snap, *found) for found in top]


def rank(
    snap: Snapshot,
    query: np.ndarray,
    slots: np.ndarray,
    k: int,
    fusion: Fusion = (0.0, None),
    scores: np.ndarray | None = None,
) -> list[SearchHit]:
    """Score ``slots`` exactly (unless ``scores`` are given) and return the top ``k``.

    ``fusion`` is ``(dense_weight, query dense vector)``: with a weight above 0 the ranking
    score is the fused one (``late_interaction.fusion``), else MaxSim per query row. Ties are
    broken by storage order.
    """
    weight, query_dense = fusion
    if scores is None:
        scores = score_slots(query, snap.tokens, snap.offsets, slots)
    cosines = None
    if weight > 0:
        cosines = snap.docs.dense.rows(slots) @ query_dense  # type: ignore[union-attr]
    ranking = fused_scores(scores, query.shape[0], cosines, weight)
    if len(slots) > 4 * k:
        top = np.argpartition(-ranking, k)[: k + 1]
        scores, slots, ranking = scores[top], slots[top], ranking[top]
        cosines = None if cosines is None else cosines[top]
    order = np.lexsort((slots, -ranking))[:k]
    return hits(
        snap,
        slots[order],
        scores[order],
        ranking[order],
        None if cosines is None else cosines[order],
    )


def hits(
    snap: Snapshot,
    slots: np.ndarray,
    scores: np.ndarray,
    ranking: np.ndarray,
    cosines: np.ndarray | None,
) -> list[SearchHit]:
    """The hits of ``slots`` (best first) with raw MaxSim, ranking score and dense cosine."""
    docs = snap.docs
    found = zip(slots.tolist(), scores.tolist(), ranking.tolist(), strict=True)
    return [
        SearchHit(
            id=docs.ids[slot],  # type: ignore[arg-type]
            score=score,
            normalized_score=rank_score,
            rank=position,
            text=docs.texts[slot],
            metadata=copy.deepcopy(docs.metadatas[slot]),
            dense_score=None if cosines is None else float(cosines[position]),
        )
        for position, (slot, score, rank_score) in enumerate(found)
    ]
