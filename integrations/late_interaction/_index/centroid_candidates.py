"""Stage one of a search on a compressed index: candidates through the centroids (PLAID).

Each query token probes its nearest centroids (exact ``Q @ C.T``: at most tens of thousands of
centroids, a few milliseconds); the documents the inverted lists give for those centroids are
the candidates. Then, as PLAID's stages 2-3, each cheaper than the next and run only when the
candidates outnumber its budget:

* list scores (``_PRERANK_FACTOR * n_full`` kept): per query token, the best score among the
  centroids it probed that list the document (0 if none), summed; read off the inverted lists
  alone, without touching a document's tokens (PLAID prunes with centroid scores likewise). With
  one probe per query token this is one ``bincount`` over the listed entries;
* centroid interaction (``n_full`` kept): MaxSim with each document token replaced by its
  centroid, from the token codes, no decompression;

and the last ``n_full`` are decoded and scored by exact MaxSim (``search.rank``).
"""

from __future__ import annotations

import math

import numpy as np

from late_interaction._index.snapshot import View
from late_interaction._index.torch_blas import matmul_nt
from late_interaction.scoring import score_slots_by_query_scores

_PRERANK_FACTOR = 4  # documents kept by list scores, per document decoded
_FIXED_POINT = 16_383  # int16 units of the largest centroid score in the centroid interaction
_LIST_SCORES_SUMMED = False  # study switch: summed list scores with several probes per token
# Default budgets (IndexConfig n_probe / n_full_scores left None), grown with the live documents
# past _BASE_DOCS: n_full_scores as their square root, n_probe by one per doubling. Chosen by
# recall@10 against brute force over the decoded vectors (benchmarks/results/
# compressed-*-budgets.md): 4 / 128 reach all of it on Cranfield's 1,400 documents but 0.992 on
# 20,000 passages, where 8 / 256 reach 1.000 (this rule gives 6 / 256 there).
_BASE_PROBE, _BASE_FULL, _BASE_DOCS, _MAX_PROBE = 4, 128, 5_000, 16


def default_budgets(
    n_probe: int | None, n_full: int | None, n_docs: int, k: int
) -> tuple[int, int]:
    """``(n_probe, n_full_scores)`` for one search of a compressed index.

    Args:
        n_probe: ``IndexConfig.n_probe``: used as given when set, else grown with ``n_docs``.
        n_full: ``IndexConfig.n_full_scores``: likewise.
        n_docs: Live documents in the index.
        k: Results asked for; ``n_full_scores`` is at least ``4 * k``.
    """
    growth = max(n_docs, 1) / _BASE_DOCS
    if n_probe is None:
        n_probe = min(_BASE_PROBE + max(math.ceil(math.log2(growth)), 0), _MAX_PROBE)
    if n_full is None:
        n_full = math.ceil(_BASE_FULL * math.sqrt(max(growth, 1.0)))
    return n_probe, max(n_full, 4 * k)


def centroid_candidates(
    view: View, queries: list[np.ndarray], n_probe: int, n_full: int
) -> list[np.ndarray]:
    """Candidate slots for each query of a compressed index.

    Args:
        view: Snapshot (with codec, codes and inverted lists) and restriction.
        queries: float32 query matrices, each ``(n_query_tokens, dim)``.
        n_probe: Nearest centroids probed per query token.
        n_full: How many documents exact MaxSim may score per query.

    Returns:
        One sorted array of allowed slots per query.
    """
    snap, allowed = view.snap, view.mask()
    centroids = snap.codec.centroids  # type: ignore[union-attr]
    probe = min(n_probe, centroids.shape[0])
    out = []
    for query in queries:
        # Performance note: query-major scores, (n_query_tokens, n_centroids): the top cells are
        # a partition along contiguous rows (along the strided centroid axis it was 8 ms of a
        # 22 ms search at 32,768 centroids) and centroid interaction reads them as they are.
        by_query = _query_centroid_scores(query, centroids)
        cells = _top_cells(by_query, probe)
        probed, cell_of = np.unique(cells, return_inverse=True)
        which, slots = snap.ivf.pairs_of(probed)  # type: ignore[union-attr]
        keep = allowed[slots]
        which, slots = which[keep], slots[keep]
        if len(slots) == 0:
            out.append(slots)
            continue
        docs, local = _distinct_slots(slots, len(allowed))
        if len(docs) > _PRERANK_FACTOR * n_full:
            docs = _best_by_list_scores(
                by_query, cell_of.reshape(cells.shape), probed, which, docs, local,
                _PRERANK_FACTOR * n_full,
            )  # fmt: skip
        if len(docs) > n_full:
            approx = _interaction_scores(by_query, snap.codes, snap.offsets, docs)  # type: ignore[arg-type]
            docs = np.sort(docs[np.argpartition(-approx, n_full - 1)[:n_full]])
        out.append(docs)
    return out


