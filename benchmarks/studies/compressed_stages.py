"""Where a compressed search's time goes, stage by stage, on a saved index (CPU ms per query).

Replays ``centroid_candidates`` + exact scoring for each query with the index's default budgets,
timing each stage by process CPU time (steadier than wall time on a shared machine): centroid
probe (``Q @ C.T`` and the top ``n_probe``), inverted-list reads, distinct candidate slots, list
scores, centroid interaction, and decoding + exact MaxSim of the ``n_full_scores`` best. Run it
with one BLAS thread (``OPENBLAS_NUM_THREADS=1``) for single-thread figures. It also runs against
the code before the list-score change (commit e58d75e: ``PYTHONPATH=<that tree>/integrations``).

Usage (from the repository root; writes ``results/compressed-<index>-<stamp>-stages.md``):
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=integrations python -m benchmarks.studies.compressed_stages \\
        --index .cache/benchmarks/compressed-scale/d128-w100/index-n100000 \\
        --queries .cache/benchmarks/compressed-scale/d128-w100/queries --n-queries 100
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h
from benchmarks.studies._compressed_data import PrecomputedModel


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--queries", type=Path, required=True)
    p.add_argument("--n-queries", type=int, default=100)
    h.result_options(p)
    args = p.parse_args()
    started = dt.datetime.now()
    from late_interaction import LateInteractionIndex
    from late_interaction._index import centroid_candidates as cc
    from late_interaction.scoring import score_slots, score_slots_by_centroids

    queries = h.load_packed(args.queries)[: args.n_queries]
    index = LateInteractionIndex.load(args.index, model=PrecomputedModel(queries[0].shape[1]))
    snap = index._state.snap
    allowed = np.ones(len(snap.offsets) - 1, dtype=bool)
    n_live = len(index)
    n_probe, n_full = cc.default_budgets(None, None, n_live, 10)
    cost: dict[str, float] = {}
    sizes = {"listed entries": 0, "distinct candidates": 0}

    def tick(stage: str, since: float) -> float:
        now = time.process_time()
        cost[stage] = cost.get(stage, 0.0) + now - since
        return now

    for q in [*queries[:3], *queries]:  # three warm-up queries, counted again below
        t = time.process_time()
        table = snap.codec.centroids @ q.T
        cells = np.argpartition(-table, n_probe - 1, axis=0)[:n_probe]
        probed = np.unique(cells)
        t = tick("centroid probe", t)
        which, slots = snap.ivf.pairs_of(probed)
        t = tick("inverted lists", t)
        old_code = not hasattr(cc, "_distinct_slots")  # code before the list-score change
        if old_code:
            docs = np.unique(slots)
        else:
            docs, local = cc._distinct_slots(slots, len(allowed))
        sizes["listed entries"] += len(slots)
        sizes["distinct candidates"] += len(docs)
        t = tick("distinct slots", t)
        keep = cc._PRERANK_FACTOR * n_full
        if len(docs) > keep and old_code:
            docs = cc._best_by_list_scores(table, cells, probed, which, slots, keep)
        elif len(docs) > keep:
            docs = cc._best_by_list_scores(table, cells, probed, which, docs, local, keep)
        t = tick("list scores", t)
        if len(docs) > n_full:
            approx = score_slots_by_centroids(table, snap.codes, snap.offsets, docs)
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
