"""Nearest-centroid assignment of the codec: tokens/s per core and agreement with exact assignment.

Loads the centroids of saved compressed indexes and real token vectors (the projected SciFact
windows of ``compressed_scale``), and times ``NearestCentroid`` (two-level) by process CPU time
for each ``groups:overlap`` shape (``library``: the current default), reporting the fraction of
tokens given the exact nearest centroid and the mean score gap to it (on ``--check`` tokens,
against exact ``X @ C.T`` argmax). Run with one BLAS thread for per-core figures.

Usage (from the repository root; writes ``benchmarks/results/compressed-assign-<stamp>.md``):
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=integrations python -m benchmarks.studies.compressed_assign \\
        --indexes .cache/benchmarks/compressed-scale/d128-w100/index-n100000 \\
        --tokens .cache/benchmarks/compressed-scale/d128-w100/windows --shapes library,32:4,128:8
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--indexes", required=True, help="comma-separated saved index folders")
    p.add_argument("--tokens", type=Path, required=True, help="packed token folder")
    p.add_argument("--n-tokens", type=int, default=200_000)
    p.add_argument("--check", type=int, default=20_000)
    p.add_argument("--shapes", default="library")
    h.result_options(p)
    args = p.parse_args()
    started = dt.datetime.now()
    from late_interaction._index.kmeans import NearestCentroid

    tokens = np.load(args.tokens / "tokens.npy", mmap_mode="r")
    start = len(tokens) // 2  # tokens from the middle of the corpus, away from the first add
    x = np.asarray(tokens[start : start + args.n_tokens], dtype=np.float32)
    rows = []
    for folder in args.indexes.split(","):
        centroids = np.load(Path(folder) / "codec_centroids.npy").astype(np.float32)
        exact = NearestCentroid(centroids, exact=True)(x[: args.check])
        best = np.einsum("ij,ij->i", x[: args.check], centroids[exact])
        for shape in args.shapes.split(","):
            kwargs = {}
            if shape != "library":
                groups, overlap = (int(v) for v in shape.split(":"))
                kwargs = {"n_groups": groups, "overlap": overlap}
            nearest = NearestCentroid(centroids, **kwargs)
            c0 = time.process_time()
            got = nearest(x)
            cpu = time.process_time() - c0
            gap = best - np.einsum("ij,ij->i", x[: args.check], centroids[got[: args.check]])
            rows.append(
                f"| {len(centroids):,} | {shape} | {len(nearest.groups)} "
                f"| {np.mean([len(g) for g in nearest.groups]):,.0f} | {len(x) / cpu:,.0f} "
                f"| {np.mean(got[: args.check] == exact):.4f} | {gap.mean():.5f} |"
            )
            print(rows[-1], flush=True)
    body = [
        f"{len(x):,} real token vectors from `{h.repo_relative(args.tokens)}` (from its middle); "
        f"agreement on the first {args.check:,}. Tokens/s: process CPU time of the assignment.",
        "",
        "| centroids | shape | groups | centroids per group | tokens/s per core (CPU) "
        "| exact nearest | mean score gap |",
        "|---:|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    h.publish(args, "compressed", "assign", started, "Nearest-centroid assignment", body)


if __name__ == "__main__":
    main()
