"""Scaling run: index build, search latency and memory per token as the collection grows.

Passages are real SciFact token matrices (our encoder, cached) cut into windows of
``--passage-tokens`` tokens; when a size needs more passages than the corpus yields, the extra
ones are copies with small Gaussian noise, renormalised (exact duplicates would be a degenerate
HNSW workload). Queries are the real SciFact queries. Every (side, size, phase) runs in a fresh
process, so each peak RSS is its own; the table gives per-token figures so growth is visible.

Sizes whose projected build time (from the previous size's insert rate) exceeds
``--time-budget`` seconds are skipped and reported as such, so the same command runs the full
1k/10k/100k ladder on a many-core machine and what fits on a small one. Writes
``benchmarks/results/scale-<dataset>-<YYYYMMDD>-<HHMM>[-<tag>].md``.

The PyLate side runs as ``-m benchmarks.studies.scale --worker ...`` under
``.venv-baselines/bin/python`` from the repository root (``bash benchmarks/setup_baselines.sh``);
its workers import only ``benchmarks._harness`` of ours (standard library and numpy) and PyLate.

Sides: ``ours`` (the default index: float16 store + token HNSW), ``ours-nbits2`` (the compressed
index, ``IndexConfig(nbits=2)``; any ``ours-nbits<N>``) and ``pylate`` (PyLate's Voyager index).
``--search-threads N`` limits BLAS/OpenMP threads of the search workers (set in their
environment before they import numpy or torch).

Usage (from the repository root):
    .venv/bin/python -m benchmarks.studies.scale --sizes 1000,10000,100000 \\
        [--sides ours,ours-nbits2,pylate] [--time-budget 900] [--search-threads 1]
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
from benchmarks._report import fmt

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

# --- data (our venv) -------------------------------------------------------------------------


def make_passages(args: argparse.Namespace, size: int, folder: Path) -> dict:
    """Write ``size`` passages (packed float16) and the query matrices under ``folder``."""
    from benchmarks._beir import load_beir
    from late_interaction import ColBERT

    ds = load_beir(args.data, max_docs=args.source_docs)
    queries = list(ds.queries.values())[: args.n_queries]
    if args.projected_dim:  # the embedded default model's vectors, projected (see --help)
        from benchmarks.studies._compressed_data import dataset_embeddings
        from benchmarks.studies.compressed_build import project

        docs, query_mats = dataset_embeddings(ColBERT.from_pretrained(device="cpu"), ds)
        docs = project(docs, args.projected_dim)
        query_mats = project(query_mats[: args.n_queries], args.projected_dim)
    else:
        model = ColBERT.from_pretrained(str(args.checkpoint))
        docs = h.document_embeddings(model, ds.doc_texts, ds.name, batch_size=args.batch_size)
        query_mats = model.encode_queries(queries, batch_size=args.batch_size)
    w = args.passage_tokens
    windows = [d[i : i + w] for d in docs for i in range(0, d.shape[0], w) if d[i : i + w].shape[0]]
    rng = np.random.default_rng(0)
    out, noisy = [], 0
    while len(out) < size:
        take = windows[: size - len(out)]
        if out:  # second and later passes: perturbed copies
            take = [_perturb(np.asarray(m, np.float32), rng, args.noise) for m in take]
            noisy += len(take)
        out += [np.asarray(m, np.float32) for m in take]
    h.save_packed(folder / "passages", out)
    h.save_packed(folder / "queries", query_mats)
    info = {
        "passages": size,
        "tokens": int(sum(m.shape[0] for m in out)),
        "real_windows": min(size, len(windows)),
        "noisy_copies": noisy,
        "passage_tokens": w,
        "source_docs": len(docs),
    }
    (folder / "info.json").write_text(json.dumps(info))
    return info


def _perturb(m: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    m = m + rng.normal(0.0, sigma, m.shape).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


# --- workers (run in a fresh process, either venv) -------------------------------------------


def worker_index(side: str, folder: Path) -> dict:
    passages = h.load_packed(folder / "passages")
    ids = [f"p{i}" for i in range(len(passages))]
    n_tok = int(sum(p.shape[0] for p in passages))
    target = folder / f"{side}-index"
    shutil.rmtree(target, ignore_errors=True)
    with h.MemoryWindow() as mem:
        t0 = time.perf_counter()
        if side.startswith("ours"):
            from late_interaction import LateInteractionIndex

            index = LateInteractionIndex(
                model=_StubModel(passages[0].shape[1]), path=target, config=_our_config(side)
            )
            index.add_embeddings(passages, [""] * len(passages), ids=ids)
            index.save()
        else:
            from pylate import indexes

            idx = indexes.Voyager(index_folder=str(target), index_name="colbert", override=True)
            idx.add_documents(documents_ids=ids, documents_embeddings=passages)
        build = time.perf_counter() - t0
    size = h.dir_bytes(target)
    return {"build_s": build, "tokens": n_tok, "disk_bytes": size, "memory": mem.result()}


def worker_search(side: str, folder: Path) -> dict:
    queries = h.load_packed(folder / "queries")
    target = folder / f"{side}-index"
    with h.MemoryWindow() as mem:
        if side.startswith("ours"):
            from late_interaction import LateInteractionIndex

            index = LateInteractionIndex.load(target, model=_StubModel(queries[0].shape[1]))

            def one(q):
                return [x.id for x in index.search(q, k=10)]
        else:
            from pylate import indexes, retrieve

            idx = indexes.Voyager(index_folder=str(target), index_name="colbert", override=False)
            retriever = retrieve.ColBERT(index=idx)
            retriever._show_progress = lambda: False  # tqdm only

            def one(q):
                return [r["id"] for r in retriever.retrieve(queries_embeddings=[q], k=10)[0]]

        one(queries[0])
        runs, times = h.timed_calls(one, queries)
    passages = h.load_packed(folder / "passages")
    n_exact = min(len(queries), 20)
    exact = h.exact_maxsim_topk(queries[:n_exact], passages, k=10)
    exact_ids = [[f"p{i}" for i in row] for row in exact]
    recall = float(
        np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(runs, exact_ids, strict=False)])
    )
    return {"latency_k10": h.latency_stats(times), "memory": mem.result(), "ann_recall@10": recall}


def _our_config(side: str):
    """``ours``: the default (float16 store + token HNSW); ``ours-nbits2``: compressed, 2 bits."""
    from late_interaction import IndexConfig

    return IndexConfig(nbits=int(side.removeprefix("ours-nbits"))) if "nbits" in side else None


class _StubModel:
    """Stands in for the encoder: the scaling run feeds precomputed matrices only.

    ``LateInteractionIndex`` needs ``dim`` and ``fingerprint()``; nothing here encodes text, so
    the index never calls the encode methods (they raise to prove it).
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def fingerprint(self) -> dict:
        return {"name_or_path": "scale-benchmark-precomputed", "dim": self.dim}

    def encode_queries(self, *a, **k):  # pragma: no cover - never called
        raise RuntimeError("scale benchmark encodes nothing")

    encode_documents = encode_queries


