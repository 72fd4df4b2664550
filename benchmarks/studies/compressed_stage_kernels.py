"""Other kernels for three stages of a compressed search, timed against the library's, in process.

On a saved compressed index, each query runs the library's stages with its default budgets; at
three of them the library's kernel and alternatives compute the same thing on the same input,
alternating which runs first per query (process CPU time; run with one thread):

* centroid interaction over the documents list scores keep: float32 lookups and
  ``np.maximum.reduceat`` (the library before int16), the library's int16 fixed point
  (``_interaction_scores``), torch's ``segment_reduce(max)`` and ``embedding_bag(mode="max")``;
* list scores: the library's ``_best_by_list_scores`` (``np.maximum.at``) and torch's
  ``scatter_reduce_(amax)`` over the (entry, probing token) pairs;
* residual decoding of the documents exact MaxSim scores: ``np.take`` of the byte lookup table
  (the library) and torch's ``embedding``.

Reports CPU ms per query per kernel and the largest difference from the first kernel's output.

Usage (from the repository root; writes ``results/compressed-<index>-<stamp>-kernels.md``):
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 PYTHONPATH=integrations \\
        python -m benchmarks.studies.compressed_stage_kernels \\
        --index .cache/benchmarks/compressed-scale/d128-w100/index-n100000 \\
        --queries .cache/benchmarks/compressed-scale/d128-w100/queries
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np

from benchmarks import _harness as h
from benchmarks.studies._compressed_data import load_saved_index, saved_index_options
from benchmarks.studies.compressed_exact_stage import token_rows


def interaction_kernels(cc, codes, offsets):
    import torch
    import torch.nn.functional as F

    from late_interaction.scoring import score_slots_by_query_scores

    def segment(by_query, docs):
        rows, local = token_rows(offsets, docs)
        index = torch.from_numpy(np.asarray(codes[rows]).astype(np.int64))
        sims = torch.from_numpy(np.ascontiguousarray(by_query.T)).index_select(0, index)
        lengths = torch.from_numpy(np.diff(local))
        return torch.segment_reduce(sims, "max", lengths=lengths, axis=0).sum(dim=1).numpy()

    def bag(by_query, docs):
        rows, local = token_rows(offsets, docs)
        index = torch.from_numpy(np.asarray(codes[rows]).astype(np.int64))
        table = torch.from_numpy(np.ascontiguousarray(by_query.T))
        best = F.embedding_bag(index, table, torch.from_numpy(local[:-1]), mode="max")
        return best.sum(dim=1).numpy()

    def fixed_point(by_query, docs):  # back to score units, to compare
        scale = cc._FIXED_POINT / float(np.abs(by_query).max())
        return cc._interaction_scores(by_query, codes, offsets, docs) / scale

    return {
        "float32 take + reduceat": lambda bq, d: score_slots_by_query_scores(bq, codes, offsets, d),
        "int16 take + reduceat (library)": fixed_point,
        "torch segment_reduce": segment,
        "torch embedding_bag max": bag,
    }


def scatter_list_scores(by_query, cell_of, probed, which, docs, local, keep):
    """``_best_by_list_scores`` through torch's scatter_reduce (amax) over (entry, token) pairs."""
    import torch

    n_query, probe = cell_of.shape
    tokens = np.repeat(np.arange(n_query), probe)
    cells = cell_of.ravel()
    order = np.argsort(cells, kind="stable")
    count = np.bincount(cells, minlength=len(probed))
    first = np.cumsum(count) - count
    repeat = count[which]
    entry = np.repeat(np.arange(len(which)), repeat)
    rank = np.arange(len(entry)) - np.repeat(np.cumsum(repeat) - repeat, repeat)
    token = tokens[order[first[which[entry]] + rank]]
    score = by_query[token, probed[which[entry]]]
    table = torch.zeros(n_query * len(docs))
    index = torch.from_numpy(token * len(docs) + local[entry])
    table.scatter_reduce_(0, index, torch.from_numpy(score), "amax", include_self=True)
    best = table.view(n_query, len(docs)).sum(dim=0).numpy()
    return np.sort(docs[np.argpartition(-best, keep - 1)[:keep]])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    saved_index_options(p)
    h.result_options(p)
    args = p.parse_args()
    started = dt.datetime.now()
    import torch
    import torch.nn.functional as F

    from late_interaction._index import centroid_candidates as cc

    index, queries = load_saved_index(args)
    snap = index._state.snap
    codec, offsets, store = snap.codec, snap.offsets, snap.tokens
    n_probe, n_full = cc.default_budgets(None, None, len(index), 10)
    keep = cc._PRERANK_FACTOR * n_full
    lut = torch.from_numpy(codec._lut.copy())
    kernels = {
        "centroid interaction": interaction_kernels(cc, snap.codes, offsets),
        "list scores": {
            "np.maximum.at (library)": cc._best_by_list_scores,
            "torch scatter_reduce amax": scatter_list_scores,
        },
        "residual decoding": {
            "np.take (library)": lambda packed: np.take(codec._lut, packed, axis=0),
            "torch embedding": lambda packed: F.embedding(
                torch.from_numpy(packed.astype(np.int64)), lut
            ).numpy(),
        },
    }
    cost = {(stage, name): 0.0 for stage, ks in kernels.items() for name in ks}
    diff = dict.fromkeys(cost, 0.0)

    def run(stage: str, i: int, *inputs) -> np.ndarray:
        names = list(kernels[stage])
        outs = {}
        for name in names if i % 2 else names[::-1]:
            t = time.process_time()
            outs[name] = kernels[stage][name](*inputs)
            cost[stage, name] += time.process_time() - t
        for name in names:
            if outs[name].shape == outs[names[0]].shape:
                gap = float(np.abs(outs[name].astype(np.float64) - outs[names[0]]).max())
            else:
                gap = float("inf")
            diff[stage, name] = max(diff[stage, name], gap)
        return outs[names[0]]

    for i, q in enumerate(queries):
        by_query = cc._query_centroid_scores(q, codec.centroids)
        cells = cc._top_cells(by_query, n_probe)
        probed, cell_of = np.unique(cells, return_inverse=True)
        which, slots = snap.ivf.pairs_of(probed)
        docs, local = cc._distinct_slots(slots, len(offsets) - 1)
        listed = (by_query, cell_of.reshape(cells.shape), probed, which, docs, local, keep)
        docs = run("list scores", i, *listed)
        approx = run("centroid interaction", i, by_query, docs)
        docs = np.sort(docs[np.argpartition(-approx, n_full - 1)[:n_full]])
        rows, _ = token_rows(offsets, docs)
        run("residual decoding", i, np.asarray(store.residuals[rows]))
    n = len(queries)
    rows_md = [
        f"| {stage} | {name} | {cost[stage, name] / n * 1000:.2f} | {diff[stage, name]:.1e} |"
        for stage, name in cost
    ]
    body = [
        f"Index `{h.repo_relative(args.index)}` ({len(index):,} documents, "
        f"{codec.n_centroids:,} centroids, nbits={codec.nbits}); {n} queries; default budgets "
        f"n_probe={n_probe}, n_full_scores={n_full} (list scores keep {keep}). Max diff: "
        "against the stage's first kernel (list scores: kept slots).",
        "",
        "| stage | kernel | CPU ms per query | max diff |",
        "|---|---|---:|---:|",
        *rows_md,
    ]
    h.publish(args, "compressed", args.index.name, started, "Compressed stage kernels", body,
              "kernels")  # fmt: skip


if __name__ == "__main__":
    main()
