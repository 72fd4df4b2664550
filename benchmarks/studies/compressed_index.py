"""Compressed index (IndexConfig(nbits=1|2|4)) vs the exact float16 store, on cached embeddings.

For each dataset: the embedded default model's token matrices (cached once, encoding never
timed), exact brute-force MaxSim over the float16 vectors as the reference ranking, then one
index per setting built with ``add_embeddings``: bytes per token on disk (saved folder / tokens)
and in RAM (store arrays + inverted lists or graph), build time, single-query search p50/p95 at
k=10, nDCG@10 against the qrels and recall@10 against the exact reference.

Usage (from the repository root; writes benchmarks/results/compressed-<datasets>-<stamp>.md):
    PYTHONPATH=integrations python -u -m benchmarks.studies.compressed_index \\
        [--datasets cranfield,scifact] [--nbits 1,2,4] [--n-centroids N] [--no-fp16-ann]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.studies._compressed_data import (
    REPO,
    SHARED_DATA,
    dataset_embeddings,
    load_beir,
    ndcg_at_k,
    overlap_at_k,
)
from late_interaction import ColBERT, IndexConfig, LateInteractionIndex
from late_interaction.scoring import maxsim_packed, pack

FAST = {"exact_scan_tokens": 0, "exact_scan_fraction": 0.0}  # always the candidate path


def exact_top10(
    docs: list[np.ndarray], queries: list[np.ndarray], ids: list[str]
) -> list[list[str]]:
    """Brute-force MaxSim ranking over the float16 vectors (the reference for recall)."""
    # float16-rounded values (what the exact store holds), widened once for every query.
    tokens, offsets = pack([d.astype(np.float16).astype(np.float32) for d in docs])
    out = []
    for q in queries:
        scores = maxsim_packed(q, tokens, offsets)
        top = np.argsort(-scores, kind="stable")[:10]
        out.append([ids[i] for i in top])
    return out


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def search_all(index, data, queries) -> tuple[dict[str, list[str]], list[float]]:
    run, latencies = {}, []
    for qid, q in zip(list(data.queries), queries, strict=True):
        t0 = time.perf_counter()
        hits = index.search(q, 10)
        latencies.append(time.perf_counter() - t0)
        run[qid] = [h.id for h in hits]
    return run, latencies


def sweep(index, data, queries, reference, settings: str) -> list[str]:
    """Search budgets (n_probe, n_full_scores) on one built compressed index."""
    rows = []
    for pair in settings.split(","):
        n_probe, n_full = (int(v) for v in pair.split(":"))
        index._state.config = dataclasses.replace(
            index._state.config, n_probe=n_probe, n_full_scores=n_full
        )
        run, latencies = search_all(index, data, queries)
        p50 = np.percentile(latencies, 50) * 1000
        ndcg, recall = ndcg_at_k(run, data.qrels), overlap_at_k(list(run.values()), reference)
        rows.append(
            f"| {index.config.nbits} | {n_probe} | {n_full} | {p50:.1f} | {ndcg:.4f} "
            f"| {recall:.4f} |"
        )
        print(rows[-1], flush=True)
    return rows


def measure(
    model, data, docs, queries, reference, config: IndexConfig, label: str, sweep_settings=None
) -> dict:
    index = LateInteractionIndex(model, config=config)
    start = time.perf_counter()
    index.add_embeddings(docs, data.doc_texts, ids=data.doc_ids)
    build_s = time.perf_counter() - start
    state = index._state
    n_tokens = state.store.n_tokens
    ram = state.store.nbytes() + (state.ivf.nbytes() if state.ivf is not None else 0)
    with tempfile.TemporaryDirectory(dir=REPO / ".cache") as tmp:
        disk = (
            folder_bytes(index.save(Path(tmp) / "ix"))
            - (Path(tmp) / "ix" / "docs.jsonl").stat().st_size
        )
    run, latencies = search_all(index, data, queries)
    row = {
        "setting": label,
        "n_centroids": state.store.codec.n_centroids if state.store.codec else "-",
        "disk_B_per_token": disk / n_tokens,
        "ram_B_per_token": ram / n_tokens if state.ivf is not None else float("nan"),
        "build_s": build_s,
        "tokens_per_s": n_tokens / build_s,
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p95_ms": float(np.percentile(latencies, 95) * 1000),
        "ndcg10": ndcg_at_k(run, data.qrels),
        "recall10_vs_exact": overlap_at_k(list(run.values()), reference),
    }
    print(row, flush=True)
    if sweep_settings and config.nbits is not None:
        row["sweep"] = sweep(index, data, queries, reference, sweep_settings)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="cranfield,scifact")
    parser.add_argument("--nbits", default="1,2,4")
    parser.add_argument("--n-centroids", type=int, default=None, help="None: the ColBERTv2 rule")
    parser.add_argument("--n-probe", type=int, default=None, help="None: grows with size")
    parser.add_argument("--no-fp16-ann", action="store_true", help="skip the token-HNSW build")
    parser.add_argument("--queries", type=int, default=None, help="first N judged queries only")
    parser.add_argument("--sweep", default="", help="n_probe:n_full pairs, e.g. 2:64,4:128")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    started = dt.datetime.now()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    )  # read now: the code under test is what was imported at start
    model = ColBERT.from_pretrained(device="cpu")
    body = []
    for name in args.datasets.split(","):
        data = load_beir(SHARED_DATA / name)
        docs, queries = dataset_embeddings(model, data)
        if args.queries is not None:  # fewer queries (and their qrels), same cached vectors
            data.queries = dict(list(data.queries.items())[: args.queries])
            data.qrels = {q: data.qrels[q] for q in data.queries}
            queries = queries[: args.queries]
        n_tokens = sum(d.shape[0] for d in docs)
        start = time.perf_counter()
        reference = exact_top10(docs, queries, data.doc_ids)
        exact_s = time.perf_counter() - start
        exact_ndcg = ndcg_at_k(dict(zip(data.queries, reference, strict=True)), data.qrels)
        print(
            f"{name}: {len(docs)} docs, {n_tokens} tokens, exact nDCG@10 {exact_ndcg:.4f}",
            flush=True,
        )
        rows = []
        if not args.no_fp16_ann:
            rows.append(
                measure(
                    model,
                    data,
                    docs,
                    queries,
                    reference,
                    IndexConfig(**FAST),
                    "fp16 store + token HNSW",
                )
            )
        for nbits in (int(b) for b in args.nbits.split(",")):
            config = IndexConfig(
                nbits=nbits, n_centroids=args.n_centroids, n_probe=args.n_probe, **FAST
            )
            label = f"nbits={nbits}"
            rows.append(measure(model, data, docs, queries, reference, config, label, args.sweep))
        body += [
            f"## {name}: {len(docs)} docs, {n_tokens:,} tokens (dim {model.dim}), "
            f"{len(queries)} queries",
            "",
            f"Exact brute-force MaxSim (float16 vectors, numpy): nDCG@10 **{exact_ndcg:.4f}**, "
            f"{exact_s / len(queries) * 1000:.0f} ms/query.",
            "",
            "| setting | centroids | disk B/token | RAM B/token | build s | tokens/s | p50 ms "
            "| p95 ms | nDCG@10 | R@10 vs exact |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {r['setting']} | {r['n_centroids']} | {r['disk_B_per_token']:.1f} | "
                f"{r['ram_B_per_token']:.1f} | {r['build_s']:.1f} | {r['tokens_per_s']:,.0f} | "
                f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['ndcg10']:.4f} | "
                f"{r['recall10_vs_exact']:.4f} |"
                for r in rows
            ),
            "",
        ]
        sweeps = [line for r in rows for line in r.get("sweep", [])]
        if sweeps:
            body += [
                "Search budgets on the same indexes:",
                "",
                "| nbits | n_probe | n_full_scores | p50 ms | nDCG@10 | R@10 vs exact |",
                "|---:|---:|---:|---:|---:|---:|",
                *sweeps,
                "",
            ]
    head = [
        "# Compressed index (nbits) vs the exact float16 store",
        "",
        f"{started:%Y-%m-%d %H:%M}, commit {commit.stdout.strip()}, {platform.machine()} "
        f"{shutil.os.cpu_count()} cores (shared with other jobs: timings are indicative), "
        f"n_probe={args.n_probe}, n_full_scores={IndexConfig(nbits=2).n_full_scores} "
        "(None: grown with the index size), "
        "k=10, one query at a time. "
        "Disk B/token excludes docs.jsonl (texts); RAM B/token = codes + residuals + offsets + "
        "token map + inverted lists (centroids excluded, reported in disk). Build = add_embeddings "
        "(k-means training + encoding against the centroids; model encoding excluded).",
        "",
    ]
    stamp = f"{started:%Y%m%d-%H%M}" + (f"-{args.tag}" if args.tag else "")
    out = (
        REPO / "benchmarks" / "results" / f"compressed-{args.datasets.replace(',', '+')}-{stamp}.md"
    )
    out.write_text("\n".join(head + body))
    print(out)


if __name__ == "__main__":
    main()
