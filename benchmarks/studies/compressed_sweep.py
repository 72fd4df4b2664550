"""Search budgets of a saved compressed index: CPU ms per query, recall@10 against two references.

For each setting ``n_probe:n_full_scores[:prerank[:summed[:threshold]]]`` (``prerank``: documents
kept by list scores per document decoded, the module's ``_PRERANK_FACTOR``; ``summed`` 1: list
scores summed over a token's probed centroids, ``_LIST_SCORES_SUMMED``; ``threshold``: PLAID's
centroid-score pruning in the centroid interaction, :func:`thresholded_interaction`), every query
runs through ``LateInteractionIndex.search`` (k=10) in this process, timed by process CPU time
(steadier than wall time on the shared machine; run with one BLAS thread for single-thread
figures). The first setting also pays the first touches of the memory-mapped index: repeat it, or
compare in fresh processes (``compressed_ab``). Recall@10 is reported against

* exact brute-force MaxSim over the float32 passages (``--exact``: the ``exact`` top 10 of a
  ``compressed_scale`` run, passage ids), and
* brute-force MaxSim over the index's *decoded* vectors (the candidates' ceiling), computed once
  per index and cached beside it as ``decoded-top10-<index>.json`` under the index's parent.

Usage (from the repository root; writes ``benchmarks/results/compressed-<index>-<stamp>-sweep.md``):
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=integrations python -m benchmarks.studies.compressed_sweep \\
        --index .cache/benchmarks/compressed-scale/d128-w100/index-n100000 \\
        --queries .cache/benchmarks/compressed-scale/d128-w100/queries \\
        --exact .cache/benchmarks/compressed-scale/d128-w100/exact-n100000-t2.json \\
        --settings 9:573,4:128,2:64:4
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h
from benchmarks.studies._compressed_data import load_saved_index, saved_index_options
from benchmarks.studies.compressed_budgets import brute_force_top10


def decoded_top10(index, queries: list[np.ndarray], cache: Path) -> list[list[int]]:
    """Brute-force top 10 (passage ids as ints) over the decoded vectors, cached in ``cache``."""
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached["n_queries"] >= len(queries):
            return cached["decoded"][: len(queries)]
    snap = index._state.snap
    top = brute_force_top10(snap.tokens, snap.offsets, queries)
    decoded = [[int(snap.docs.ids[s]) for s in t.tolist()] for t in top]
    cache.write_text(json.dumps({"n_queries": len(queries), "decoded": decoded}))
    return decoded


def thresholded_interaction(threshold: float):
    """Centroid interaction with PLAID's pruning (study variant, not the library's).

    Tokens whose centroid scores below ``threshold`` against every query token are left out; a
    query token whose document keeps no token scores 0 there (colbert-ai's stage 2).
    """

    def score(by_query, codes, offsets, slots, chunk_tokens=65_536):
        relevant = by_query.max(axis=0) >= threshold
        starts, lengths = offsets[slots], offsets[slots + 1] - offsets[slots]
        local = np.zeros(len(slots) + 1, dtype=np.int64)
        np.cumsum(lengths, out=local[1:])
        rows = np.repeat(starts - local[:-1], lengths) + np.arange(local[-1])
        row_codes = codes[rows]
        kept = relevant[row_codes]
        doc = np.repeat(np.arange(len(slots)), lengths)[kept]
        sims = np.take(by_query, row_codes[kept], axis=1)
        n_kept = np.bincount(doc, minlength=len(slots))
        first = np.cumsum(n_kept) - n_kept
        out = np.zeros(len(slots), dtype=np.float32)
        if sims.shape[1]:
            best = np.maximum.reduceat(sims, np.minimum(first, sims.shape[1] - 1), axis=1)
            out[n_kept > 0] = best.sum(axis=0)[n_kept > 0]
        return out

    return score


def recall(runs: list[list[int]], reference: list[list[int]]) -> float:
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(runs, reference, strict=True)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    saved_index_options(p, exact=True)
    p.add_argument("--settings", default="default", help="n_probe:n_full[:prerank[:sum[:thr]]]")
    h.result_options(p)
    args = p.parse_args()
    started = dt.datetime.now()
    from late_interaction._index import centroid_candidates as cc

    index, queries = load_saved_index(args)
    exact = json.loads(args.exact.read_text())["exact"][: len(queries)]
    cache = args.index.parent / f"decoded-top10-{args.index.name}.json"
    decoded = decoded_top10(index, queries, cache)
    state = index._state
    base, prerank, summed = state.config, cc._PRERANK_FACTOR, cc._LIST_SCORES_SUMMED
    interaction = cc._interaction_scores
    rows = []
    for setting in args.settings.split(","):
        if setting == "default":
            config, factor, sums = base, prerank, summed
            n_probe, n_full = cc.default_budgets(None, None, len(index), 10)
        else:
            n_probe, n_full, *rest = (int(x) for x in setting.split(":")[:4])
            config = dataclasses.replace(base, n_probe=n_probe, n_full_scores=n_full)
            factor = rest[0] if rest else prerank
            sums = bool(rest[1]) if len(rest) > 1 else summed
        threshold = float(setting.split(":")[4]) if setting.count(":") >= 4 else None
        cc._interaction_scores = (
            interaction if threshold is None else thresholded_interaction(threshold)
        )
        state.config, cc._PRERANK_FACTOR, cc._LIST_SCORES_SUMMED = config, factor, sums
        for q in queries[:3]:  # warm-up
            index.search(q, 10)
        runs, cpu = [], []
        for q in queries:
            c0 = time.process_time()
            runs.append([int(x.id) for x in index.search(q, 10)])
            cpu.append(time.process_time() - c0)
        rows.append(
            f"| {setting} | {n_probe} | {n_full} | {factor * n_full} "
            f"| {np.median(cpu) * 1000:.2f} | {np.mean(cpu) * 1000:.2f} "
            f"| {recall(runs, exact):.3f} | {recall(runs, decoded):.3f} |"
        )
        print(rows[-1], flush=True)
    state.config, cc._PRERANK_FACTOR, cc._LIST_SCORES_SUMMED = base, prerank, summed
    cc._interaction_scores = interaction
    snap = index._state.snap
    body = [
        f"Index `{h.repo_relative(args.index)}` ({len(index):,} documents, "
        f"{snap.codec.n_centroids:,} centroids, nbits={snap.codec.nbits}); {len(queries)} queries "
        f"from `{h.repo_relative(args.queries)}`, k=10; exact reference "
        f"`{h.repo_relative(args.exact)}`; decoded brute force over the index's vectors "
        f"(`{h.repo_relative(cache)}`). Decoded brute force vs exact: "
        f"{recall(decoded, exact):.3f}. CPU time of `search` per query, this process.",
        "",
        "| setting | n_probe | n_full | kept by list scores | CPU p50 ms | CPU mean ms "
        "| R@10 vs exact | R@10 vs decoded |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    label = f"{args.index.parent.name}-{args.index.name}"
    h.publish(args, "compressed", label, started, "Compressed search budgets", body, "sweep")


if __name__ == "__main__":
    main()
