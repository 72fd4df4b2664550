"""Transient memory of the inverted lists' merges (compressed index), per code version.

Appends ``--passages`` passages in chunks of ``--chunk`` to ``InvertedLists`` (as
``add_embeddings`` does: ``--tokens`` tokens per passage, codes drawn so that a passage lists
about ``--distinct`` centroids of ``--centroids``), then reports the tracemalloc peak above the
lists' own size during the largest merge of the run, during the last append, and during
``arrays()`` (what ``save()`` writes). numpy buffers are traced, so this is the merge's scratch.

Run from the repository root, once per code version (a ``late_interaction`` source folder)::

    PYTHONPATH=integrations python -m benchmarks.studies.ivf_merge_memory \\
        --code main=/work/main/integrations,branch=integrations
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from benchmarks import _harness as h


def worker(args: argparse.Namespace) -> dict:
    from late_interaction._index.ivf import InvertedLists

    rng = np.random.default_rng(0)
    lists, slot = InvertedLists(args.centroids), 0
    worst = {"entries": 0, "scratch_mb": 0.0, "s": 0.0}
    tracemalloc.start()
    for _ in range(0, args.passages, args.chunk):
        # Each passage draws its tokens from `distinct` centroids (real passages repeat some).
        own = rng.integers(0, args.centroids, (args.chunk, args.distinct))
        codes = np.take_along_axis(
            own, rng.integers(0, args.distinct, (args.chunk, args.tokens)), 1
        )
        slots = np.repeat(np.arange(slot, slot + args.chunk), args.tokens)
        slot += args.chunk
        held = lists.nbytes()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        lists = lists.appended(codes.reshape(-1), slots)
        seconds = time.perf_counter() - t0
        scratch = tracemalloc.get_traced_memory()[1] - base - (lists.nbytes() - held)
        if scratch > worst["scratch_mb"] * 2**20:
            worst = {"entries": int(lists.nbytes() // 4), "scratch_mb": scratch / 2**20,
                     "s": seconds}  # fmt: skip
        last = {"scratch_mb": scratch / 2**20, "s": seconds}
        del codes, slots, own
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    _, slots = lists.arrays()
    save_s = time.perf_counter() - t0
    save_peak = (tracemalloc.get_traced_memory()[1] - base) / 2**20
    return {"entries": len(slots), "lists_mb": lists.nbytes() / 2**20, "worst": worst,
            "last": last, "arrays_peak_mb": save_peak, "arrays_mb": slots.nbytes / 2**20,
            "arrays_s": save_s}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--passages", type=int, default=200_000)
    p.add_argument("--chunk", type=int, default=5000)
    p.add_argument("--tokens", type=int, default=100)
    p.add_argument("--distinct", type=int, default=60)
    p.add_argument("--centroids", type=int, default=8192)
    p.add_argument("--code", default="branch=integrations", help="label=source folder, ...")
    h.result_options(p)
    args = p.parse_args()
    if args.worker:
        h.write_result(args.out, worker(args))
        return
    started, rows = dt.datetime.now(), []
    for label, code in (c.split("=", 1) for c in args.code.split(",")):
        out = h.CACHE / f"ivf-merge-{label}.json"
        env = {**os.environ, "PYTHONPATH": os.path.abspath(code)}
        flags = [f"--{k}={getattr(args, k)}" for k in ("passages", "chunk", "tokens", "distinct",
                                                         "centroids")]  # fmt: skip
        cmd = [sys.executable, "-m", __spec__.name, "--worker", "--out", str(out), *flags]
        subprocess.run(cmd, env=env, cwd=h.REPO, check=True)
        r = json.loads(out.read_text())
        w = r["worst"]
        rows.append(
            f"| {label} | {r['entries']:,} | {r['lists_mb']:,.0f} | {w['entries']:,} "
            f"| {w['scratch_mb']:,.0f} | {w['scratch_mb'] * 2**20 / max(w['entries'], 1):.1f} "
            f"| {w['s']:.2f} | {r['last']['scratch_mb']:,.0f} | {r['arrays_peak_mb']:,.0f} "
            f"| {r['arrays_s']:.2f} |"
        )
        print(rows[-1], flush=True)
    body = [
        f"{args.passages:,} passages of {args.tokens} tokens appended {args.chunk:,} at a time "
        f"(each passage's tokens drawn from {args.distinct} of {args.centroids:,} centroids). "
        "Scratch: tracemalloc peak during the append above the memory before it, less what the "
        "lists grew by. arrays(): the peak of the one merged CSR that save() writes (output "
        "included).",
        "",
        "| code | entries | lists MB | entries after worst merge | worst merge scratch MB "
        "| B per entry | worst merge s | last append scratch MB | arrays() peak MB | arrays() s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    h.publish(args, "compressed", "ivfmerge", started, "Inverted-list merge memory", body)


if __name__ == "__main__":
    main()
