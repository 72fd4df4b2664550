"""Search queries, shared by both indexes (``LateInteractionIndex`` and ``QdrantIndex``).

Texts are checked and encoded in one pass, token matrices checked, and hits explained, the same
way whichever engine then searches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from late_interaction._validation import as_token_matrices, check_unicode
from late_interaction.reranking import explain_method
from late_interaction.types import Encoder, SearchHit


def search_explainer(model: Encoder, explain: bool, queries: list[Any]) -> Callable | None:
    """``model.explain`` when ``explain`` is set, else None.

    Raises:
        TypeError: If the model cannot explain.
        ValueError: If a query is a token matrix (it has no tokens to show).
    """
    explainer = explain_method(model) if explain else None
    if explainer is not None and not all(isinstance(q, str) for q in queries):
        msg = "explain=True needs query texts (a token matrix has no tokens to show)."
        raise ValueError(msg)
    return explainer


def explained(
    explainer: Callable | None, queries: list[Any], results: list[list[SearchHit]]
) -> list[list[SearchHit]]:
    """``results`` with each hit's explanation attached (unchanged without an explainer)."""
    if explainer is None:
        return results
    return [
        [replace(hit, explanation=explainer(query, hit.text)) for hit in hits]
        for query, hits in zip(queries, results, strict=True)
    ]


def query_matrices(
    model: Encoder,
    queries: list[Any],
    dim: int,
    batch_size: int,
    dense: list[Any] | None = None,
) -> list[np.ndarray]:
    """Token matrices of ``queries``: texts encoded in one pass, matrices checked.

    Args:
        model: The index's encoder.
        queries: Texts and/or token matrices.
        dim: The index's dimension.
        batch_size: Encoder batch size for the texts.
        dense: One entry per query (a fused index): the texts' dense vectors are written here.

    Raises:
        ValueError: On a text that is not valid Unicode, or a matrix of another shape.
    """
    texts = [i for i, q in enumerate(queries) if isinstance(q, str)]
    for i in texts:  # a text the tokenizer would choke on is named
        check_unicode(queries[i], f"queries[{i}]")
    matrices: list[Any] = list(queries)
    if texts:
        extra = {"return_dense": True} if dense is not None else {}
        out = model.encode_queries(
            [queries[i] for i in texts], batch_size=batch_size, show_progress_bar=False, **extra
        )
        encoded, vectors = out if dense is not None else (out, None)
        for j, i in enumerate(texts):
            matrices[i] = encoded[j]
            if dense is not None:
                dense[i] = vectors[j]
    return as_token_matrices(matrices, dim, "query")
