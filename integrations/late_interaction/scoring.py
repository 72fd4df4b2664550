"""Exact late-interaction (MaxSim) scoring.

The sum, over query tokens, of the largest dot product with any document token; padding never
takes part (scored as zero it would inflate short documents whose similarities are negative).

* :func:`maxsim_packed` (numpy): documents are rows of one contiguous array with offsets; one
  matrix product, then a segmented max. No padding is materialised (fast on CPU for ragged input).
* :func:`score_slots` runs it over chosen documents of an index's token store in bounded chunks;
  :func:`score_slots_by_centroids` the same with each token replaced by its centroid (a
  compressed index's cheap pre-ranking). Reranking (encode, score, sort) is ``reranking.py``.
* the torch path of :func:`maxsim` (``_torch_maxsim.py``): on the query's device, batched over
  queries, with our Triton kernel on CUDA (``_triton_maxsim.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["maxsim", "maxsim_packed", "pack", "score_slots", "score_slots_by_centroids"]


def _check_query(query: np.ndarray, *, batch: bool = False) -> None:
    if query.ndim != (3 if batch else 2):
        msg = (
            "query must be an array of shape (n_query_tokens, dim) or, for a batch, "
            f"(n_queries, n_query_tokens, dim); got shape {query.shape}."
        )
        raise ValueError(msg)
    if query.shape[-2] == 0:
        msg = "query has no tokens; encode a non-empty query first."
        raise ValueError(msg)


def _check_documents(tokens: np.ndarray, offsets: np.ndarray, dim: int) -> None:
    if tokens.ndim != 2 or tokens.shape[1] != dim:
        msg = (
            f"document tokens must have shape (n_tokens, {dim}) to match the query; "
            f"got {tokens.shape}. Encode queries and documents with the same model."
        )
        raise ValueError(msg)
    lengths = np.diff(offsets)
    if (lengths <= 0).any():
        bad = np.flatnonzero(lengths <= 0)[:5].tolist()
        msg = f"documents at positions {bad} have no tokens; MaxSim needs at least one token each."
        raise ValueError(msg)


def pack(documents: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ragged token matrices into one array plus offsets.

    Args:
        documents: Token matrices, each of shape ``(n_tokens_i, dim)``.

    Returns:
        ``(tokens, offsets)``: tokens of shape ``(sum n_tokens_i, dim)`` and int64 offsets of shape
        ``(n_docs + 1,)``, so document ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``.

    Raises:
        ValueError: If a matrix is not 2-D or the dimensions differ.
    """
    if len(documents) == 0:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(1, dtype=np.int64)
    dims = {np.shape(d)[-1] if np.ndim(d) == 2 else -1 for d in documents}
    if len(dims) != 1 or -1 in dims:
        shapes = sorted({tuple(np.shape(d)) for d in documents})[:5]
        msg = f"documents must be 2-D arrays (n_tokens, dim) of one dim; got shapes {shapes}."
        raise ValueError(msg)
    lengths = np.fromiter((np.shape(d)[0] for d in documents), dtype=np.int64, count=len(documents))
    offsets = np.zeros(len(documents) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.concatenate([np.asarray(d) for d in documents], axis=0), offsets


def maxsim_packed(query: np.ndarray, tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """MaxSim of one query against documents stored contiguously.

    Args:
        query: Query token matrix. Shape: ``(n_query_tokens, dim)``.
        tokens: All document tokens, one document after another (float16 or float32).
            Shape: ``(n_tokens, dim)``.
        offsets: Document boundaries; document ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``.
            Shape: ``(n_docs + 1,)``.

    Returns:
        float32 scores. Shape: ``(n_docs,)``.

    Raises:
        ValueError: On a shape or dimension mismatch, or a document with no tokens.

    Example:
        >>> import numpy as np
        >>> q = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> tokens = np.array([[1.0, 0.0], [0.0, 0.5], [-1.0, 0.0]])
        >>> maxsim_packed(q, tokens, np.array([0, 2, 3]))  # doc 0: 1 + 0.5; doc 1: -1 + 0
        array([ 1.5, -1. ], dtype=float32)
    """
    query = np.asarray(query, dtype=np.float32)
    _check_query(query)
    offsets = np.asarray(offsets, dtype=np.int64)
    n_docs = len(offsets) - 1
    if n_docs <= 0:
        return np.zeros(0, dtype=np.float32)
    _check_documents(tokens, offsets, query.shape[1])
    return maxsim_packed_rows(query, tokens, offsets).sum(axis=1, dtype=np.float32)


def maxsim_packed_rows(query: np.ndarray, tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per query row, the best similarity in each document: ``(n_docs, n_query_tokens)``.

    :func:`maxsim_packed` without the final sum (inputs already checked by the caller).
    """
    # Performance note: one BLAS call over the needed rows, then a segmented max. float16 storage
    # is widened here, chunk by chunk, so exact scores never depend on the storage precision of
    # the matmul accumulator.
    sims = tokens[offsets[0] : offsets[-1]].astype(np.float32, copy=False) @ query.T
    return np.maximum.reduceat(sims, offsets[:-1] - offsets[0], axis=0)


def maxsim(
    query: Any,
    documents: Any,
    documents_mask: Any = None,
) -> Any:
    """Exact late-interaction scores of one query (or a batch of queries) against many documents.

    Accepts numpy arrays or torch tensors; the result has the type of ``query``. With torch
    tensors the work runs on the query's device (GPU if it is there).

    Args:
        query: Query token matrix ``(n_query_tokens, dim)``, or a batch of queries
            ``(n_queries, n_query_tokens, dim)``; pad shorter queries of a batch with zero rows
            (a zero row adds exactly 0 to every score).
        documents: Either a sequence of token matrices of shapes ``(n_tokens_i, dim)`` (ragged),
            or one padded array of shape ``(n_docs, max_tokens, dim)``.
        documents_mask: For padded input only: ``(n_docs, max_tokens)``, true (or 1) for real
            tokens. Masked positions are excluded from the max, never scored as zero.

    Returns:
        float32 scores, numpy array or torch tensor like ``query``: shape ``(n_docs,)`` for one
        query, ``(n_queries, n_docs)`` for a batch.

    Raises:
        ValueError: On mismatched shapes, an empty query or a document without tokens.

    Example:
        >>> import numpy as np
        >>> q = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> d0 = np.array([[1.0, 0.0], [0.0, 0.5]])
        >>> d1 = np.array([[-1.0, 0.0]])
        >>> maxsim(q, [d0, d1])
        array([ 1.5, -1. ], dtype=float32)
        >>> padded = np.stack([d0, np.array([[-1.0, 0.0], [0.0, 0.0]])])
        >>> maxsim(q, padded, documents_mask=np.array([[1, 1], [1, 0]]))  # padding is not 0
        array([ 1.5, -1. ], dtype=float32)
        >>> batch = np.stack([q, [[0.0, 1.0], [0.0, 0.0]]])  # 2nd query: one token + a zero row
        >>> maxsim(batch, [d0, d1])
        array([[ 1.5, -1. ],
               [ 0.5,  0. ]], dtype=float32)
    """
    if type(query).__module__.startswith("torch"):
        from late_interaction._torch_maxsim import maxsim_torch

        return maxsim_torch(query, documents, documents_mask)
    query = np.asarray(query, dtype=np.float32)
    batched = query.ndim == 3
    _check_query(query, batch=batched)
    if isinstance(documents, np.ndarray) and documents.ndim == 3:
        if documents_mask is None:
            documents_mask = np.ones(documents.shape[:2], dtype=bool)
        documents_mask = np.asarray(documents_mask).astype(bool)
        if documents_mask.shape != documents.shape[:2]:
            msg = (
                f"documents_mask must have shape {documents.shape[:2]} (n_docs, max_tokens); "
                f"got {documents_mask.shape}."
            )
            raise ValueError(msg)
        documents = [doc[m] for doc, m in zip(documents, documents_mask, strict=True)]
    elif documents_mask is not None:
        msg = "documents_mask is only for padded (n_docs, max_tokens, dim) input; drop it."
        raise ValueError(msg)
    tokens, offsets = pack([np.asarray(d) for d in documents])
    if not batched:
        empty = len(offsets) == 1
        return np.zeros(0, np.float32) if empty else maxsim_packed(query, tokens, offsets)
    if len(offsets) == 1:
        return np.zeros((query.shape[0], 0), dtype=np.float32)
    # One matmul for the whole batch: each query row is a column; sum the rows per query after.
    n_q, l_q, dim = query.shape
    _check_documents(tokens, offsets, dim)
    per_row = maxsim_packed_rows(query.reshape(n_q * l_q, dim), tokens, offsets)
    return per_row.reshape(-1, n_q, l_q).sum(axis=2, dtype=np.float32).T.copy()


def _score_by_chunks(
    offsets: np.ndarray,
    slots: np.ndarray,
    chunk_tokens: int,
    score: Callable[[Any, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Score ``slots`` in runs of about ``chunk_tokens`` store rows, bounding temporary RAM.

    ``score(rows, local)`` scores the slots of one run: they occupy the store rows ``rows`` (a
    slice when they are adjacent, else an index array) at offsets ``local`` within them.
    """
    out = np.empty(len(slots), dtype=np.float32)
    if len(slots) == 0:
        return out
    starts = offsets[slots]
    lengths = offsets[slots + 1] - starts
    ends = np.cumsum(lengths)
    cuts = np.searchsorted(ends, np.arange(chunk_tokens, ends[-1], chunk_tokens), side="left") + 1
    edges = np.unique(np.concatenate([[0], cuts, [len(slots)]]))
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        s, n = starts[a:b], lengths[a:b]
        local = np.zeros(b - a + 1, dtype=np.int64)
        np.cumsum(n, out=local[1:])
        if (s[1:] == s[:-1] + n[:-1]).all():  # adjacent slots: a slice, no gather
            rows: Any = slice(int(s[0]), int(s[0] + local[-1]))
        else:
            rows = np.repeat(s - local[:-1], n) + np.arange(local[-1])
        out[a:b] = score(rows, local)
    return out


def score_slots(
    query: np.ndarray,
    tokens: Any,
    offsets: np.ndarray,
    slots: np.ndarray,
    *,
    chunk_tokens: int = 16_384,
) -> np.ndarray:
    """Exact MaxSim of ``query`` against the documents in ``slots`` of a token store.

    Args:
        query: float32 query matrix. Shape: ``(n_query_tokens, dim)``.
        tokens: Store rows, or an array-like that decodes the rows it is indexed with (a
            compressed store; one with a ``query_similarities(query, rows)`` method gives the
            dot products itself, query-major). Shape: ``(n_tokens, dim)``.
        offsets: Slot offsets into ``tokens``. Shape: ``(n_slots + 1,)``.
        slots: Slot numbers to score, ascending. Shape: ``(n,)``.
        chunk_tokens: Rows gathered (and widened to float32) at a time, bounding temporary RAM.

    Returns:
        float32 scores aligned with ``slots``.
    """
    similarities = getattr(tokens, "query_similarities", None)
    if similarities is None:
        return _score_by_chunks(
            offsets,
            slots,
            chunk_tokens,
            lambda rows, local: maxsim_packed(query, tokens[rows], local),
        )
    query = np.asarray(query, dtype=np.float32)
    _check_query(query)

    def score(rows: Any, local: np.ndarray) -> np.ndarray:
        # Rows that decode as they are scored (a compressed store): dot products straight from
        # the decoder, which normalises them rather than the rows. Query-major: the segmented
        # max runs along each query token's contiguous row.
        best = np.maximum.reduceat(similarities(query, rows), local[:-1], axis=1)
        return best.sum(axis=0, dtype=np.float32)

    return _score_by_chunks(offsets, slots, chunk_tokens, score)


def score_slots_by_centroids(
    centroid_scores: np.ndarray,
    codes: np.ndarray,
    offsets: np.ndarray,
    slots: np.ndarray,
    *,
    chunk_tokens: int = 65_536,
) -> np.ndarray:
    """Approximate MaxSim with every document token replaced by its centroid (PLAID's stage 2).

    Needs no decompression: similarities are looked up in ``centroid_scores`` by centroid id.

    Args:
        centroid_scores: Dot products of every centroid with every query token.
            Shape: ``(n_centroids, n_query_tokens)``.
        codes: Centroid id of each store row. Shape: ``(n_tokens,)``.
        offsets: Slot offsets into the rows. Shape: ``(n_slots + 1,)``.
        slots: Slot numbers to score, ascending. Shape: ``(n,)``.
        chunk_tokens: Rows looked up at a time, bounding temporary RAM.

    Returns:
        float32 scores aligned with ``slots``.
    """
    by_query = np.ascontiguousarray(centroid_scores.T)
    return score_slots_by_query_scores(by_query, codes, offsets, slots, chunk_tokens=chunk_tokens)


def score_slots_by_query_scores(
    by_query: np.ndarray,
    codes: np.ndarray,
    offsets: np.ndarray,
    slots: np.ndarray,
    *,
    chunk_tokens: int = 65_536,
) -> np.ndarray:
    """:func:`score_slots_by_centroids` from query-major scores, ``(n_query_tokens, n_centroids)``.

    Args:
        by_query: Dot products of every query token with every centroid.
        codes: Centroid id of each store row. Shape: ``(n_tokens,)``.
        offsets: Slot offsets into the rows. Shape: ``(n_slots + 1,)``.
        slots: Slot numbers to score, ascending. Shape: ``(n,)``.
        chunk_tokens: Rows looked up at a time, bounding temporary RAM.

    Returns:
        float32 scores aligned with ``slots``.
    """
    # Performance note: query-major lookups, (n_query_tokens, n_rows), so the segmented max runs
    # over the contiguous last axis: numpy's reduceat over axis 0 of the row-major layout cost
    # more than the lookups (benchmarks/results/compressed-*-ab.md).

    def score(rows: Any, local: np.ndarray) -> np.ndarray:
        sims = np.take(by_query, codes[rows], axis=1)
        return np.maximum.reduceat(sims, local[:-1], axis=1).sum(axis=0, dtype=np.float32)

    return _score_by_chunks(offsets, slots, chunk_tokens, score)
