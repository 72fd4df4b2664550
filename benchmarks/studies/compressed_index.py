"""Compressed index (IndexConfig(nbits=1|2|4)) vs the exact float16 store, on cached embeddings.

For each dataset: the embedded default model's token matrices (cached once, encoding never
timed; ``--dim 128`` passes them through a seeded random projection and renormalises, a synthetic
stand-in for a 128-d checkpoint, said in the output), exact brute-force MaxSim over the float16
vectors as the reference ranking, then per setting (the float16 store with its token HNSW, and
nbits 1 / 2 / 4) one fresh process that builds the index with ``add_embeddings`` and saves it,
and one fresh process per thread count that loads it and searches every query at k=10:

* build: wall and CPU seconds (encoding excluded), peak RSS above the process's RSS with the
  corpus already in RAM;
* bytes per token: on disk (saved folder without ``docs.jsonl``) and in RAM (store arrays +
  inverted lists; centroids excluded);
* search: p50 / p95 per query with BLAS/OpenMP limited to 1 and to 2 threads (environment set
  before the worker starts), and the RSS the loaded, memory-mapped index adds after all queries;
* nDCG@10 against the qrels and recall@10 against the exact reference (1-thread run).

Usage (from the repository root; writes
``benchmarks/results/compressed-<datasets>-<stamp>[-d<dim>][-<tag>].md``):
    PYTHONPATH=integrations python -u -m benchmarks.studies.compressed_index \\
        [--datasets cranfield,scifact] [--nbits 1,2,4] [--no-fp16] [--dim 128] [--queries N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h
from benchmarks.studies._compressed_data import (
    SHARED_DATA,
    PrecomputedModel,
    dataset_embeddings,
    load_beir,
    ndcg_at_k,
    overlap_at_k,
    timed_searches,
)
from benchmarks.studies.compressed_budgets import brute_force_top10
from benchmarks.studies.compressed_build import project

FAST = {"exact_scan_tokens": 0, "exact_scan_fraction": 0.0}  # always the candidate path
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def config_of(setting: str, args: argparse.Namespace):
    from late_interaction import IndexConfig

    if setting == "fp16":
        return IndexConfig(**FAST)
    return IndexConfig(
        nbits=int(setting.split("=")[1]), n_centroids=args.n_centroids, n_probe=args.n_probe,
        **FAST,
    )  # fmt: skip


def _threads() -> list:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [(d["internal_api"], d["num_threads"]) for d in threadpool_info()]


# --- workers (fresh processes, thread limits set in their environment) ------------------------


def worker_build(folder: Path, setting: str, args: argparse.Namespace) -> dict:
    from late_interaction import LateInteractionIndex

    tokens = np.array(np.load(folder / "docs" / "tokens.npy"))  # in RAM before the window
    offsets = np.load(folder / "docs" / "offsets.npy")
    docs = [tokens[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    index = LateInteractionIndex(PrecomputedModel(tokens.shape[1]), config=config_of(setting, args))
    with h.MemoryWindow() as mem:
        t0, cpu0 = time.perf_counter(), time.process_time()
        index.add_embeddings(docs, [""] * len(docs), ids=[str(i) for i in range(len(docs))])
        build_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    state = index._state
    target = folder / f"index-{setting}"
    shutil.rmtree(target, ignore_errors=True)
    index.save(target)
    return {
        "build_s": build_s,
        "cpu_s": cpu_s,
        "tokens": int(state.store.n_tokens),
        "n_centroids": state.store.codec.n_centroids if state.store.codec else None,
        "disk_bytes": h.dir_bytes(target) - (target / "docs.jsonl").stat().st_size,
        "ram_bytes": state.store.nbytes() + (state.ivf.nbytes() if state.ivf else 0),
        "memory": mem.result(),
        "threads": _threads(),
        "load_avg": os.getloadavg(),
    }


def worker_search(folder: Path, setting: str, args: argparse.Namespace) -> dict:
    from late_interaction import LateInteractionIndex

    queries = h.load_packed(folder / "queries")
    with h.MemoryWindow() as mem:
        index = LateInteractionIndex.load(
            folder / f"index-{setting}", model=PrecomputedModel(queries[0].shape[1])
        )
        index.search(queries[0], 10)  # warm-up

        def one(q):
            return [hit.id for hit in index.search(q, 10)]

        runs, wall, cpu = timed_searches(one, queries)
    return {
        "latency": wall,
        "cpu": cpu,
        "runs": runs,
        "memory": mem.result(),
        "threads": _threads(),
        "load_avg": os.getloadavg(),
    }


def spawn(worker: str, folder: Path, setting: str, threads: int, args) -> dict:
    out = folder / f"{worker}-{setting}-t{threads}.json"
    if args.reuse and out.exists():  # a finished worker of an interrupted run
        return json.loads(out.read_text())
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, str(threads))}
    cmd = [sys.executable, "-m", __spec__.name, "--worker", worker, "--setting", setting,
           "--folder", str(folder), "--out", str(out)]  # fmt: skip
    for name in ("n_centroids", "n_probe"):
        if getattr(args, name) is not None:
            cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    proc = subprocess.run(cmd, env=env, cwd=h.REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{worker} {setting} failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


# --- orchestration ------------------------------------------------------------------------------


def prepare(name: str, args: argparse.Namespace) -> tuple[Path, object, dict]:
    """Pack documents and queries (float16) under the work folder; the exact top 10 per query."""
    from late_interaction import ColBERT

    data = load_beir(SHARED_DATA / name)
    n_queries = len(data.queries) if args.queries is None else args.queries
    folder = args.work_dir / f"{name}-d{args.dim or 384}-q{n_queries}"
    if not (folder / "reference.json").exists():
        docs, queries = dataset_embeddings(ColBERT.from_pretrained(device="cpu"), data)
        queries = queries[:n_queries]  # the first N judged queries
        if args.dim:
            docs, queries = project(docs, args.dim), project(queries, args.dim)
        shutil.rmtree(folder, ignore_errors=True)
        h.save_packed(folder / "docs", docs)
        h.save_packed(folder / "queries", queries)
        t0 = time.perf_counter()
        rows = np.load(folder / "docs" / "tokens.npy", mmap_mode="r")
        offsets = np.load(folder / "docs" / "offsets.npy")
        queries = h.load_packed(folder / "queries")
        top = [  # 20 queries at a time: a document block's score matrix stays < 1 GB
            t for i in range(0, len(queries), 20)
            for t in brute_force_top10(rows, offsets, queries[i : i + 20])
        ]  # fmt: skip
        ref = {"top10": [[str(i) for i in t] for t in top], "seconds": time.perf_counter() - t0}
        (folder / "reference.json").write_text(json.dumps(ref))
    data.queries = dict(list(data.queries.items())[:n_queries])
    data.qrels = {q: data.qrels[q] for q in data.queries}
    return folder, data, json.loads((folder / "reference.json").read_text())


def _latency(searched: dict) -> str:
    """Wall p50 / p95, and the CPU-time p50 where the worker recorded it."""
    wall, cpu = searched["latency"], searched.get("cpu")
    text = f"{wall['p50_ms']:.1f} / {wall['p95_ms']:.1f}"
    return text + (f" ({cpu['p50_ms']:.1f})" if cpu else "")


def run_dataset(name: str, args: argparse.Namespace) -> list[str]:
    folder, data, ref = prepare(name, args)
    # Workers and the reference rank positions; the qrels name documents by id.
    reference = [[data.doc_ids[int(i)] for i in top] for top in ref["top10"]]
    qids = list(data.queries)
    exact_ndcg = ndcg_at_k(dict(zip(qids, reference, strict=True)), data.qrels)
    settings = ([] if args.no_fp16 else ["fp16"]) + [f"nbits={b}" for b in args.nbits.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    rows, n_tok, n_docs = [], 0, 0
    for setting in settings:
        built = spawn("build", folder, setting, 2, args)
        searched = {t: spawn("search", folder, setting, t, args) for t in threads}
        first = searched[threads[0]]
        ranked = [[data.doc_ids[int(i)] for i in top] for top in first["runs"]]
        same = all(s["runs"] == first["runs"] for s in searched.values())
        ndcg = ndcg_at_k(dict(zip(qids, ranked, strict=True)), data.qrels)
        recall = overlap_at_k(ranked, reference)
        n_tok, n_docs = built["tokens"], len(data.doc_ids)
        lat = " | ".join(_latency(searched[t]) for t in threads)
        rss = max(s["memory"]["peak_increment_mb"] for s in searched.values())
        rows.append(
            f"| {setting} | {built['n_centroids'] or '-'} | {built['disk_bytes'] / n_tok:.1f} "
            f"| {built['ram_bytes'] / n_tok:.1f} | {built['build_s']:.1f} | {built['cpu_s']:.1f} "
            f"| {n_tok / built['build_s']:,.0f} | {n_tok / (built['cpu_s'] / 2):,.0f} "
            f"| {built['memory']['peak_increment_mb']:.0f} | {rss:.0f} | {lat} "
            f"| {ndcg:.4f} | {ndcg - exact_ndcg:+.4f} | {recall:.4f} | {'yes' if same else 'NO'} "
            f"| {built['load_avg'][0]:.1f} |"
        )
        print(rows[-1], flush=True)
    dim = args.dim or 384
    source = (
        f"embedded default model's vectors projected to dim {dim} by a seeded random Gaussian "
        "matrix and renormalised (synthetic 128-d stand-in)"
        if args.dim
        else "embedded default model, dim 384"
    )
    lat_head = " | ".join(f"p50 / p95 ms (CPU p50), {t} thr" for t in threads)
    return [
        f"## {name}: {n_docs:,} docs, {n_tok:,} tokens, {len(qids)} queries ({source})",
        "",
        f"Exact brute-force MaxSim (float16 vectors, numpy): nDCG@10 **{exact_ndcg:.4f}** "
        f"({ref['seconds']:.0f} s for all queries in one matrix product per document block).",
        "",
        f"| setting | centroids | disk B/token | RAM B/token | build s | build CPU s | tokens/s "
        f"| tokens/s CPU/2 | build peak RSS MB | search RSS MB | {lat_head} | nDCG@10 "
        "| Δ vs exact | R@10 vs exact | same ranking all thread counts | load (1 min) at build |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        + "---:|" * len(threads)
        + "---:|---:|---:|---|---:|",
        *rows,
        "",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", choices=["build", "search"], help=argparse.SUPPRESS)
    p.add_argument("--setting", help=argparse.SUPPRESS)
    p.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--datasets", default="cranfield,scifact")
    p.add_argument("--nbits", default="1,2,4")
    p.add_argument("--no-fp16", action="store_true", help="skip the float16 store + token HNSW")
    p.add_argument("--dim", type=int, default=None, help="project to this dim (synthetic)")
    p.add_argument("--queries", type=int, default=None, help="first N judged queries only")
    p.add_argument("--threads", default="1,2", help="BLAS/OpenMP threads of the search workers")
    p.add_argument("--n-centroids", type=int, default=None, help="None: the ColBERTv2 rule")
    p.add_argument("--n-probe", type=int, default=None, help="None: grows with size")
    p.add_argument("--work-dir", type=Path, default=h.CACHE / "compressed")
    p.add_argument("--reuse", action="store_true", help="keep worker results already there")
    h.result_options(p)
    args = p.parse_args()
    if args.worker:
        fn = worker_build if args.worker == "build" else worker_search
        h.write_result(args.out, fn(args.folder, args.setting, args))
        return
    started = dt.datetime.now()
    args.work_dir = args.work_dir.resolve()
    body = [
        "Per setting: one process builds (BLAS threads 2) and saves; one fresh process per "
        "thread count loads and searches, k=10, one query at a time, candidate path always "
        "(`exact_scan_tokens=0`). Budgets: "
        f"n_probe={args.n_probe} / n_full_scores=None (None: grown with the index size). "
        "RAM B/token = codes + residuals + offsets + inverted lists (compressed; centroids "
        "excluded, they are in disk) or float16 rows + token map (fp16; its HNSW graph is in "
        "disk only). Build peak RSS: above the worker's RSS with the corpus loaded. Search RSS: "
        "peak above the worker's RSS before loading the index (memory-mapped files count as "
        "they are touched). The machine's 2 cores are shared with other jobs: load average "
        "per build in the last column; CPU s / 2 is the upper bound for 2 idle cores.",
        "",
    ]
    for name in args.datasets.split(","):
        body += run_dataset(name, args)
    variant = f"d{args.dim}" if args.dim else None
    dataset = args.datasets.replace(",", "+")
    h.publish(args, "compressed", dataset, started, "Compressed index vs the float16 store",
              body, variant)  # fmt: skip


if __name__ == "__main__":
    main()
