"""Rerank texts for a query by exact MaxSim: encode, score with ``maxsim``, sort.

With the encoder's ``dense_weight`` > 0 the ranking score is fused with the dense cosine
(``fusion.py``).

What ``ColBERT.rerank`` and both adapters' rerankers run, for any ``Encoder``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from late_interaction._validation import as_texts, positive_int
from late_interaction.fusion import encoder_dense_weight, fused_scores
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
    """Score documents against a query with exact MaxSim (fused with the dense cosine), best first.

    The ranking score is ``normalized_score``: MaxSim divided by the query's rows, or, when the
    encoder's ``config.dense_weight`` w is above 0 (the embedded default's 0.25), the fused
    ``(MaxSim / n_query_rows + w * dense_score) / (1 + w)`` (``late_interaction.fusion``).

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
        ``RerankResult(position, score, normalized_score, explanation, dense_score)`` sorted by
        ``normalized_score``, descending (ties by position); ``[]`` for no documents.

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
    weight = encoder_dense_weight(encoder)
    if weight > 0:  # the dense vectors come from the same forward passes
        (q,), q_dense = encoder.encode_queries([query], batch_size=1, return_dense=True)
        matrices, d_dense = encoder.encode_documents(
            documents, batch_size=batch_size, return_dense=True
        )
        cosines: np.ndarray | None = d_dense @ q_dense[0]
    else:
        q, cosines = encoder.encode_queries([query], batch_size=1)[0], None
        matrices = encoder.encode_documents(documents, batch_size=batch_size)
    scores = _score(encoder, q, matrices)
    fused = fused_scores(scores, q.shape[0], cosines, weight)
    order = np.argsort(-fused, kind="stable")[:top_k]
    return [
        RerankResult(
            int(i),
            float(scores[i]),
            float(fused[i]),
            None if explainer is None else explainer(query, documents[i]),
            None if cosines is None else float(cosines[i]),
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
