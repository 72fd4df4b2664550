"""Build speed of a compressed index under two versions of the code, interleaved, with recall.

The "before" code is ``integrations/`` of ``--before`` (a commit, unpacked with ``git archive``);
"after" is this checkout's. Each round builds the same ``compressed_scale`` passages (synthetic
around real vectors, ``--size`` of them, ``add_embeddings`` per 5,000) once per version, each in a
fresh process with ``--threads`` BLAS threads, alternating, and reports add time, process CPU
time and tokens per CPU second. The last round's indexes are then searched (default budgets,
k=10, 1 thread) and compared with the exact top 10 of the ``compressed_scale`` run, and their
saved arrays (codec, codes, residuals, inverted lists, offsets) are compared byte for byte.

Usage (from the repository root; writes ``benchmarks/results/compressed-build<n>-<stamp>-ab.md``):
    PYTHONPATH=integrations python -m benchmarks.studies.compressed_build_ab --before <commit> \\
        --size 20000 --rounds 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import _harness as h
from benchmarks.studies.compressed_index import THREAD_VARS

SCALE = h.CACHE / "compressed-scale" / "d128-w100"


def search_worker(folder: Path, size: int) -> dict:
    from benchmarks.studies._compressed_data import PrecomputedModel
    from late_interaction import LateInteractionIndex

    queries = h.load_packed(SCALE / "queries")
    index = LateInteractionIndex.load(folder / f"index-n{size}", model=PrecomputedModel(128))
    return {"runs": [[int(x.id) for x in index.search(q, 10)] for q in queries[:100]],
            "n_centroids": index._state.store.codec.n_centroids}  # fmt: skip


def same_arrays(folders: dict[str, Path]) -> str:
    """Which saved ``.npy`` arrays of the two indexes are byte-identical, and which differ."""
    digests = {
        label: {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("*.npy"))
            if p.name != "codec_drift.npy"  # float sums: the summation order may differ
        }
        for label, folder in folders.items()
    }
    before, after = digests["before"], digests["after"]
    same = sorted(n for n in before if after.get(n) == before[n])
    differ = sorted(set(before) ^ set(after) | {n for n in before if n in after} - set(same))
    # codec_drift.npy: [trained residual, tokens, sum of squared residual norms, last add's two]
    drift = {k: np.load(f / "codec_drift.npy") for k, f in folders.items()}
    mean = {k: d[2] / d[1] for k, d in drift.items()}
    return (
        f"identical: {', '.join(same) or 'none'}; different: {', '.join(differ) or 'none'}. "
        f"Mean squared residual norm per token (the codec's error): before {mean['before']:.5f}, "
        f"after {mean['after']:.5f}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--search-worker", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--before", default="HEAD")
    p.add_argument("--size", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-centroids", type=int, default=None, help="default: the library's rule")
    h.result_options(p)
    args = p.parse_args()
    if args.search_worker:
        print(json.dumps(search_worker(args.search_worker, args.size)))
        return
    started = dt.datetime.now()
    exact = json.loads((SCALE / f"exact-n{args.size}-t2.json").read_text())["exact"]
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", args.before, "integrations"], cwd=h.REPO,
                                 capture_output=True, check=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        roots = {"before": Path(tmp) / "integrations", "after": h.REPO / "integrations"}
        rows, results, recalls, identity = [], {}, {}, ""
        for r in range(args.rounds):
            for label, root in roots.items():
                folder = Path(tmp) / label
                folder.mkdir(exist_ok=True)
                for part in ("windows", "queries"):
                    if not (folder / part).exists():
                        (folder / part).symlink_to(SCALE / part)
                env = {**os.environ, **dict.fromkeys(THREAD_VARS, str(args.threads))}
                env["PYTHONPATH"] = f"{root}{os.pathsep}{h.REPO}"
                out = folder / "build.json"
                cmd = [sys.executable, "-m", "benchmarks.studies.compressed_scale", "--worker",
                       "build", "--size", str(args.size), "--folder", str(folder), "--out",
                       str(out)]  # fmt: skip
                if args.n_centroids:
                    cmd += ["--n-centroids", str(args.n_centroids)]
                subprocess.run(cmd, env=env, cwd=h.REPO, check=True, capture_output=True)
                b = json.loads(out.read_text())
                results.setdefault(label, []).append(b)
                rows.append(
                    f"| {r + 1} | {label} | {b['n_centroids']:,} | {b['add_s']:.1f} "
                    f"| {b['cpu_s']:.1f} | {b['tokens'] / b['cpu_s']:,.0f} "
                    f"| {b['load_avg'][0]:.1f} |"
                )
                print(rows[-1], flush=True)
                if r == args.rounds - 1:
                    env = {**env, **dict.fromkeys(THREAD_VARS, "1")}
                    cmd = [sys.executable, "-m", __spec__.name, "--search-worker", str(folder),
                           "--size", str(args.size)]  # fmt: skip
                    res = subprocess.run(cmd, env=env, cwd=h.REPO, check=True,
                                         capture_output=True, text=True)  # fmt: skip
                    runs = json.loads(res.stdout.splitlines()[-1])["runs"]
                    recalls[label] = np.mean(
                        [len(set(a) & set(b)) / 10 for a, b in zip(runs, exact, strict=False)]
                    )
        identity = same_arrays({k: Path(tmp) / k / f"index-n{args.size}" for k in roots})
    tps = {k: np.median([b["tokens"] / b["cpu_s"] for b in v]) for k, v in results.items()}
    wall = {k: np.median([b["tokens"] / b["add_s"] for b in v]) for k, v in results.items()}
    body = [
        f"{args.size:,} `compressed_scale` passages (synthetic around real SciFact vectors, "
        f"dim 128, nbits=2, {results['after'][0]['tokens']:,} tokens, adds of 5,000), "
        f"{args.threads} BLAS thread(s); before = `integrations/` of {args.before}, after = "
        "this checkout; rounds alternate the two, each build in a fresh process. CPU s: "
        "process CPU time of the adds.",
        "",
        "| round | code | centroids | add s (wall) | CPU s | tokens per CPU s | load (1 min) |",
        "|---:|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Median tokens per CPU second: before {tps['before']:,.0f}, after {tps['after']:,.0f} "
        f"({tps['after'] / tps['before']:.2f}x); median tokens per wall second: before "
        f"{wall['before']:,.0f}, after {wall['after']:,.0f} ({wall['after'] / wall['before']:.2f}x)"
        ". Recall@10 vs exact brute force (100 queries, "
        f"default budgets, last round's indexes): before {recalls['before']:.3f}, after "
        f"{recalls['after']:.3f}.",
        "",
        f"Saved arrays of the last round's indexes, before vs after: {identity}.",
    ]
    h.publish(args, "compressed", f"build{args.size}", started, "Compressed build, before vs after",
              body, "ab")  # fmt: skip


if __name__ == "__main__":
    main()
