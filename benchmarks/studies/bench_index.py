"""Index benchmark on SciFact with the embedded model: build time, latency, bytes, ANN recall.

Encoding is excluded from every timing (token matrices come from the embedding cache,
``_harness.document_embeddings``). Recall@10 is the overlap of the ANN top-10 with brute-force
exact MaxSim (``search(..., exact=True)``) on the same index, so it measures candidate generation
only. Writes ``benchmarks/results/index-<dataset>-<YYYYMMDD>-<HHMM>[-<tag>].md``.

Usage (from the repository root):
    .venv/bin/python -m benchmarks.studies.bench_index --data ../shared/data/scifact  # 5183 docs
    .venv/bin/python -m benchmarks.studies.bench_index --max-docs 800   # first 800 + judged docs
    .venv/bin/python -m benchmarks.studies.bench_index --build 16,32,float32 --search 32,64

Rows: the default ``IndexConfig`` (one build), query-time alternatives on the same graph
(``--search k_token,query_ef``, no rebuild) and other graphs (``--build M,ef_construction,
hnsw_storage``, one full build each). Build time covers ``add_embeddings`` only (store append
plus Voyager inserts, 512 documents per call); RAM is the resident-memory growth of the build
(token store, documents, the graph and its spare capacity; Linux only).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import gc
import importlib.metadata as md
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h
from benchmarks._beir import load_beir, overlap_at_k
from late_interaction import ColBERT, IndexConfig, LateInteractionIndex


def _rss_bytes() -> int:
    """Resident memory in bytes (Linux; elsewhere RAM is reported as 0)."""
    return int(h.rss_mb() * 2**20)


def _release_freed_memory() -> None:
    gc.collect()
    try:  # glibc keeps freed small blocks; trimming stops a later build from reusing them unseen
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _build(model, embs, ids, texts, config) -> tuple[LateInteractionIndex, float, int]:
    _release_freed_memory()
    before = _rss_bytes()
    index = LateInteractionIndex(model, config=config)
    start = time.perf_counter()
    for i in range(0, len(embs), 512):  # same publish granularity as add()
        part = slice(i, i + 512)
        index.add_embeddings(embs[part], texts[part], ids=ids[part])
    build_s = time.perf_counter() - start
    _release_freed_memory()
    return index, build_s, _rss_bytes() - before


def _measure(name, index, query_mats, exact, build, n_tokens, **search_kw) -> dict:
    build_s, ram = build
    times, runs = [], []
    for q in query_mats:
        t = time.perf_counter()
        hits = index.search(q, k=10, **search_kw)
        times.append(time.perf_counter() - t)
        runs.append([hit.id for hit in hits])
    with tempfile.TemporaryDirectory() as tmp:
        disk = h.dir_bytes(index.save(Path(tmp) / "idx"))
    return {
        "variant": name,
        "build_s": build_s,
        "tok_s": n_tokens / build_s,
        "p50_ms": 1000 * float(np.percentile(times, 50)),
        "p95_ms": 1000 * float(np.percentile(times, 95)),
        "disk_B_tok": disk / n_tokens,
        "ram_B_tok": ram / n_tokens,
        "recall@10": overlap_at_k(runs, exact, 10),
        "load": os.getloadavg()[0],
    }


def _describe(c: IndexConfig, k_token: int | None = None, query_ef: int | None = None) -> str:
    kt, ef = k_token or c.k_token, query_ef or c.query_ef
    return f"M={c.hnsw_m} efc={c.ef_construction} {c.hnsw_storage} k_token={kt} ef={ef}"


def _table(rows: list[dict]) -> list[str]:
    lines = [
        "| variant | build s | tokens/s | p50 ms | p95 ms | disk B/tok | RAM B/tok "
        "| R@10 vs exact | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['build_s']:.1f} | {r['tok_s']:.0f} | {r['p50_ms']:.1f} "
            f"| {r['p95_ms']:.1f} | {r['disk_B_tok']:.0f} | {r['ram_B_tok']:.0f} "
            f"| {r['recall@10']:.3f} | {r['load']:.1f} |"
        )
    return lines


def _pair(text: str, n: int) -> tuple[str, ...]:
    parts = tuple(text.split(","))
    if len(parts) != n:
        msg = f"expected {n} comma-separated values, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(h.SHARED_DATA / "scifact"))
    parser.add_argument("--max-docs", type=int, default=None)
    parser.add_argument("--queries", type=int, default=100, help="queries timed and scored")
    parser.add_argument(
        "--search", type=lambda s: _pair(s, 2), action="append", default=None,
        help="k_token,query_ef on the default graph (repeatable; default 32,64 and 128,256)",
    )  # fmt: skip
    parser.add_argument(
        "--build", type=lambda s: _pair(s, 3), action="append", default=None,
        help="M,ef_construction,hnsw_storage for another graph (repeatable; default 12,64,float32)",
    )  # fmt: skip
    h.result_options(parser)
    args = parser.parse_args()
    started = dt.datetime.now()
    searches = args.search if args.search is not None else [("32", "64"), ("128", "256")]
    builds = args.build if args.build is not None else [("12", "64", "float32")]

    data = load_beir(args.data, max_docs=args.max_docs)
    model = ColBERT.from_pretrained()
    # Copied out of the memory-mapped cache now, so its pages don't count as the first build's RAM.
    embs = [np.array(e) for e in h.document_embeddings(model, data.doc_texts, data.name)]
    queries = list(data.queries.values())[: args.queries]
    query_mats = model.encode_queries(queries)
    n_tokens = sum(e.shape[0] for e in embs)
    head = [
        f"{data.name}: {len(embs)} docs, {n_tokens} tokens (dim {model.dim}), {len(queries)} "
        f"queries, k=10. voyager {md.version('voyager')}, numpy {np.__version__}, "
        f"late-interaction {md.version('late-interaction')}. Load average at start: "
        f"{os.getloadavg()[0]:.1f}.",
        "",
    ]
    print("\n".join(head), flush=True)

    default = IndexConfig()
    index, *build = _build(model, embs, data.doc_ids, data.doc_texts, default)
    # Exact ranking over the whole corpus: the reference for every row.
    exact = [[hit.id for hit in index.search(q, k=10, exact=True)] for q in query_mats]
    rows = [
        _measure(f"**default** {_describe(default)}", index, query_mats, exact, build, n_tokens)
    ]
    print(_table(rows)[-1], flush=True)
    for kt, ef in searches:
        kw = {"k_token": int(kt), "query_ef": int(ef)}
        name = f"{_describe(default, **kw)} (same graph)"
        rows.append(_measure(name, index, query_mats, exact, build, n_tokens, **kw))
        print(_table(rows)[-1], flush=True)
    del index
    for m, efc, storage in builds:
        config = IndexConfig(hnsw_m=int(m), ef_construction=int(efc), hnsw_storage=storage)
        other, *build = _build(model, embs, data.doc_ids, data.doc_texts, config)
        rows.append(_measure(_describe(config), other, query_mats, exact, build, n_tokens))
        print(_table(rows)[-1], flush=True)
        del other

    title = f"Index benchmark: {data.name}, embedded model (dim {model.dim})"
    dataset = h.dataset_label(data.name, len(embs), args.max_docs)
    h.publish(args, "index", dataset, started, title, [*head, *_table(rows)])


if __name__ == "__main__":
    main()
