"""Token pooling on a BEIR dataset: quality, size and latency per ``pool_factor``.

For each pool factor, builds a ``LateInteractionIndex`` from cached token matrices of the
embedded model (encoding excluded; pooling runs inside ``add_embeddings`` and is timed with the
build), then searches every query: nDCG@10 and recall@100 on the qrels, search p50 (one query at a
time, query encoding excluded), bytes on disk per original token, and stored vectors.

Usage:
    python benchmarks/pooling_quality.py --data ../shared/data/scifact --factors 1,2,3
"""

from __future__ import annotations

import argparse
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
    ndcg_at_k,
    recall_at_k,
)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED_DATA / "scifact"))
    parser.add_argument("--max-docs", type=int, default=None)
    parser.add_argument("--factors", default="1,2,3")
    args = parser.parse_args()

    from late_interaction import ColBERT, LateInteractionIndex
    from late_interaction.config import IndexConfig

    ds = load_beir(args.data, max_docs=args.max_docs)
    model = ColBERT.from_pretrained()
    embs = cached_document_embeddings(model, ds.doc_texts, ds.name)
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
            index.save()
            disk = _dir_bytes(Path(tmp))
            stored = index._snap.n_live_tokens  # vectors kept after pooling
            run, times = {}, []
            for qid, q in zip(qids, queries, strict=True):
                t0 = time.perf_counter()
                run[qid] = [h.id for h in index.search_embeddings(q, k=100)]
                times.append(time.perf_counter() - t0)
        rows.append(
            f"| {factor} | {stored:,} | {ndcg_at_k(run, ds.qrels, 10):.4f} | "
            f"{recall_at_k(run, ds.qrels, 100):.4f} | {disk / n_tokens:.0f} | {build:.0f} | "
            f"{np.median(times) * 1000:.1f} |"
        )
        print(rows[-1], file=sys.stderr, flush=True)
    print(f"\n{ds.name}, {len(embs)} docs, {n_tokens:,} tokens, {len(qids)} queries\n")
    print("| pool_factor | stored vectors | nDCG@10 | recall@100 | disk bytes per original token "
          "| build s (incl. pooling) | search p50 ms (k=100) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
