"""Rerank texts for a query by exact MaxSim: encode, score with ``maxsim``, sort.

What ``ColBERT.rerank`` and both adapters' rerankers run, for any ``Encoder``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from late_interaction._validation import as_texts, positive_int
from late_interaction.scoring import maxsim
from late_interaction.types import Encoder, RerankResult

__all__ = ["rerank"]


def rerank(
    encoder: Encoder,
    query: str,
    documents: Sequence[str],
    top_k: int | None = None,
    *,
    batch_size: int = 32,
    explain: bool = False,
) -> list[RerankResult]:
    """Score documents against a query with exact MaxSim, best first.

    Scoring runs on the encoder's device (``encoder.device``, as ``ColBERT`` has): on a GPU the
    token matrices are scored there by ``maxsim``'s torch path.

    Args:
        encoder: Any :class:`~late_interaction.Encoder` (e.g. a ``ColBERT``).
        query: The query text.
        documents: Candidate texts.
        top_k: Keep only the best ``top_k`` (None keeps all).
        batch_size: Documents per forward pass.
        explain: Attach each result's per-token :class:`~late_interaction.Explanation` (needs an
            encoder with ``explain``, as ``ColBERT``; costs one more encoding per result).

    Returns:
        ``RerankResult(position, score, normalized_score)`` sorted by score, descending (ties by
        position); ``[]`` for no documents.

    Raises:
        TypeError: If ``query`` or a document is not a str, or ``explain=True`` with an encoder
            that cannot explain.
        ValueError: If ``top_k`` < 1.
    """
    explainer = explain_method(encoder) if explain else None
    if not isinstance(query, str):
        msg = f"query must be a str; got {type(query).__name__}."
        raise TypeError(msg)
    top_k = positive_int(top_k, "top_k", optional=True)
    documents = as_texts(documents, "documents")
    if not documents:
        return []
    q = encoder.encode_queries([query], batch_size=1)[0]
    scores = _score(encoder, q, encoder.encode_documents(documents, batch_size=batch_size))
    order = np.argsort(-scores, kind="stable")[:top_k]
    n_rows = q.shape[0]
    return [
        RerankResult(
            int(i),
            float(scores[i]),
            float(scores[i]) / n_rows,
            None if explainer is None else explainer(query, documents[i]),
        )
        for i in order
    ]


def _score(encoder: Encoder, query: np.ndarray, documents: list[np.ndarray]) -> np.ndarray:
    """MaxSim on the encoder's device: torch on an accelerator, numpy (faster there) on a CPU."""
    device = getattr(encoder, "device", None)
    if device is None or str(device) == "cpu":
        return maxsim(query, documents)
    import torch

    query_t = torch.as_tensor(query, device=device)
    docs = [torch.as_tensor(d, device=device) for d in documents]
    return maxsim(query_t, docs).cpu().numpy()


def explain_method(encoder: Encoder) -> Any:
    """``encoder.explain``, or a TypeError saying which encoders can explain.

    Raises:
        TypeError: If the encoder has no ``explain`` method.
    """
    method = getattr(encoder, "explain", None)
    if not callable(method):
        msg = (
            f"explain=True needs an encoder with explain(query, document), such as "
            f"late_interaction.ColBERT; got {type(encoder).__name__}."
        )
        raise TypeError(msg)
    return method
