"""Index benchmark on SciFact with the embedded model: build time, latency, bytes, ANN recall.

Encoding is excluded from every timing (token matrices come from ``cached_document_embeddings``).
Recall@10 is the overlap of the ANN top-10 with brute-force exact MaxSim (``exact_search``) on
the same index, so it measures candidate generation only.

Usage:
    python benchmarks/bench_index.py                 # full corpus (5183 docs; slow on 2 cores)
    python benchmarks/bench_index.py --max-docs 800  # first 800 docs + every judged one

Variants: the default settings and two query-time alternatives on the same graph
(k_token/query_ef); optionally a float32 token store (``--fp32``) and another M (``--alt-m``),
each a full rebuild.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.beir import (
    SHARED_DATA,
    cached_document_embeddings,
    load_beir,
    overlap_at_k,
)
from late_interaction import ColBERT, LateInteractionIndex
from late_interaction.config import IndexConfig


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir())


def _build(model, embs, ids, texts, config) -> tuple[LateInteractionIndex, float]:
    index = LateInteractionIndex(model, config=config)
    start = time.perf_counter()
    for i in range(0, len(embs), 512):  # same publish granularity as add()
        part = slice(i, i + 512)
        index.add_embeddings([np.asarray(e) for e in embs[part]], texts[part], ids=ids[part])
    return index, time.perf_counter() - start


def _measure(name, index, query_mats, exact, build_s, n_tokens, **search_kw) -> dict:
    times, runs = [], []
    for q in query_mats:
        t = time.perf_counter()
        hits = index.search_embeddings(q, k=10, **search_kw)
        times.append(time.perf_counter() - t)
        runs.append([h.id for h in hits])
    with tempfile.TemporaryDirectory() as tmp:
        disk = _dir_bytes(index.save(Path(tmp) / "idx"))
    graph = index._hnsw
    voyager_bytes = len(graph._index.as_bytes()) if graph is not None else 0
    ram = index._store.nbytes() + voyager_bytes
    return {
        "variant": name,
        "build_s": build_s,
        "p50_ms": 1000 * float(np.percentile(times, 50)),
        "p95_ms": 1000 * float(np.percentile(times, 95)),
        "disk_B_tok": disk / n_tokens,
        "ram_B_tok": ram / n_tokens,
        "recall@10": overlap_at_k(runs, exact, 10),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED_DATA / "scifact"))
    parser.add_argument("--max-docs", type=int, default=None)
    parser.add_argument("--queries", type=int, default=100, help="queries timed and scored")
    parser.add_argument("--alt-m", type=int, default=None, help="also build a graph with this M")
    parser.add_argument("--fp32", action="store_true", help="also build with a float32 store")
    args = parser.parse_args()

    data = load_beir(args.data, max_docs=args.max_docs)
    model = ColBERT.from_pretrained()
    embs = cached_document_embeddings(model, data.doc_texts, "scifact")
    queries = list(data.queries.values())[: args.queries]
    query_mats = model.encode_queries(queries)
    n_tokens = sum(e.shape[0] for e in embs)
    print(
        f"# SciFact: {len(embs)} docs, {n_tokens} tokens (dim {model.dim}), {len(queries)} queries;"
        f" cpu={os.cpu_count()}"
    )

    default = IndexConfig()
    index, build_s = _build(model, embs, data.doc_ids, data.doc_texts, default)
    exact = [[h.id for h in index.exact_search(q, k=10)] for q in query_mats]
    rows = [
        _measure(
            f"default (M={default.hnsw_m}, k_token={default.k_token}, ef={default.query_ef}, fp16)",
            index, query_mats, exact, build_s, n_tokens,
        ),
        _measure(
            "k_token=32, ef=64 (same graph)",
            index, query_mats, exact, build_s, n_tokens, k_token=32, query_ef=64,
        ),
        _measure(
            "k_token=128, ef=256 (same graph)",
            index, query_mats, exact, build_s, n_tokens, k_token=128, query_ef=256,
        ),
    ]  # fmt: skip
    del index
    if args.fp32:
        fp32 = IndexConfig(storage_dtype="float32")
        index32, build32 = _build(model, embs, data.doc_ids, data.doc_texts, fp32)
        rows.append(_measure("float32 token store", index32, query_mats, exact, build32, n_tokens))
        del index32
    if args.alt_m:
        alt = IndexConfig(hnsw_m=args.alt_m)
        index_m, build_m = _build(model, embs, data.doc_ids, data.doc_texts, alt)
        rows.append(_measure(f"M={args.alt_m}", index_m, query_mats, exact, build_m, n_tokens))

    header = f"| {'variant':<52} | build s | p50 ms | p95 ms | disk B/tok | RAM B/tok | R@10 |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(
            f"| {r['variant']:<52} | {r['build_s']:7.1f} | {r['p50_ms']:6.1f} "
            f"| {r['p95_ms']:6.1f} | {r['disk_B_tok']:10.0f} | {r['ram_B_tok']:9.0f} "
            f"| {r['recall@10']:.3f} |"
        )


if __name__ == "__main__":
    main()
