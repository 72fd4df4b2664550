"""Recall@10 vs exact MaxSim and latency of candidate pruning (IndexConfig.n_full_scores).

Builds the default index over the cached token matrices of the embedded model and saves it once,
then searches the first ``--queries`` queries with several n_full_scores values on that same
graph. An index's config is fixed for its life, so each value is set in the saved folder's
manifest (``config.json``, key ``index_config``) before the folder is loaded again. Writes
``benchmarks/results/sweep-<dataset>-<YYYYMMDD>-<HHMM>[-<tag>].md``.

Usage (from the repository root):
    .venv/bin/python -m benchmarks.studies.sweep_n_full_scores [--data ../shared/data/scifact] \\
        [--queries 100] [--max-docs N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h
from benchmarks._beir import load_beir
from late_interaction import ColBERT, LateInteractionIndex


def _set_n_full_scores(folder: Path, value: int) -> None:
    """Set ``n_full_scores`` in a saved index's manifest (a search-only setting: same graph)."""
    manifest = json.loads((folder / "config.json").read_text())
    manifest["index_config"]["n_full_scores"] = value
    (folder / "config.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=h.SHARED_DATA / "scifact")
    parser.add_argument("--max-docs", type=int, default=None)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--values", default="1000000000,1024,512,256,128")
    h.result_options(parser)
    args = parser.parse_args()
    started = dt.datetime.now()
    data = load_beir(args.data, max_docs=args.max_docs)
    model = ColBERT.from_pretrained(device="cpu")
    embs = [
        np.asarray(e, np.float32) for e in h.document_embeddings(model, data.doc_texts, data.name)
    ]
    index = LateInteractionIndex(model)
    start = time.perf_counter()
    index.add_embeddings(embs, data.doc_texts, ids=data.doc_ids)
    build_s = time.perf_counter() - start
    print(f"build s {build_s:.1f}", flush=True)
    qids = list(data.queries)[: args.queries]
    queries = model.encode_queries([data.queries[q] for q in qids])
    exact = [[hit.id for hit in index.search(q, 10, exact=True)] for q in queries]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = index.save(Path(tmp) / "index")
        del index
        for n_full in (int(v) for v in args.values.split(",")):
            _set_n_full_scores(folder, n_full)
            index = LateInteractionIndex.load(folder, model=model)
            latencies, recalls = [], []
            for q, e in zip(queries, exact, strict=True):
                start = time.perf_counter()
                hits = index.search(q, 10)
                latencies.append(time.perf_counter() - start)
                recalls.append(len({hit.id for hit in hits} & set(e)) / 10)
            del index
            p50, p95 = np.percentile(latencies, [50, 95]) * 1000
            rows.append(f"| {n_full} | {np.mean(recalls):.4f} | {p50:.1f} | {p95:.1f} |")
            print(rows[-1], flush=True)
    body = [
        f"{data.name}: {len(embs)} docs, {len(qids)} queries, k=10, one query at a time; "
        f"default graph built in {build_s:.1f} s",
        "",
        "| n_full_scores | R@10 vs exact | p50 ms | p95 ms |",
        "|---:|---:|---:|---:|",
        *rows,
    ]
    dataset = h.dataset_label(data.name, len(embs), args.max_docs)
    title = "Candidate pruning (IndexConfig.n_full_scores)"
    h.publish(args, "sweep", dataset, started, title, body)


if __name__ == "__main__":
    main()
