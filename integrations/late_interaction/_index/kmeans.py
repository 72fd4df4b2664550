"""Spherical k-means for the residual codec, and nearest-centroid assignment that scales with k.

Building a compressed index is dominated by one question asked of every token (and of every
training vector in each Lloyd iteration): which centroid has the largest dot product? Exactly,
that is ``X @ C.T`` plus an argmax, ``n x k x dim`` multiply-adds: at 16,384 centroids and dim
384, 1.1M SciFact tokens cost ~14 TFLOP, minutes on two cores
(``benchmarks/results/compressed-*-build.md``). So above :data:`_EXACT_MAX_CENTROIDS` the
assignment is two-level, as an IVF index over the centroids would do: the centroids are grouped
by a small k-means (``sqrt(2k)`` groups, overlapping), each vector scores the group centres
and then only the centroids of its best group, a ~15-40x smaller matrix product. The
answer is a centroid at least as good as any in those groups; when it is not the exact nearest,
it is a near one, and the residual code stores the difference either way (the codec only needs a
close centroid; the measured agreement with exact assignment and its effect on recall are in the
build results).

Why our own code rather than ``faiss-cpu`` or ``fastkmeans``: the codec needs only what
colbert-ai asks of faiss (``kmeans_niters=4`` Lloyd iterations on unit vectors, nearest centroid
by dot product), which is BLAS matrix products and an argmax; numpy's BLAS runs them at the
machine's matmul speed, with no extra native wheel (faiss-cpu is ~30 MB; fastkmeans is built
around torch/Triton for GPUs) and no CUDA-torch risk.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import sparse

from late_interaction._index.blas_threads import blas_threads, single_threaded_blas

_CHUNK_BYTES = 16 * 2**20  # bound on a chunk's float32 score block / sorted rows
_EXACT_MAX_CENTROIDS = 1024  # below this, the full product is about as cheap as two levels
_GROUPS_PER_CENTROID = 5  # overlap of the two-level assignment's centroid groups
_MIN_ROWS_PER_THREAD = 4096  # below this, a chunk is assigned on the calling thread alone


class NearestCentroid:
    """Nearest centroid by dot product: exact for few centroids, two-level for many.

    Two-level: ``sqrt(2k)`` group centres (a small k-means over the centroids); each
    centroid is listed in the groups of its :data:`_GROUPS_PER_CENTROID` nearest centres, so
    neighbouring groups overlap. A vector scores the centres, takes its best group and scores
    that group's centroids only. Vectors are sorted by group so every group is one contiguous
    matrix product (no per-group gathers).

    Args:
        centroids: Shape ``(n_centroids, dim)``; widened to float32.
        exact: Always score every centroid (the reference; slow for large ``n_centroids``).
        seed: Seed of the centroid grouping.
        n_groups: Group centres (None: ``sqrt(2k)``, rounded).
        overlap: Groups each centroid is listed in (its nearest centres).
    """

    def __init__(
        self,
        centroids: np.ndarray,
        *,
        exact: bool = False,
        seed: int = 1,
        n_groups: int | None = None,
        overlap: int = _GROUPS_PER_CENTROID,
    ) -> None:
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        k = self.centroids.shape[0]
        self.two_level = not exact and k > _EXACT_MAX_CENTROIDS
        if not self.two_level:
            return
        if n_groups is None:
            # sqrt(2k) groups x overlap 5 (128 x 320 centroids at k = 8,192; 256 x 640 at
            # 32,768): as close to exact assignment as sqrt(k) / 2 rounded to a power of two
            # x overlap 4 (64 x 512; 64 x 2,048), and builds 1.17x / 1.31x faster with recall
            # 0.875 / 0.861 vs 0.869 / 0.856 (benchmarks/results/compressed-assign-*-shapes.md,
            # compressed-build20000-*-ab-groups8192.md, -ab-groups32768.md).
            n_groups = max(1, round(math.sqrt(2 * k)))
        overlap = min(overlap, n_groups)
        self.centres = spherical_kmeans(self.centroids, n_groups, niters=4, seed=seed, exact=True)
        near = np.argpartition(-(self.centroids @ self.centres.T), overlap - 1, axis=1)
        groups = near[:, :overlap].ravel()
        order = np.argsort(groups, kind="stable")
        bounds = np.r_[0, np.cumsum(np.bincount(groups, minlength=n_groups))]
        # Per group: the ids of its centroids and a contiguous copy of their rows (for BLAS).
        self.groups = [order[bounds[g] : bounds[g + 1]] // overlap for g in range(n_groups)]
        self.blocks = [self.centroids[ids] for ids in self.groups]

    def __call__(self, vectors: np.ndarray, *, threads: int | None = None) -> np.ndarray:
        """int64 id of the (approximately, if two-level) nearest centroid of each vector.

        Args:
            vectors: Shape ``(n, dim)``; any float dtype (widened to float32 chunk by chunk).
            threads: Python threads that share a chunk's rows, each with single-threaded BLAS
                (``blas_threads.py``); None: as many as BLAS would use now. The answer does not
                depend on it.
        """
        if not self.two_level:
            return _exact(vectors, self.centroids)
        n, dim = vectors.shape
        out = np.empty(n, dtype=np.int64)
        # Performance note: 16 MiB chunks (32k rows at dim 128) assign ~1.2x faster than 256 MiB
        # ones, whose sorted copy and group products stream through RAM; k-means hands the
        # whole training sample over at once (benchmarks/results/compressed-build*-ab-chunk.md).
        chunk = max(1, _CHUNK_BYTES // (4 * dim))
        threads = blas_threads() if threads is None else threads
        threads = max(1, min(threads, n // _MIN_ROWS_PER_THREAD))
        with single_threaded_blas() if threads > 1 else contextlib.nullcontext(False) as limited:
            if not limited:  # one thread, or BLAS ignored the limit: BLAS threads the products
                for start in range(0, n, chunk):
                    block = np.asarray(vectors[start : start + chunk], dtype=np.float32)
                    out[start : start + chunk] = self._two_level(block)
                return out

            def assign(rows: slice) -> None:
                out[rows] = self._two_level(np.asarray(vectors[rows], dtype=np.float32))

            with ThreadPoolExecutor(threads) as pool:
                for start in range(0, n, chunk):
                    cuts = np.linspace(start, min(start + chunk, n), threads + 1).astype(int)
                    parts = [slice(a, b) for a, b in itertools.pairwise(cuts.tolist())]
                    list(pool.map(assign, parts))  # list(): re-raises a worker's exception
        return out

    def _two_level(self, block: np.ndarray) -> np.ndarray:
        group = (block @ self.centres.T).argmax(axis=1)
        # Performance note: a stable sort of 16-bit keys is a radix sort (~8x faster than
        # sorting the int64 argmax), and the answers are written in group order and scattered
        # back once, not per group (benchmarks/results/compressed-build*-ab-radixsort.md).
        keys = group.astype(np.uint16) if len(self.groups) <= 2**16 else group
        order = np.argsort(keys, kind="stable")
        ordered = block[order]
        bounds = np.r_[0, np.cumsum(np.bincount(group, minlength=len(self.groups)))].tolist()
        found = np.empty(block.shape[0], dtype=np.int64)
        for g, (ids, centroids) in enumerate(zip(self.groups, self.blocks, strict=True)):
            lo, hi = bounds[g], bounds[g + 1]
            if lo < hi:  # a best group lists at least its own centroids
                found[lo:hi] = ids[(ordered[lo:hi] @ centroids.T).argmax(axis=1)]
        out = np.empty(block.shape[0], dtype=np.int64)
        out[order] = found
        return out


def _exact(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Exact argmax of ``vectors @ centroids.T`` per row, chunked."""
    n = vectors.shape[0]
    out = np.empty(n, dtype=np.int64)
    chunk = max(1, _CHUNK_BYTES // (4 * max(centroids.shape[0], 1)))
    for start in range(0, n, chunk):
        block = np.asarray(vectors[start : start + chunk], dtype=np.float32)
        out[start : start + chunk] = (block @ centroids.T).argmax(axis=1)
    return out


def nearest_centroids(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the centroid with the largest dot product, for each vector (exact).

    Args:
        vectors: Shape ``(n, dim)``; any float dtype (widened to float32 chunk by chunk).
        centroids: float32, shape ``(n_centroids, dim)``.

    Returns:
        int64 array of shape ``(n,)``.
    """
    return _exact(vectors, np.asarray(centroids, dtype=np.float32))


def spherical_kmeans(
    vectors: np.ndarray, k: int, *, niters: int = 4, seed: int = 1, exact: bool = False
) -> np.ndarray:
    """Unit-norm centroids of ``vectors`` by Lloyd's algorithm with dot-product assignment.

    Args:
        vectors: float32 training vectors, shape ``(n, dim)`` with ``n >= k``.
        k: Number of centroids.
        niters: Lloyd iterations (colbert-ai uses 4: the residual codes absorb what more
            iterations would refine).
        seed: Seed of the initial draw (``k`` distinct training vectors).
        exact: Assign exactly in every iteration (else two-level above
            :data:`_EXACT_MAX_CENTROIDS` centroids, see :class:`NearestCentroid`).

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
        assign = NearestCentroid(centroids, exact=exact, seed=seed)(vectors)
        # Segment sums as one sparse (k x n) @ (n x dim) product: a C loop over the rows,
        # instead of a sort and a copy of every vector.
        onehot = sparse.csr_matrix(
            (np.ones(n, dtype=np.float32), (assign, np.arange(n))), shape=(k, n)
        )
        sums = np.asarray(onehot @ vectors, dtype=np.float32)
        counts = np.bincount(assign, minlength=k)
        # An empty cluster keeps its previous centroid (faiss would split a big one; with few
        # iterations and k << n this is rare and only wastes one code).
        filled = counts > 0
        centroids[filled] = sums[filled]
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return centroids
