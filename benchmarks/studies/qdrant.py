"""QdrantIndex first stages on SciFact: recall@10 vs exact MaxSim and per-query latency.

The embedded default model's token matrices (cached once by ``_compressed_data``, encoding never
timed) go into Qdrant two ways:

* ``QdrantIndex`` over qdrant-client's local mode (``QdrantClient(":memory:")``): the Python
  engine (no HNSW; a Python loop over points, with per-point filter checks when rescoring
  prefetched candidates), so its rows, on ``--scan-queries`` queries, show what local mode
  costs at this size, not what a server does: full-scan MaxSim (what ``first_stage="none"`` and
  ``exact=True`` run there) and ``first_stage="mean"`` with several ``prefetch_limit`` values.
* Qdrant Edge (``qdrant-edge-py``, Qdrant's Rust engine in process; skipped if not installed),
  with the same collection layout ``QdrantIndex`` creates: full-scan MaxSim on the multivector
  (``hnsw m=0``), the mean-vector prefetch with MaxSim rescoring, and, with ``--hnsw-docs N``,
  a multivector HNSW graph (Qdrant's default for a plain multivector) on the first N documents
  to show its build cost.

Recall@10 is the overlap of each top 10 with brute-force MaxSim's (numpy, float32 of the cached
float16 vectors); nDCG@10 is against the qrels. Latency: one query per call, its token matrix
precomputed, after one warm-up call.

Usage (from the repository root; writes benchmarks/results/qdrant-scifact-<stamp>.md):
    PYTHONPATH=integrations python -u -m benchmarks.studies.qdrant \\
        [--max-docs N] [--queries N] [--prefetch 20,50,100,200,500] [--hnsw-docs 0] \\
        [--scan-queries 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shutil
import sys
import tempfile
import time
from importlib.metadata import version

import numpy as np

from benchmarks import _harness as h
from benchmarks.studies._compressed_data import (
    SHARED_DATA,
    dataset_embeddings,
    load_beir,
    ndcg_at_k,
    overlap_at_k,
)
from late_interaction import ColBERT, QdrantIndex


def unit_mean(matrix: np.ndarray) -> list[float]:
    mean = np.asarray(matrix, np.float32).mean(axis=0)
    return (mean / np.linalg.norm(mean)).tolist()


def subset(data, n: int):
    """The dataset with its first ``n`` judged queries only (queries and qrels both cut)."""
    keep = list(data.queries)[:n]
    return dataclasses.replace(
        data, queries={q: data.queries[q] for q in keep}, qrels={q: data.qrels[q] for q in keep}
    )


def measure(label: str, search, data, queries, reference) -> dict:
    """Run every query through ``search(matrix) -> ids`` and score the run."""
    qids = list(data.queries)
    search(queries[0])  # warm-up
    runs, times = h.timed_calls(search, queries)
    run = dict(zip(qids, runs, strict=True))
    row = {
        "setting": label,
        **h.latency_stats(times),
        "recall10_vs_exact": overlap_at_k(runs, reference),
        "ndcg10": ndcg_at_k(run, data.qrels),
    }
    print(row, flush=True)
    return row


def client_rows(
    model, data, docs, queries, reference, prefetch: list[int], scan_queries: int
) -> tuple[list, float]:
    index = QdrantIndex(model, first_stage="mean")
    start = time.perf_counter()
    index.add_embeddings(docs, data.doc_texts, ids=data.doc_ids)
    build_s = time.perf_counter() - start
    print(f"local mode: ingested in {build_s:.0f}s", file=sys.stderr, flush=True)
    # The Python engine takes seconds a query at this size: time it on a few queries only.
    few, n = subset(data, scan_queries), scan_queries
    rows = [
        measure(
            f"local mode: full-scan MaxSim (first_stage none / exact=True; {n} queries)",
            lambda q: [x.id for x in index.search(q, 10, exact=True)],
            few, queries[:n], reference[:n],
        )
    ]  # fmt: skip
    for limit in prefetch:
        rows.append(
            measure(
                f"local mode: mean prefetch {limit} + MaxSim ({n} queries)",
                lambda q, m=limit: [x.id for x in index.search(q, 10, prefetch_limit=m)],
                few,
                queries[:n],
                reference[:n],
            )
        )
    index.client.close()
    return rows, build_s


def edge_shard(path: str, dim: int, *, multivector_hnsw: bool):
    import qdrant_edge as qe

    maxsim = qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim)
    hnsw = qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10)
    vectors = {
        "colbert": qe.EdgeVectorParams(
            size=dim, distance=qe.Distance.Dot, multivector_config=maxsim,
            hnsw_config=hnsw if multivector_hnsw else qe.HnswIndexConfig(
                m=0, ef_construct=100, full_scan_threshold=10
            ),
        ),
        "mean": qe.EdgeVectorParams(size=dim, distance=qe.Distance.Dot, hnsw_config=hnsw),
    }  # fmt: skip
    optimizers = qe.EdgeOptimizersConfig(indexing_threshold=1, default_segment_number=1)
    return qe.EdgeShard.create(path, qe.EdgeConfig(vectors=vectors, optimizers=optimizers))


def edge_fill(shard, docs, n: int) -> float:
    import qdrant_edge as qe

    start = time.perf_counter()
    for s in range(0, n, 256):
        points = [
            qe.Point(i, {"colbert": np.asarray(docs[i], np.float32).tolist(),
                         "mean": unit_mean(docs[i])})
            for i in range(s, min(n, s + 256))
        ]  # fmt: skip
        shard.update(qe.UpdateOperation.upsert_points(points))
    shard.optimize()  # build the HNSW graphs now, not during the timed queries
    return time.perf_counter() - start


def edge_rows(data, docs, queries, reference, prefetch, hnsw_docs: int) -> tuple[list, dict]:
    import qdrant_edge as qe

    ids = data.doc_ids
    rows, builds = [], {}
    tmp = tempfile.mkdtemp(dir=h.CACHE)
    try:
        shard = edge_shard(f"{tmp}/plain", docs[0].shape[1], multivector_hnsw=False)
        builds["edge: mean HNSW + multivector (m=0)"] = edge_fill(shard, docs, len(docs))

        def full(q):
            request = qe.QueryRequest(
                limit=10, query=qe.Query.Nearest(q.tolist(), using="colbert"),
                params=qe.SearchParams(exact=True),
            )  # fmt: skip
            return [ids[p.id] for p in shard.query(request)]

        rows.append(measure("edge: full-scan MaxSim", full, data, queries, reference))
        for limit in prefetch:

            def pre(q, n=limit):
                first = qe.Prefetch(
                    limit=max(n, 10), query=qe.Query.Nearest(unit_mean(q), using="mean")
                )  # as QdrantIndex: never fewer candidates than k
                request = qe.QueryRequest(
                    limit=10, prefetches=[first],
                    query=qe.Query.Nearest(q.tolist(), using="colbert"),
                )  # fmt: skip
                return [ids[p.id] for p in shard.query(request)]

            rows.append(
                measure(f"edge: mean prefetch {limit} + MaxSim", pre, data, queries, reference)
            )
        shard.close()
        if hnsw_docs:
            rows.append(edge_hnsw_row(tmp, data, docs, queries, hnsw_docs, builds))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows, builds


def edge_hnsw_row(tmp, data, docs, queries, n, builds) -> dict:
    """A multivector HNSW graph on the first ``n`` documents vs exact MaxSim over the same ``n``."""
    import qdrant_edge as qe

    shard = edge_shard(f"{tmp}/hnsw", docs[0].shape[1], multivector_hnsw=True)
    builds[f"edge: multivector HNSW m=16, first {n} docs"] = edge_fill(shard, docs, n)
    sub_ref = [[data.doc_ids[i] for i in r] for r in h.exact_maxsim_topk(queries, docs[:n], 10)]

    def graph(q):
        request = qe.QueryRequest(limit=10, query=qe.Query.Nearest(q.tolist(), using="colbert"))
        return [data.doc_ids[p.id] for p in shard.query(request)]

    row = measure(f"edge: multivector HNSW (first {n} docs)", graph, data, queries, sub_ref)
    row["ndcg10"] = float("nan")  # qrels cover the whole corpus, not this subset
    shard.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-docs", type=int, default=None, help="first N docs + judged ones")
    parser.add_argument("--queries", type=int, default=None, help="first N judged queries only")
    parser.add_argument("--prefetch", default="20,50,100,200,500")
    parser.add_argument("--hnsw-docs", type=int, default=0, help="edge multivector-HNSW subset")
    parser.add_argument("--scan-queries", type=int, default=3, help="queries of local-mode rows")
    parser.add_argument("--no-edge", action="store_true")
    h.result_options(parser)
    args = parser.parse_args()
    started = dt.datetime.now()
    data = load_beir(SHARED_DATA / "scifact", max_docs=args.max_docs)
    model = ColBERT.from_pretrained(device="cpu")
    docs, queries = dataset_embeddings(model, data)
    if args.queries:
        data = subset(data, args.queries)
        queries = queries[: args.queries]
    print(f"{len(docs)} documents, {len(queries)} queries", file=sys.stderr, flush=True)
    reference = [[data.doc_ids[i] for i in r] for r in h.exact_maxsim_topk(queries, docs, 10)]
    print("exact reference computed", file=sys.stderr, flush=True)
    prefetch = [int(v) for v in args.prefetch.split(",") if v]
    rows, build_s = client_rows(model, data, docs, queries, reference, prefetch, args.scan_queries)
    builds = {"local mode: QdrantIndex.add_embeddings (mean + multivector)": build_s}
    edge = None
    if not args.no_edge:
        try:
            import qdrant_edge  # noqa: F401

            edge = version("qdrant-edge-py")
        except ImportError:
            print("qdrant-edge-py not installed: edge rows skipped", flush=True)
    if edge:
        more, edge_builds = edge_rows(data, docs, queries, reference, prefetch, args.hnsw_docs)
        rows += more
        builds.update(edge_builds)
    n_tokens = sum(d.shape[0] for d in docs)
    body = [
        f"SciFact: {len(docs)} documents ({n_tokens} tokens, dim {docs[0].shape[1]}), "
        f"{len(queries)} judged queries; embedded default model (`ColBERT.from_pretrained()`). "
        f"qdrant-client {version('qdrant-client')}; qdrant-edge-py {edge or 'not installed'}.",
        "",
        "| setting | recall@10 vs exact | nDCG@10 | p50 ms | p95 ms |",
        "|---|---|---|---|---|",
        *(
            f"| {r['setting']} | {r['recall10_vs_exact']:.4f} | {r['ndcg10']:.4f} "
            f"| {r['p50_ms']:.1f} | {r['p95_ms']:.1f} |"
            for r in rows
        ),
        "",
        "| ingest (upsert + index build) | seconds |",
        "|---|---|",
        *(f"| {k} | {v:.1f} |" for k, v in builds.items()),
    ]
    label = h.dataset_label("scifact", len(docs), args.max_docs)
    h.publish(args, "qdrant", label, started, "QdrantIndex first stages", body,
              data={"rows": rows, "builds": builds})  # fmt: skip


if __name__ == "__main__":
    main()