# --- orchestration (our venv) ----------------------------------------------------------------


def _spawn(side: str, worker: str, folder: Path, args: argparse.Namespace) -> dict:
    python = sys.executable if side.startswith("ours") else str(args.baseline_python)
    out = folder / f"{side}-{worker}.json"
    cmd = [python, "-m", __spec__.name, "--worker", worker, "--side", side, "--folder", str(folder)]
    cmd += ["--out", str(out)]
    log = folder / f"{side}-{worker}.log"
    env = dict(os.environ)
    if worker == "search" and args.search_threads:  # set before the worker imports numpy/torch
        env.update(dict.fromkeys(_THREAD_VARS, str(args.search_threads)))
    with log.open("w") as f:  # cwd = repository root, where -m finds the benchmarks package
        proc = subprocess.run(
            cmd, stdout=f, stderr=subprocess.STDOUT, cwd=h.REPO, check=False, env=env
        )
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        msg = f"{side} {worker} failed in {folder}:\n{tail}"
        raise RuntimeError(msg)
    return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", choices=["index", "search"], help=argparse.SUPPRESS)
    p.add_argument("--side", default="ours", help=argparse.SUPPRESS)
    p.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, default=h.SHARED_DATA / "scifact")
    p.add_argument("--source-docs", type=int, default=None, help="max_docs for the source corpus")
    p.add_argument("--checkpoint", type=Path, default=h.CHECKPOINT_DIR)
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--sides", default="ours")
    p.add_argument("--passage-tokens", type=int, default=32)
    p.add_argument("--noise", type=float, default=0.02)
    p.add_argument("--n-queries", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--time-budget", type=float, default=900.0, help="max projected build s")
    p.add_argument(
        "--projected-dim",
        type=int,
        default=None,
        help="passages from the embedded default model's vectors through a seeded random "
        "projection to this dim (no checkpoint needed; synthetic, said in the output)",
    )
    p.add_argument("--search-threads", type=int, default=None, help="BLAS/OpenMP threads")
    p.add_argument("--baseline-python", type=Path, default=h.BASELINE_PYTHON)
    p.add_argument("--work-dir", type=Path, default=h.SCALE)
    h.result_options(p)
    args = p.parse_args()
    if args.worker:
        fn = worker_index if args.worker == "index" else worker_search
        h.write_result(args.out, fn(args.side, args.folder))
        return

    started = dt.datetime.now()
    args.work_dir = args.work_dir.resolve()  # the workers run from the repository root
    sizes = [int(s) for s in args.sizes.split(",")]
    sides = args.sides.split(",")
    rows, skipped, rate = [], [], {}
    for size in sizes:
        proj = f"-p{args.projected_dim}" if args.projected_dim else ""
        folder = args.work_dir / f"n{size}-w{args.passage_tokens}{proj}"
        if not (folder / "info.json").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            make_passages(args, size, folder)
        info = json.loads((folder / "info.json").read_text())
        for side in sides:
            if side in rate and info["tokens"] / rate[side] > args.time_budget:
                skipped.append(
                    f"{side} at {size} passages ({info['tokens']:,} tokens): projected "
                    f"{info['tokens'] / rate[side]:.0f}s build > budget {args.time_budget:.0f}s"
                )
                continue
            built = _spawn(side, "index", folder, args)
            rate[side] = built["tokens"] / built["build_s"]
            searched = _spawn(side, "search", folder, args)
            rows.append((size, side, info, built, searched))
            print(f"{side} n={size}: build {built['build_s']:.1f}s, "
                  f"p50 {searched['latency_k10']['p50_ms']:.1f}ms", flush=True)  # fmt: skip
    dataset = h.dataset_label(args.data.name, info["source_docs"], args.source_docs)
    h.publish(args, "scale", dataset, started, "Scaling run", _render(rows, skipped, args))


def _render(rows: list, skipped: list[str], args: argparse.Namespace) -> list[str]:
    lines = [
        f"- Passages: windows of {args.passage_tokens} tokens of our encoder's SciFact token "
        f"matrices; beyond the corpus, copies with N(0, {args.noise}) noise, renormalised.",
        *(
            [
                f"- Vectors: the embedded default model's (dim 384), projected to dim "
                f"{args.projected_dim} by a seeded random Gaussian matrix and renormalised "
                "(a synthetic stand-in for a 128-d checkpoint); queries likewise."
            ]
            if args.projected_dim
            else []
        ),
        "- Memory: peak RSS above the phase start (index build; index load + queries), per token.",
        "",
        "| passages | side | tokens | real / noisy | build s | insert tok/s | disk B/token "
        "| build peak B/token | search peak B/token | p50 ms | p95 ms | ANN recall@10 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, side, info, b, s in rows:
        tok = b["tokens"]
        lines.append(
            f"| {size:,} | {side} | {tok:,} | {info['real_windows']:,} / {info['noisy_copies']:,} "
            f"| {fmt(b['build_s'])} | {fmt(tok / b['build_s'])} | {fmt(b['disk_bytes'] / tok)} "
            f"| {fmt(b['memory']['peak_increment_mb'] * 2**20 / tok)} "
            f"| {fmt(s['memory']['peak_increment_mb'] * 2**20 / tok)} "
            f"| {fmt(s['latency_k10']['p50_ms'])} | {fmt(s['latency_k10']['p95_ms'])} "
            f"| {fmt(s['ann_recall@10'])} |"
        )
    if skipped:
        lines += ["", "Skipped (time budget):", *[f"- {x}" for x in skipped]]
    return lines


if __name__ == "__main__":
    main()
