"""float32 matrix products of a compressed search through torch's CPU BLAS.

The search's products are thin (a query's 10-60 token rows against thousands of centroid or
decoded token rows); torch's CPU BLAS runs them ~1.5-2x faster than numpy's single-threaded, with
the same float32 arithmetic (``benchmarks/results/compressed-*-ab-torchprobe.md``,
``matmul-dtypes-*.md``). torch is a base dependency; it is imported on the first call, as it is
not at package import.
"""

from __future__ import annotations

import numpy as np


def matmul_nt(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` in float32: ``(m, k) x (n, k) -> (m, n)``, C-contiguous.

    Args:
        a: Left rows (a query's token matrix). Shape: ``(m, k)``.
        b: Right rows (centroids, decoded tokens). Shape: ``(n, k)``.

    Returns:
        float32 array of shape ``(m, n)``.
    """
    import torch

    return (torch.from_numpy(_writable_f32(a)) @ torch.from_numpy(_writable_f32(b)).T).numpy()


def _writable_f32(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    # torch.from_numpy warns on read-only arrays (a memory-mapped codec, a frozen query)
    return x if x.flags.writeable else x.copy()
