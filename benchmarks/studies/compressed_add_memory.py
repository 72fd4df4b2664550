"""Peak RSS of adding a fixed chunk to a compressed index, against the corpus already indexed.

Issue 12: "adding a corpus streams in chunks so peak RSS grows with the chunk, not the corpus;
loading does not read everything into RAM". For each corpus size N and each code version (a
``late_interaction`` source folder, e.g. main's checkout and this branch's), one fresh process:

* builds a compressed index (``IndexConfig(nbits=...)``) of N passages by ``add_embeddings`` of
  ``--chunk`` passages at a time: one chunk of ``studies.compressed_scale``'s synthetic passages
  (runs of SciFact's real token vectors projected to dim 128, with noise), made once and added
  again under new ids, so the generator's memory stays out of the measurement;
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

    # One chunk of synthetic passages, made once and added again under new ids: what is
    # measured is the index's memory, not the generator's (glibc keeps its freed blocks).
    passages = Passages(args.data, args).chunk(20_000, 20_000 + args.chunk)
    chunk_tokens = sum(p.shape[0] for p in passages)
    index = LateInteractionIndex(PrecomputedModel(args.dim), config=IndexConfig(nbits=args.nbits))
    start = {"rss": h.rss_mb(), "anon": _status_mb("RssAnon"), "file": _status_mb("RssFile")}
    t0 = time.perf_counter()
    for first in range(0, args.size, args.chunk):
        if first + args.chunk >= args.size:  # the last chunk: its own peak
            build_peak = h.peak_rss_mb()
            before = h.rss_mb()
            h.reset_peak_rss()
        ids = [str(first + i) for i in range(len(passages))]
        index.add_embeddings(passages, [""] * len(passages), ids=ids)
    add_peak = h.peak_rss_mb()
    build_s = time.perf_counter() - t0
    after = {"rss": h.rss_mb(), "anon": _status_mb("RssAnon"), "file": _status_mb("RssFile")}
    shutil.rmtree(args.index, ignore_errors=True)
    with h.MemoryWindow() as save:
        index.save(args.index)
    state = index._state
    return {
        "tokens": state.store.n_tokens, "chunk_tokens": chunk_tokens, "build_s": build_s,
        "store_mb": state.store.nbytes() / 2**20, "ivf_mb": state.ivf.nbytes() / 2**20,
        "start": start, "after": after, "last_add_peak_above_mb": add_peak - before,
        "save_peak_above_mb": save.result()["peak_increment_mb"],
        "process_peak_mb": max(build_peak, add_peak, save.peak),
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
            peak = b["process_peak_mb"]
            rows.append(
                f"| {label} | {size:,} | {b['tokens']:,} | {b['store_mb'] + b['ivf_mb']:,.0f} "
                f"| {b['start']['rss']:,.0f} | {peak:,.0f} | {peak - b['start']['rss']:,.0f} "
                f"| {b['last_add_peak_above_mb']:,.0f} "
                f"| {b['after']['anon'] - b['start']['anon']:,.0f} "
                f"| {b['after']['anon']:,.0f} / {b['after']['file']:,.0f} "
                f"| {b['save_peak_above_mb']:,.0f} | {ld['load']['peak_increment_mb']:,.0f} "
                f"| {b['build_s']:.0f} |"
            )
            print(rows[-1], flush=True)
    body = [
        "Data: `studies.compressed_scale`'s passages (SciFact's real token vectors projected to "
        f"dim 128, then synthetic runs of real tokens with noise), nbits={args.nbits}, "
        f"add_embeddings per {args.chunk:,} passages (one chunk made once and added again under "
        "new ids), 2 BLAS threads, each row a fresh process. Start: RSS once the chunk is made "
        "(the real vectors it is cut from included). Peak: the process's peak RSS over build "
        "and save; above start: that minus start. Last add: peak during the last chunk's add "
        "above the RSS before it (the kernel's peak mark reset). Anon growth: RssAnon after the "
        "build minus at start. Load: fresh process, peak above its start while loading and "
        "searching once.",
        "",
        "| code | passages | tokens | store + lists MB | start MB | peak MB | peak above start MB "
        "| last add peak above MB | anon growth MB | RssAnon / RssFile after MB "
        "| save peak above MB | load + 1 search MB | build s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    h.publish(args, "compressed", "addmemory", started, "Peak RSS of an add vs corpus size", body)


if __name__ == "__main__":
    main()
