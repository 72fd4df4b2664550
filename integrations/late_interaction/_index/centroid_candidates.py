"""Stage one of a search on a compressed index: candidates through the centroids (PLAID).

Each query token probes its nearest centroids (exact ``Q @ C.T``: at most tens of thousands of
centroids, a few milliseconds); the documents the inverted lists give for those centroids are
the candidates. When there are more than ``n_full`` of them, they are pre-ranked by centroid
interaction (MaxSim with each document token replaced by its centroid, no decompression) and
only the best ``n_full`` go on to exact MaxSim on decoded vectors.
"""

from __future__ import annotations

import numpy as np

from late_interaction._index.snapshot import View
from late_interaction.scoring import score_slots_by_centroids


def centroid_candidates(
    view: View, queries: list[np.ndarray], n_probe: int, n_full: int
) -> list[np.ndarray]:
    """Candidate slots for each query of a compressed index.

    Args:
        view: Snapshot (with codec, codes and inverted lists) and restriction.
        queries: float32 query matrices, each ``(n_query_tokens, dim)``.
        n_probe: Nearest centroids probed per query token.
        n_full: How many documents exact MaxSim may score per query.

    Returns:
        One sorted array of allowed slots per query.
    """
    snap, allowed = view.snap, view.mask()
    centroids = snap.codec.centroids  # type: ignore[union-attr]
    probe = min(n_probe, centroids.shape[0])
    out = []
    for query in queries:
        table = centroids @ query.T  # (n_centroids, n_query_tokens)
        cells = np.argpartition(-table, probe - 1, axis=0)[:probe]
        slots = snap.ivf.slots_of(np.unique(cells))  # type: ignore[union-attr]
        slots = slots[allowed[slots]]
        if len(slots) > n_full:
            approx = score_slots_by_centroids(table, snap.codes, snap.offsets, slots)  # type: ignore[arg-type]
            slots = np.sort(slots[np.argpartition(-approx, n_full - 1)[:n_full]])
        out.append(slots)
    return out
