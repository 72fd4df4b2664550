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

__all__ = ["encoder_dense_weight", "fused_scores", "weight_was_given"]


def encoder_dense_weight(encoder: Any) -> float:
    """The encoder's ``config.dense_weight``; 0 for an encoder without one (no dense vectors)."""
    return float(getattr(getattr(encoder, "config", None), "dense_weight", 0.0) or 0.0)


def weight_was_given(encoder: Any) -> bool:
    """Whether the encoder's ``dense_weight`` was an explicit ``from_pretrained`` argument.

    A given weight is a request that an index without dense vectors must refuse; a default or
    checkpoint weight falls back to MaxSim alone there (with a log line).
    """
    return getattr(encoder, "setting_sources", {}).get("dense_weight") == "argument"


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
