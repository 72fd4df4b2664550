"""Peak RSS of adding a fixed chunk to a compressed index, against the corpus already indexed.

Issue 12: "adding a corpus streams in chunks so peak RSS grows with the chunk, not the corpus;
loading does not read everything into RAM". For each corpus size N and each code version (a
``late_interaction`` source folder, e.g. main's checkout and this branch's), one fresh process:

* builds a compressed index (``IndexConfig(nbits=...)``) of N passages by ``add_embeddings`` of
  ``--chunk`` passages at a time, the passages of ``studies.compressed_scale`` (SciFact's real
  token vectors projected to dim 128, then synthetic runs around them; made chunk by chunk);
* measures the add of the last chunk alone: the peak RSS during it above the RSS before it
  (``/proc/self/clear_refs`` resets the peak), and RSS split into anonymous and file-backed;
* saves the index (peak above the RSS before the save);

then a second fresh process loads the saved index and runs one search (RSS above the start).

Run from the repository root (writes ``benchmarks/results/compressed-addmemory-<stamp>.md``)::

    PYTHONPATH=integrations python -m benchmarks.studies.compressed_add_memory \\
        --sizes 10000,30000,60000 --code main=/work/main/integrations,branch=integrations
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _harness as h

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1]) / 1024
    return float("nan")


def worker_build(args: argparse.Namespace) -> dict:
    from benchmarks.studies._compressed_data import PrecomputedModel
    from benchmarks.studies.compressed_scale import Passages
    from late_interaction import IndexConfig, LateInteractionIndex

    source = Passages(args.data, args)
    index = LateInteractionIndex(PrecomputedModel(args.dim), config=IndexConfig(nbits=args.nbits))
    last_first = args.size - args.chunk
    t0, tokens = time.perf_counter(), 0
    for first, passages in source.blocks(last_first, args.chunk):
        index.add_embeddings(
            passages, [""] * len(passages), ids=[str(first + i) for i in range(len(passages))]
        )
        tokens += sum(p.shape[0] for p in passages)
    passages = source.chunk(last_first, args.size)
    chunk_tokens = sum(p.shape[0] for p in passages)
    before = {"rss": h.rss_mb(), "anon": _status_mb("RssAnon"), "file": _status_mb("RssFile")}
    with h.MemoryWindow() as add:
        index.add_embeddings(
            passages, [""] * len(passages), ids=[str(last_first + i) for i in range(len(passages))]
        )
    after = {"rss": h.rss_mb(), "anon": _status_mb("RssAnon"), "file": _status_mb("RssFile")}
    del passages
    shutil.rmtree(args.index, ignore_errors=True)
    with h.MemoryWindow() as save:
        index.save(args.index)
    state = index._state
    return {
        "tokens": tokens + chunk_tokens, "chunk_tokens": chunk_tokens,
        "build_s": time.perf_counter() - t0, "store_mb": state.store.nbytes() / 2**20,
        "ivf_mb": state.ivf.nbytes() / 2**20, "before": before, "after": after,
        "add": add.result(), "save": save.result(), "process_peak_mb": h.peak_rss_mb(),
    }  # fmt: skip


def worker_load(args: argparse.Namespace) -> dict:
    import numpy as np

    from benchmarks.studies._compressed_data import PrecomputedModel
    from late_interaction import LateInteractionIndex

    query = np.load(args.data / "queries" / "tokens.npy")[:32].astype(np.float32)
    with h.MemoryWindow() as mem:
        index = LateInteractionIndex.load(args.index, model=PrecomputedModel(args.dim))
        loaded = h.rss_mb()
        index.search(query, 10)
    return {"load": mem.result(), "after_load_mb": loaded}


def spawn(worker: str, code: str, args: argparse.Namespace, index: Path, size: int) -> dict:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, "2"), "PYTHONPATH": str(Path(code).resolve())}
    cmd = [sys.executable, "-m", __spec__.name, "--worker", worker, "--size", str(size),
           "--index", str(index), "--out", str(out), "--chunk", str(args.chunk),
           "--data", str(args.data), "--nbits", str(args.nbits)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=h.REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{worker} {code} n={size} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(out.read_text())
    out.unlink()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", choices=["build", "load"], help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--sizes", default="10000,30000,60000")
    p.add_argument("--chunk", type=int, default=5000)
    p.add_argument("--nbits", type=int, default=2)
    p.add_argument("--code", default="branch=integrations", help="label=source folder, ...")
    p.add_argument("--data", type=Path, default=h.CACHE / "compressed-scale" / "d128-w100")
    p.add_argument("--work-dir", type=Path, default=h.CACHE / "compressed-add-memory")
    h.result_options(p)
    args = p.parse_args()
    # What compressed_scale.Passages reads (its defaults): 100-token passages of 4 runs.
    args.dim, args.passage_tokens, args.segments, args.noise, args.seed = 128, 100, 4, 0.02, 0
    if args.worker:
        h.write_result(args.out, {"build": worker_build, "load": worker_load}[args.worker](args))
        return
    if not (args.data / "queries").exists():
        sys.exit(f"{args.data} lacks the study data; run studies.compressed_scale once first.")
    started = dt.datetime.now()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for label, code in (c.split("=", 1) for c in args.code.split(",")):
            index = args.work_dir / f"{label}-n{size}"
            b = spawn("build", code, args, index, size)
            ld = spawn("load", code, args, index, size)
            shutil.rmtree(index, ignore_errors=True)
            mb = b["tokens"] / 1e6
            rows.append(
                f"| {label} | {size:,} | {b['tokens']:,} | {b['store_mb'] + b['ivf_mb']:,.0f} "
                f"| {b['add']['peak_increment_mb']:,.0f} "
                f"| {b['add']['peak_increment_mb'] / (b['chunk_tokens'] / 1e6):,.0f} "
                f"| {b['after']['anon'] - b['before']['anon']:,.0f} "
                f"| {b['after']['anon']:,.0f} / {b['after']['file']:,.0f} "
                f"| {b['process_peak_mb']:,.0f} | {b['save']['peak_increment_mb']:,.0f} "
                f"| {ld['load']['peak_increment_mb']:,.0f} | {b['build_s']:.0f} |"
            )
            print(rows[-1], f"({mb:.1f}M tokens)", flush=True)
    body = [
        "Data: `studies.compressed_scale`'s passages (SciFact's real token vectors projected to "
        f"dim 128, then synthetic runs of real tokens with noise), nbits={args.nbits}, "
        f"add_embeddings per {args.chunk:,} passages, 2 BLAS threads, each row a fresh process. "
        "Last-chunk peak: peak RSS during the add of the last chunk above the RSS just before "
        "it (the kernel's peak mark reset). Anon growth: RssAnon after that add minus before. "
        "Process peak: whole build (includes the passage generator's ~0.7 GB of real vectors). "
        "Load: fresh process, peak above its start while loading and searching once.",
        "",
        "| code | corpus passages | tokens | store + lists MB | last-chunk peak MB "
        "| last-chunk peak B/chunk token | anon growth MB | RssAnon / RssFile after MB "
        "| process peak MB | save peak MB | load + 1 search MB | build s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    h.publish(args, "compressed", "addmemory", started, "Peak RSS of an add vs corpus size", body)


if __name__ == "__main__":
    main()
