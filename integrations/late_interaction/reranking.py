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

    Scoring runs where the encoder runs: a ``ColBERT`` on a GPU keeps the token matrices on the
    GPU and scores them there (``maxsim``'s torch path); any other encoder is scored on the host.

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
    scores, n_query_rows, cosines = _scores(encoder, query, documents, batch_size, weight > 0)
    fused = fused_scores(scores, n_query_rows, cosines, weight)
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


def _scores(
    encoder: Encoder, query: str, documents: list[str], batch_size: int, dense: bool
) -> tuple[np.ndarray, int, np.ndarray | None]:
    """MaxSim scores, the query's row count, and the dense cosines (with ``dense``).

    An encoder on an accelerator that can hand its outputs back as tensors on that device
    (``ColBERT``'s ``_encode_on_device``) is scored there: no copy of every document's rows to
    the host and back, one device-to-host copy of the scores. Otherwise numpy on the host.
    """
    on_device = device_encode(encoder)
    if on_device is not None:
        (q,), q_dense = on_device([query], True, 1)
        matrices, d_dense = on_device(documents, False, batch_size)
        scores = maxsim(q, matrices).cpu().numpy()
        cosines = (d_dense @ q_dense[0]).cpu().numpy() if dense else None
        return scores, int(q.shape[0]), cosines
    if dense:  # the dense vectors come from the same forward passes
        (q,), q_dense = encoder.encode_queries([query], batch_size=1, return_dense=True)
        matrices, d_dense = encoder.encode_documents(
            documents, batch_size=batch_size, return_dense=True
        )
        return maxsim(q, matrices), int(q.shape[0]), d_dense @ q_dense[0]
    q = encoder.encode_queries([query], batch_size=1)[0]
    matrices = encoder.encode_documents(documents, batch_size=batch_size)
    return maxsim(q, matrices), int(q.shape[0]), None


def device_encode(encoder: Encoder) -> Any:
    """The encoder's ``_encode_on_device`` if it runs on an accelerator and has one, else None.

    On a CPU the numpy path is the faster one (``maxsim``'s packed BLAS scan).
    """
    method = getattr(encoder, "_encode_on_device", None)
    device = getattr(encoder, "device", None)
    on_cpu = device is None or str(device).split(":", 1)[0] == "cpu"
    return None if on_cpu or not callable(method) else method


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
