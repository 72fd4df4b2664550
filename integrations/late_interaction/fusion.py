"""The fused relevance score: MaxSim per query token plus a weighted dense cosine.

``normalized = (maxsim / n_query_rows + w * cos(dense_q, dense_d)) / (1 + w)``, in [-1, 1] for
unit vectors. With ``w = 0`` it is the normalised MaxSim. The weight is the encoder's
``EncoderConfig.dense_weight`` (0.25 for the embedded default, chosen in
``benchmarks/results/study-plain-defaults-20261130.md``; 0 for trained ColBERT checkpoints). Search
(``_index/search.py``) and reranking (``reranking.py``) rank by it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["encoder_dense_weight", "fused_scores", "unfused_weight", "weight_was_given"]


def encoder_dense_weight(encoder: Any) -> float:
    """The encoder's ``config.dense_weight``; 0 for an encoder without one (no dense vectors)."""
    return float(getattr(getattr(encoder, "config", None), "dense_weight", 0.0) or 0.0)


def weight_was_given(encoder: Any) -> bool:
    """Whether the encoder's ``dense_weight`` was an explicit ``from_pretrained`` argument.

    A given weight is a request that an index without dense vectors must refuse; a default or
    checkpoint weight falls back to MaxSim alone there (with a log line).
    """
    return getattr(encoder, "setting_sources", {}).get("dense_weight") == "argument"


def unfused_weight(encoder: Any, lacking: str, fix: str) -> float:
    """The encoder's ``dense_weight`` where no dense vectors exist, refusing an explicit one.

    The one rule for every place that must rank by MaxSim alone (an index saved without dense
    vectors, embeddings added without them, a Qdrant collection): a weight > 0 that was an
    explicit argument is a request that cannot be met; a default or checkpoint weight is
    returned so the caller can say once that it ranks without it.

    Args:
        encoder: The encoder.
        lacking: What has no dense vectors, e.g. ``"this index holds no dense vectors"``.
        fix: How to fix it, one sentence.

    Returns:
        The encoder's weight (0 when it fuses nothing).

    Raises:
        ValueError: If the weight is > 0 and was given explicitly.
    """
    weight = encoder_dense_weight(encoder)
    if weight > 0 and weight_was_given(encoder):
        msg = f"the encoder was given dense_weight={weight}, but {lacking}: nothing to fuse. {fix}"
        raise ValueError(msg)
    return weight


def fused_scores(
    maxsim: np.ndarray, n_query_rows: int, dense_cos: np.ndarray | None, weight: float
) -> np.ndarray:
    """The normalised (fused when ``weight`` > 0) scores that results are ranked by.

    Args:
        maxsim: Raw MaxSim sums. Shape: ``(n,)``.
        n_query_rows: Rows of the query matrix.
        dense_cos: Dense cosines of the same documents (None when ``weight`` is 0).
            Shape: ``(n,)``.
        weight: The dense weight ``w`` (>= 0).

    Returns:
        float64 scores, shape ``(n,)``.

    Raises:
        ValueError: If ``weight`` > 0 and ``dense_cos`` is None.
    """
    normalized = np.asarray(maxsim, np.float64) / n_query_rows
    if weight == 0:
        return normalized
    if dense_cos is None:
        msg = f"dense_weight={weight} fuses a dense cosine, but none was given."
        raise ValueError(msg)
    return (normalized + weight * np.asarray(dense_cos, np.float64)) / (1.0 + weight)
