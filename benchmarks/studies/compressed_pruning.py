"""How well each pruning stage of a compressed search keeps the top 10: recall by stage budgets.

On a saved compressed index, for each query: the centroid probe (``--n-probe``), list scores keep
``L`` documents, the centroid interaction keeps ``m`` of them, and exact MaxSim on the decoded
vectors ranks those ``m`` (the library's pipeline, with ``L`` and ``m`` free instead of ``4 m`` and
``n_full_scores``). ``m = L`` ("no CI") skips the centroid interaction. List scores are the
library's (0 where a query token's probed centroids do not list the document) or, as a variant,
WARP's imputation: such a query token counts the best score among the centroids it did not probe
(an upper bound of what the document's tokens could give it). Recall@10 against exact brute force
(``--exact``) and brute force over the decoded vectors (``decoded-top10-<index>.json`` beside the
index, from ``compressed_sweep``). No timing: the cost of each stage is ``compressed_stages``'.

Usage (from the repository root; writes ``results/compressed-<index>-<stamp>-pruning.md``):
    PYTHONPATH=integrations python -m benchmarks.studies.compressed_pruning \\
        --index .cache/benchmarks/compressed-scale/d128-w100/index-n100000 \\
        --queries .cache/benchmarks/compressed-scale/d128-w100/queries \\
        --exact .cache/benchmarks/compressed-scale/d128-w100/exact-n100000-t2.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json

import numpy as np

from benchmarks import _harness as h
from benchmarks.studies._compressed_data import load_saved_index, saved_index_options


def list_scores(by_query, cell_of, probed, which, n_docs, local, floor):
    """Per document, the sum over query tokens of the best probed centroid listing it, or ``floor``.

    The library's ``_best_by_list_scores`` before its cut, with a per-token floor (study variant).
    """
    n_query, probe = cell_of.shape
    tokens = np.repeat(np.arange(n_query), probe)
    scores = np.repeat(floor.astype(np.float32), n_docs)
    entry_cells = [np.flatnonzero(cell_of.ravel() == p) for p in range(len(probed))]
    for rank in range(max(len(c) for c in entry_cells)):
        token_at = np.full(len(probed), -1, dtype=np.int64)
        for p, cells in enumerate(entry_cells):
            if len(cells) > rank:
                token_at[p] = tokens[cells[rank]]
        at = token_at[which] >= 0
        score_at = by_query[token_at[which[at]], probed[which[at]]]
        np.maximum.at(scores, token_at[which[at]] * n_docs + local[at], score_at)
    return scores.reshape(n_query, n_docs).sum(axis=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    saved_index_options(p, exact=True)
    p.add_argument("--n-probe", type=int, default=None, help="default: the library's")
    p.add_argument("--keep", default="1146,2292,4096", help="L: kept by list scores")
    p.add_argument("--full", default="64,128,256,384,573", help="m: decoded and scored exactly")
    h.result_options(p)
    args = p.parse_args()
    started = dt.datetime.now()
    from late_interaction._index import centroid_candidates as cc
    from late_interaction.scoring import score_slots

    index, queries = load_saved_index(args)
    snap = index._state.snap
    ids, offsets = snap.docs.ids, snap.offsets
    exact = json.loads(args.exact.read_text())["exact"]
    decoded_file = args.index.parent / f"decoded-top10-{args.index.name}.json"
    decoded = json.loads(decoded_file.read_text())["decoded"]
    n_probe = cc.default_budgets(args.n_probe, None, len(index), 10)[0]
    keeps = [int(x) for x in args.keep.split(",")]
    fulls = [int(x) for x in args.full.split(",")]
    found: dict[tuple[str, int, int], list[tuple[float, float]]] = {}
    for i, q in enumerate(queries):
        by_query = cc._query_centroid_scores(q, snap.codec.centroids)
        cells = cc._top_cells(by_query, n_probe)
        probed, cell_of = np.unique(cells, return_inverse=True)
        which, slots = snap.ivf.pairs_of(probed)
        docs, local = cc._distinct_slots(slots, len(offsets) - 1)
        unprobed_best = -np.partition(-by_query, n_probe, axis=1)[:, n_probe]
        for name, floor in (("0", np.zeros(len(q))), ("imputed", unprobed_best)):
            listed = list_scores(by_query, cell_of.reshape(cells.shape), probed, which, len(docs),
                                 local, floor)  # fmt: skip
            order = docs[np.lexsort((docs, -listed))]
            for keep in keeps:
                kept = np.sort(order[:keep])
                approx = cc._interaction_scores(by_query, snap.codes, offsets, kept)
                by_ci = kept[np.lexsort((kept, -approx))]
                pairs = [(m, by_ci[:m]) for m in fulls if m < keep] + [(keep, order[:keep])]
                for m, chosen in pairs:
                    chosen = np.sort(chosen)
                    scores = score_slots(q, snap.tokens, offsets, chosen)
                    top = {int(ids[x]) for x in chosen[np.lexsort((chosen, -scores))[:10]]}
                    found.setdefault((name, keep, m), []).append(
                        (len(top & set(exact[i])) / 10, len(top & set(decoded[i])) / 10)
                    )
    rows = []
    for (name, keep, m), hits in sorted(found.items()):
        r = np.mean(hits, axis=0)
        stage = "no CI" if m == keep else f"CI keeps {m}"
        rows.append(f"| {name} | {keep} | {stage} | {r[0]:.3f} | {r[1]:.3f} |")
    body = [
        f"Index `{h.repo_relative(args.index)}` ({len(index):,} documents, "
        f"{snap.codec.n_centroids:,} centroids, nbits={snap.codec.nbits}); {len(queries)} "
        f"queries; n_probe={n_probe}. The library's default at this size keeps "
        f"{cc._PRERANK_FACTOR * cc.default_budgets(None, None, len(index), 10)[1]} by list scores "
        f"and {cc.default_budgets(None, None, len(index), 10)[1]} by the centroid interaction.",
        "",
        "| list score floor | kept by list scores (L) | then | R@10 vs exact | R@10 vs decoded |",
        "|---|---:|---|---:|---:|",
        *rows,
    ]
    h.publish(args, "compressed", args.index.name, started, "Compressed pruning stages, recall",
              body, "pruning")  # fmt: skip


if __name__ == "__main__":
    main()
