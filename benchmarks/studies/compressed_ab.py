"""Search latency of a saved compressed index under two versions of the code, interleaved.

The "before" code is ``integrations/`` of ``--before`` (a commit, unpacked with ``git archive``
into a temporary folder); "after" is this checkout's. Each round runs one fresh single-thread
process per version (BLAS/OpenMP limited to ``--threads``), alternating, so load from other jobs
on a shared machine hits both alike. Each process loads the index (memory-mapped), warms up on
three queries and times every query at k=10. Reports p50 / p95 per round, and whether the two
versions return the same ids.

Usage (from the repository root; writes ``benchmarks/results/compressed-<label>-<stamp>-ab.md``):
    PYTHONPATH=integrations python -m benchmarks.studies.compressed_ab --before <commit> \\
        --index .cache/benchmarks/compressed-scale/d128-w100/index-n100000 \\
        --queries .cache/benchmarks/compressed-scale/d128-w100/queries --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h
from benchmarks.studies.compressed_index import THREAD_VARS


def worker(index: Path, queries: Path, n: int, budgets: str | None = None) -> dict:
    from benchmarks.studies._compressed_data import PrecomputedModel
    from late_interaction import LateInteractionIndex

    qs = h.load_packed(queries)[:n]
    ix = LateInteractionIndex.load(index, model=PrecomputedModel(qs[0].shape[1]))
    if budgets:  # n_probe:n_full_scores instead of the defaults
        n_probe, n_full = (int(x) for x in budgets.split(":"))
        config = dataclasses.replace(ix.config, n_probe=n_probe, n_full_scores=n_full)
        ix._state.config = config
    for q in qs[:3]:
        ix.search(q, 10)
    runs, times, cpu = [], [], []
    for q in qs:  # CPU time too: on a shared machine it moves less than wall time
        t0, c0 = time.perf_counter(), time.process_time()
        runs.append([x.id for x in ix.search(q, 10)])
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"latency": h.latency_stats(times), "cpu": h.latency_stats(cpu), "runs": runs,
            "load_avg": os.getloadavg()}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--before", help="commit (or integrations/ folder) before")
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--queries", type=Path, required=True)
    p.add_argument("--n-queries", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--budgets", default=None, help="n_probe:n_full_scores (default: the index's)")
    p.add_argument(
        "--exact",
        type=Path,
        default=None,
        help="brute-force reference (a compressed_scale exact-n*.json): also report recall@10",
    )
    h.result_options(p)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.index, args.queries, args.n_queries, args.budgets)))
        return
    started = dt.datetime.now()
    with tempfile.TemporaryDirectory() as tmp:
        if Path(args.before).is_dir():  # an unpacked tree's integrations/ folder
            before = Path(args.before).resolve()
        else:
            archive = subprocess.run(
                ["git", "archive", args.before, "integrations"], cwd=h.REPO, capture_output=True,
                check=True,
            ).stdout  # fmt: skip
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            before = Path(tmp) / "integrations"
        roots = {"before": before, "after": h.REPO / "integrations"}
        rows, results = [], {}
        for r in range(args.rounds):
            for label, root in roots.items():
                env = {**os.environ, **dict.fromkeys(THREAD_VARS, str(args.threads))}
                env["PYTHONPATH"] = f"{root}{os.pathsep}{h.REPO}"
                cmd = [sys.executable, "-m", __spec__.name, "--worker", "--index",
                       str(args.index.resolve()), "--queries", str(args.queries.resolve()),
                       "--n-queries", str(args.n_queries)]  # fmt: skip
                if args.budgets:
                    cmd += ["--budgets", args.budgets]
                t0 = time.perf_counter()
                out = subprocess.run(cmd, env=env, cwd=h.REPO, capture_output=True, text=True)
                if out.returncode != 0:
                    raise RuntimeError(out.stderr[-3000:])
                res = json.loads(out.stdout.splitlines()[-1])
                results.setdefault(label, []).append(res)
                lat = res["latency"]
                rows.append(
                    f"| {r + 1} | {label} | {lat['p50_ms']:.2f} | {lat['p95_ms']:.2f} "
                    f"| {lat['mean_ms']:.2f} | {res['cpu']['p50_ms']:.2f} "
                    f"| {res['load_avg'][0]:.1f} "
                    f"| {time.perf_counter() - t0:.0f} |"
                )
                print(rows[-1], flush=True)
    same = np.mean(
        [
            a == b
            for a, b in zip(results["before"][0]["runs"], results["after"][0]["runs"], strict=True)
        ]
    )
    med = {k: np.median([x["latency"]["p50_ms"] for x in v]) for k, v in results.items()}
    cpu = {k: np.median([x["cpu"]["p50_ms"] for x in v]) for k, v in results.items()}
    body = [
        f"Index `{h.repo_relative(args.index)}`, {args.n_queries} queries from "
        f"`{h.repo_relative(args.queries)}`, k=10, budgets {args.budgets or 'default'}, "
        f"{args.threads} BLAS thread(s); before = "
        f"`integrations/` of {args.before}, after = this checkout. Rounds alternate the two.",
        "",
        "| round | code | p50 ms | p95 ms | mean ms | CPU p50 ms | load (1 min) | process s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Median p50: before {med['before']:.2f} ms, after {med['after']:.2f} ms "
        f"({med['before'] / med['after']:.2f}x); median CPU p50: before {cpu['before']:.2f} ms, "
        f"after {cpu['after']:.2f} ms ({cpu['before'] / cpu['after']:.2f}x). "
        f"Queries with identical top-10 ids: {same:.3f}.",
    ]
    if args.exact is not None:
        exact = json.loads(args.exact.read_text())["exact"]

        def recall_of(runs: list) -> float:
            pairs = zip(runs, exact, strict=False)  # the reference may hold fewer queries
            return float(np.mean([len(set(map(int, a)) & set(b)) / 10 for a, b in pairs]))

        recall = {k: recall_of(v[0]["runs"]) for k, v in results.items()}
        body.append(
            f"Recall@10 vs `{h.repo_relative(args.exact)}` (first {len(exact)} queries): before "
            f"{recall['before']:.4f}, after {recall['after']:.4f}."
        )
    label = f"{args.index.parent.name}-{args.index.name}"
    h.publish(args, "compressed", label, started, "Compressed search, before vs after", body, "ab")


if __name__ == "__main__":
    main()
