"""Token pooling: store fewer vectors per document by merging similar ones.

Hierarchical token pooling (Clavié, Chaffin and Adams, 2024, "Reducing the Footprint of
Multi-Vector Retrieval with Minimal Performance Impact via Token Pooling"): the vectors of one
document are clustered with Ward's method and each cluster is replaced by its mean, so a document
keeps about ``1 / pool_factor`` of its vectors. The first vector (``[CLS]`` or the document
marker) is kept as it is. On unit vectors, Euclidean Ward merges the pairs of highest cosine
similarity first; a merged vector is the plain mean (not re-normalised), so a cluster of dissimilar
tokens scores lower than any of its members would, which is the cautious direction for MaxSim.
"""

from __future__ import annotations

import numpy as np


def pool_tokens(matrix: np.ndarray, pool_factor: int, protected: int = 1) -> np.ndarray:
    """Merge a document's token vectors into about ``n / pool_factor`` cluster means.

    Args:
        matrix: One document's token vectors. Shape: ``(n_tokens, dim)``.
        pool_factor: Reduction factor; 1 returns ``matrix`` unchanged.
        protected: Leading vectors kept as they are (not clustered).

    Returns:
        float32 matrix of shape ``(protected + max((n_tokens - protected) // pool_factor, 1),
        dim)`` at most; the protected vectors first, then the cluster means in order of each
        cluster's first token.

    Raises:
        ValueError: If ``pool_factor`` is not a positive int.

    Example:
        >>> import numpy as np
        >>> doc = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.99], [0.99, 0.1], [0.0, 1.0]])
        >>> pool_tokens(doc, 2).round(3)  # first kept; two clusters of the other four
        array([[1.   , 0.   ],
               [0.   , 0.997],
               [0.99 , 0.1  ]], dtype=float32)
    """
    if not isinstance(pool_factor, int) or isinstance(pool_factor, bool) or pool_factor < 1:
        msg = f"pool_factor must be a positive int; got {pool_factor!r}."
        raise ValueError(msg)
    matrix = np.asarray(matrix, dtype=np.float32)
    head, rest = matrix[:protected], matrix[protected:]
    n_clusters = max(len(rest) // pool_factor, 1)
    if pool_factor == 1 or n_clusters >= len(rest):
        return matrix
    from scipy.cluster.hierarchy import fcluster, linkage

    labels = fcluster(linkage(rest.astype(np.float64), method="ward"), n_clusters, "maxclust")
    # Clusters in order of their first token, so the output follows the text.
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    cluster = rank[inverse]
    sums = np.zeros((len(first), matrix.shape[1]), dtype=np.float64)
    np.add.at(sums, cluster, rest)
    means = sums / np.bincount(cluster)[:, None]
    return np.concatenate([head, means.astype(np.float32)])
