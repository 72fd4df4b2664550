"""Recall@10 vs exact MaxSim and latency of candidate pruning (IndexConfig.n_full_scores).

Builds the default index over the cached full-SciFact token matrices of the embedded model, then
searches the first 100 queries with several n_full_scores values on the same graph.

Usage: python benchmarks/sweep_n_full_scores.py [--data ../shared/data/scifact] [--queries 100]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.beir import SHARED_DATA, cached_document_embeddings, load_beir
from late_interaction import ColBERT, LateInteractionIndex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "scifact")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--values", default="1000000000,1024,512,256,128")
    args = parser.parse_args()
    data = load_beir(args.data)
    model = ColBERT.from_pretrained(device="cpu")
    embs = [
        np.asarray(e, np.float32)
        for e in cached_document_embeddings(model, data.doc_texts, data.name)
    ]
    index = LateInteractionIndex(model)
    start = time.perf_counter()
    index.add_embeddings(embs, data.doc_texts, ids=data.doc_ids)
    print(f"build s {time.perf_counter() - start:.1f}", flush=True)
    qids = list(data.queries)[: args.queries]
    queries = model.encode_queries([data.queries[q] for q in qids])
    exact = [[h.id for h in index.exact_search(q, 10)] for q in queries]
    for n_full in (int(v) for v in args.values.split(",")):
        index.config = dataclasses.replace(index.config, n_full_scores=n_full)
        latencies, recalls = [], []
        for q, e in zip(queries, exact, strict=True):
            start = time.perf_counter()
            hits = index.search_embeddings(q, 10)
            latencies.append(time.perf_counter() - start)
            recalls.append(len({h.id for h in hits} & set(e)) / 10)
        p50, p95 = np.percentile(latencies, [50, 95]) * 1000
        print(
            f"n_full={n_full}: R@10 vs exact {np.mean(recalls):.4f}, "
            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms"
        )


if __name__ == "__main__":
    main()