def _query_centroid_scores(query: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``query @ centroids.T`` in float32, through torch's BLAS (``torch_blas.py``).

    Performance note: this (n_query_tokens x dim) x (dim x n_centroids) product streams every
    centroid once per query; torch's CPU BLAS runs it ~2x faster than numpy's (32,768 centroids
    x 128: 2.2 vs 4.3 ms single-threaded), same float32 arithmetic
    (benchmarks/results/compressed-*-ab-torchprobe.md).
    """
    return matmul_nt(query, centroids)


def _interaction_scores(
    by_query: np.ndarray, codes: np.ndarray, offsets: np.ndarray, docs: np.ndarray
) -> np.ndarray:
    """Centroid interaction (MaxSim with tokens as their centroids) of ``docs``, for ranking.

    Performance note: the scores are looked up as int16 fixed point (``_FIXED_POINT`` units per
    the query's largest absolute score): the lookups and the segmented max move half the bytes,
    1.5x faster at 100k passages (``benchmarks/results/compressed-*-ab-int16.md``). A value
    moves by at most half a unit (3e-5 of the largest score), so only near-ties at the cut can
    change places; the result only chooses which documents exact MaxSim scores.
    """
    largest = float(np.abs(by_query).max())
    if not 0 < largest < np.inf:  # all zero, or overflowed (a query of huge values): as floats
        return score_slots_by_query_scores(by_query, codes, offsets, docs)
    table = np.rint(by_query * (_FIXED_POINT / largest)).astype(np.int16)
    return score_slots_by_query_scores(table, codes, offsets, docs)


def _top_cells(by_query: np.ndarray, probe: int) -> np.ndarray:
    """The ``probe`` best centroids of each query token, ``(n_query_tokens, probe)``, unordered."""
    if probe == 1:
        return by_query.argmax(axis=1)[:, None]
    kth = by_query.shape[1] - probe  # the top ``probe`` end the partition: no negated copy
    return np.argpartition(by_query, kth, axis=1)[:, kth:]


def _distinct_slots(slots: np.ndarray, n_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ``slots`` and, per entry, its position among them.

    A mark per slot of the index instead of ``np.unique``'s hash: at 100k passages a query lists
    ~180k entries, and the unique was 10% of a search
    (``benchmarks/results/compressed-indexn100000-*-stages*.md``).
    """
    seen = np.zeros(n_slots, dtype=bool)
    seen[slots] = True
    docs = np.flatnonzero(seen)
    position = np.empty(n_slots, dtype=np.int64)
    position[docs] = np.arange(len(docs))
    return docs, position[slots]


def _best_by_list_scores(
    by_query: np.ndarray,
    cell_of: np.ndarray,
    probed: np.ndarray,
    which: np.ndarray,
    docs: np.ndarray,
    local: np.ndarray,
    keep: int,
) -> np.ndarray:
    """The ``keep`` documents with the best list scores (see the module docstring), sorted.

    Args:
        by_query: Query-token x centroid scores. Shape: ``(n_query_tokens, n_centroids)``.
        cell_of: Position in ``probed`` of each centroid each query token probed.
            Shape: ``(n_query_tokens, probe)``.
        probed: Sorted distinct probed centroids.
        which: Position in ``probed`` of each listed entry.
        docs: Sorted distinct slots of the entries.
        local: Position in ``docs`` of each listed entry.
        keep: How many documents to keep.
    """
    n_query, probe = cell_of.shape
    tokens = np.repeat(np.arange(n_query), probe)
    cell_scores = by_query[tokens, probed[cell_of.ravel()]]
    if probe == 1 or _LIST_SCORES_SUMMED:
        # One probe per query token: a document's list score is the sum, over the probed
        # centroids listing it, of the scores of the tokens that probed them: one bincount over
        # the entries (exact here; with more probes per token it also adds a token's second
        # listing centroid instead of keeping the better one).
        weight = np.bincount(cell_of.ravel(), weights=cell_scores, minlength=len(probed))
        best = np.bincount(local, weights=weight[which], minlength=len(docs))
    else:
        probed_by = np.zeros((len(probed), n_query), dtype=bool)
        probed_by[cell_of.ravel(), tokens] = True
        per_centroid = probed_by.sum(axis=1)
        token_of = np.nonzero(probed_by)[1]  # grouped by centroid position
        first = np.cumsum(per_centroid) - per_centroid
        # Performance note: maxed with ufunc.at into a zeroed token-major (query token, doc)
        # table, one pass per rank of the tokens that probed a centroid: pass r adds each entry
        # of a centroid probed by more than r tokens with its r-th token (most centroids are
        # probed by one, so pass 0 covers every entry and the rest few). No sort and no
        # per-(entry, token) expansion; token-major keeps one centroid's sorted entries close
        # together (doc-major and the expansion: 12 -> 4 ms at 100k passages,
        # benchmarks/results/compressed-*-ab-listscores.md).
        scores = np.zeros(n_query * len(docs), dtype=np.float32)
        at, at_doc = which, local
        for rank in range(int(per_centroid.max())):
            has = per_centroid > rank
            token_at = np.zeros(len(probed), dtype=np.int64)
            token_at[has] = token_of[first[has] + rank]
            if rank:
                more = per_centroid[at] > rank
                at, at_doc = at[more], at_doc[more]
            score_at = by_query[token_at, probed]
            np.maximum.at(scores, token_at[at] * len(docs) + at_doc, score_at[at])
        best = scores.reshape(n_query, len(docs)).sum(axis=0)
    return np.sort(docs[np.argpartition(-best, keep - 1)[:keep]])
