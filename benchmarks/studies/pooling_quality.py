"""Token pooling on a BEIR dataset: quality, size and latency per ``pool_factor``.

For each pool factor, builds a ``LateInteractionIndex`` from cached token matrices of the
embedded model (encoding excluded; pooling runs inside ``add_embeddings`` and is timed with the
build), then searches every query: nDCG@10 and recall@100 on the qrels, search p50 (one query at a
time, query encoding excluded), bytes on disk per original token, and stored vectors. Writes
``benchmarks/results/pooling-<dataset>-<YYYYMMDD>-<HHMM>[-<tag>].md``.

Usage (from the repository root):
    .venv/bin/python -m benchmarks.studies.pooling_quality --data ../shared/data/scifact \\
        --factors 1,2
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h
from benchmarks._beir import load_beir, ndcg_at_k, recall_at_k


def _stored_vectors(folder: Path) -> int:
    """Token vectors kept after pooling: rows of the saved index's ``embeddings.npy``."""
    return int(np.load(folder / "embeddings.npy", mmap_mode="r").shape[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(h.SHARED_DATA / "scifact"))
    parser.add_argument("--max-docs", type=int, default=None)
    parser.add_argument("--factors", default="1,2,3")
    h.result_options(parser)
    args = parser.parse_args()
    started = dt.datetime.now()

    from late_interaction import ColBERT, IndexConfig, LateInteractionIndex

    ds = load_beir(args.data, max_docs=args.max_docs)
    model = ColBERT.from_pretrained()
    embs = h.document_embeddings(model, ds.doc_texts, ds.name)
    n_tokens = int(sum(e.shape[0] for e in embs))
    qids = list(ds.queries)
    queries = model.encode_queries([ds.queries[q] for q in qids], show_progress_bar=False)
    print(f"{ds.name}: {len(embs)} docs, {n_tokens} tokens, {len(qids)} queries", file=sys.stderr)
    rows = []
    for factor in map(int, args.factors.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            index = LateInteractionIndex(model, tmp, config=IndexConfig(pool_factor=factor))
            t0 = time.perf_counter()
            for s in range(0, len(embs), 512):
                index.add_embeddings(
                    embs[s : s + 512], ds.doc_texts[s : s + 512], ids=ds.doc_ids[s : s + 512]
                )
            build = time.perf_counter() - t0
            disk = h.dir_bytes(index.save())
            stored = _stored_vectors(Path(tmp))
            run, times = {}, []
            for qid, q in zip(qids, queries, strict=True):
                t0 = time.perf_counter()
                run[qid] = [hit.id for hit in index.search(q, k=100)]
                times.append(time.perf_counter() - t0)
        rows.append(
            f"| {factor} | {stored:,} | {ndcg_at_k(run, ds.qrels, 10):.4f} | "
            f"{recall_at_k(run, ds.qrels, 100):.4f} | {disk / n_tokens:.0f} | {build:.0f} | "
            f"{np.median(times) * 1000:.1f} |"
        )
        print(rows[-1], file=sys.stderr, flush=True)
    body = [
        f"{ds.name}, {len(embs)} docs, {n_tokens:,} tokens, {len(qids)} queries",
        "",
        "| pool_factor | stored vectors | nDCG@10 | recall@100 | disk bytes per original token "
        "| build s (incl. pooling) | search p50 ms (k=100) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    dataset = h.dataset_label(ds.name, len(embs), args.max_docs)
    title = f"Token pooling on {ds.name} (embedded model)"
    h.publish(args, "pooling", dataset, started, title, body)


if __name__ == "__main__":
    main()
