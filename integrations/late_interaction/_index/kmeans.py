"""Spherical k-means for the residual codec: a few Lloyd iterations over BLAS matrix products.

Why our own 40 lines rather than ``faiss-cpu`` or ``fastkmeans``: the codec needs only what
colbert-ai asks of faiss (``kmeans_niters=4`` Lloyd iterations on unit vectors, nearest centroid
by dot product), and that is one ``X @ C.T`` per chunk plus an argmax. numpy's BLAS runs it at
the machine's matmul speed on CPU, with no extra wheel (faiss-cpu is a ~30 MB native wheel;
fastkmeans is built around torch/Triton for GPUs) and no CUDA-torch risk.
"""

from __future__ import annotations

import numpy as np

_CHUNK_BYTES = 64 * 2**20  # bound on the (rows x centroids) float32 score block


def nearest_centroids(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the centroid with the largest dot product, for each vector.

    Args:
        vectors: Shape ``(n, dim)``; any float dtype (widened to float32 chunk by chunk).
        centroids: float32, shape ``(n_centroids, dim)``.

    Returns:
        int64 array of shape ``(n,)``.
    """
    n = vectors.shape[0]
    out = np.empty(n, dtype=np.int64)
    chunk = max(1, _CHUNK_BYTES // (4 * max(centroids.shape[0], 1)))
    for start in range(0, n, chunk):
        block = np.asarray(vectors[start : start + chunk], dtype=np.float32)
        out[start : start + chunk] = (block @ centroids.T).argmax(axis=1)
    return out


def spherical_kmeans(vectors: np.ndarray, k: int, *, niters: int = 4, seed: int = 1) -> np.ndarray:
    """Unit-norm centroids of ``vectors`` by Lloyd's algorithm with dot-product assignment.

    Args:
        vectors: float32 training vectors, shape ``(n, dim)`` with ``n >= k``.
        k: Number of centroids.
        niters: Lloyd iterations (colbert-ai uses 4: the residual codes absorb what more
            iterations would refine).
        seed: Seed of the initial draw (``k`` distinct training vectors).

    Returns:
        float32 centroids of shape ``(k, dim)``, each L2-normalised.

    Raises:
        ValueError: If there are fewer vectors than centroids.
    """
    n = vectors.shape[0]
    if not 1 <= k <= n:
        msg = f"k-means needs 1 <= k <= n_vectors; got k={k} for {n} vectors."
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    centroids = np.array(vectors[rng.choice(n, size=k, replace=False)], dtype=np.float32)
    for _ in range(niters):
        assign = nearest_centroids(vectors, centroids)
        sums = np.zeros_like(centroids)
        _segment_sums(sums, assign, vectors)
        counts = np.bincount(assign, minlength=k)
        # An empty cluster keeps its previous centroid (faiss would split a big one; with few
        # iterations and k << n this is rare and only wastes one code).
        filled = counts > 0
        centroids[filled] = sums[filled]
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return centroids


def _segment_sums(sums: np.ndarray, assign: np.ndarray, vectors: np.ndarray) -> None:
    """``sums[c] += vectors[i]`` for ``assign[i] == c``, via a sort and ``np.add.reduceat``."""
    order = np.argsort(assign, kind="stable")
    sorted_assign = assign[order]
    starts = np.flatnonzero(np.r_[True, sorted_assign[1:] != sorted_assign[:-1]])
    sums[sorted_assign[starts]] = np.add.reduceat(vectors[order], starts, axis=0)
