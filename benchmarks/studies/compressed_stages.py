"""Where a compressed search's time goes, stage by stage, on a saved index (CPU ms per query).

Replays ``centroid_candidates`` + exact scoring for each query with the index's default budgets,
timing each stage by process CPU time (steadier than wall time on a shared machine): centroid
probe (``Q @ C.T`` and the top ``n_probe``), inverted-list reads, distinct candidate slots, list
scores, centroid interaction, and decoding + exact MaxSim of the ``n_full_scores`` best. Run it
with one BLAS thread (``OPENBLAS_NUM_THREADS=1``) for single-thread figures. It replays the
current code's stages (result files before 2026-11-30 10:50 came from its earlier versions).

Usage (from the repository root; writes ``results/compressed-<index>-<stamp>-stages.md``):
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=integrations python -m benchmarks.studies.compressed_stages \\
        --index .cache/benchmarks/compressed-scale/d128-w100/index-n100000 \\
        --queries .cache/benchmarks/compressed-scale/d128-w100/queries --n-queries 100
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np

from benchmarks import _harness as h
from benchmarks.studies._compressed_data import load_saved_index, saved_index_options


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    saved_index_options(p)
    p.add_argument("--n-probe", type=int, default=None, help="default: the library's")
    p.add_argument("--n-full", type=int, default=None, help="default: the library's")
    h.result_options(p)
    args = p.parse_args()
    started = dt.datetime.now()
    from late_interaction._index import centroid_candidates as cc
    from late_interaction.scoring import score_slots

    index, queries = load_saved_index(args)
    snap = index._state.snap
    allowed = np.ones(len(snap.offsets) - 1, dtype=bool)
    n_live = len(index)
    n_probe, n_full = cc.default_budgets(args.n_probe, args.n_full, n_live, 10)
    cost: dict[str, float] = {}
    sizes = {"listed entries": 0, "distinct candidates": 0}

    def tick(stage: str, since: float) -> float:
        now = time.process_time()
        cost[stage] = cost.get(stage, 0.0) + now - since
        return now

    cc._query_centroid_scores(queries[0], snap.codec.centroids)  # imports torch, untimed
    for q in [*queries[:3], *queries]:  # three warm-up queries, counted again below
        t = time.process_time()
        by_query = cc._query_centroid_scores(q, snap.codec.centroids)
        cells = cc._top_cells(by_query, n_probe)
        probed, cell_of = np.unique(cells, return_inverse=True)
        t = tick("centroid probe", t)
        which, slots = snap.ivf.pairs_of(probed)
        t = tick("inverted lists", t)
        docs, local = cc._distinct_slots(slots, len(allowed))
        sizes["listed entries"] += len(slots)
        sizes["distinct candidates"] += len(docs)
        t = tick("distinct slots", t)
        keep = cc._PRERANK_FACTOR * n_full
        if len(docs) > keep:
            docs = cc._best_by_list_scores(
                by_query, cell_of.reshape(cells.shape), probed, which, docs, local, keep
            )
        t = tick("list scores", t)
        if len(docs) > n_full:
            approx = cc._interaction_scores(by_query, snap.codes, snap.offsets, docs)
            docs = np.sort(docs[np.argpartition(-approx, n_full - 1)[:n_full]])
        t = tick("centroid interaction", t)
        score_slots(q, snap.tokens, snap.offsets, docs)
        tick("decode + exact MaxSim", t)
    n = len(queries) + 3
    total = sum(cost.values())
    rows = [f"| {k} | {v / n * 1000:.2f} | {v / total:.0%} |" for k, v in cost.items()]
    body = [
        f"Index `{h.repo_relative(args.index)}` ({n_live:,} documents, "
        f"{snap.codec.n_centroids:,} centroids, nbits={snap.codec.nbits}); {len(queries)} queries "
        f"from `{h.repo_relative(args.queries)}`; default budgets n_probe={n_probe}, "
        f"n_full_scores={n_full}, list scores keep {cc._PRERANK_FACTOR * n_full}. Per query: "
        f"{sizes['listed entries'] / n:,.0f} listed entries, "
        f"{sizes['distinct candidates'] / n:,.0f} distinct candidates.",
        "",
        "| stage | CPU ms per query | share |",
        "|---|---:|---:|",
        *rows,
        f"| total | {total / n * 1000:.2f} | 100% |",
    ]
    h.publish(args, "compressed", args.index.name, started, "Compressed search by stage", body,
              "stages")  # fmt: skip


if __name__ == "__main__":
    main()
