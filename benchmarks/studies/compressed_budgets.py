"""Candidate budgets of a compressed index vs its size: recall@10 against two brute forces.

Builds one ``IndexConfig(nbits=...)`` index over cached real token vectors (the embedded default
model's, dim 384), optionally cut into ``--passages`` windows of ``--passage-tokens`` tokens with
noisy copies beyond what the corpus yields (as ``studies.scale`` does: a synthetic collection
around real vectors, said in the output), then searches the real queries with each
``n_probe:n_full_scores`` budget and reports recall@10 against

* exact brute-force MaxSim over the float16 vectors (what a user compares with), and
* brute-force MaxSim over the *decoded* vectors (the best the candidate stage can reach; the gap
  between the two columns is the codec's, the rest is the candidates').

Usage (from the repository root; writes
``benchmarks/results/compressed-<dataset>-<stamp>-budgets[-<tag>].md``):
    PYTHONPATH=integrations python -m benchmarks.studies.compressed_budgets \\
        --dataset scifact --passages 20000 --budgets 4:128,8:256,8:512 [--queries 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time

import numpy as np

from benchmarks import _harness as h
from benchmarks.studies.compressed_build import cached_tokens


def make_passages(docs, n: int, width: int, noise: float) -> tuple[list[np.ndarray], int]:
    """``n`` windows of real token matrices, then renormalised noisy copies; (passages, copies)."""
    windows = [d[i : i + width] for d in docs for i in range(0, d.shape[0], width)]
    rng = np.random.default_rng(0)
    out, copies = [w.astype(np.float16) for w in windows[:n]], 0
    while len(out) < n:
        take = windows[: n - len(out)]
        for m in take:
            m = m + rng.normal(0.0, noise, m.shape).astype(np.float32)
            out.append((m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float16))
        copies += len(take)
    return out, copies


def brute_force_top10(rows, offsets: np.ndarray, queries: list[np.ndarray]) -> list[np.ndarray]:
    """Top-10 slots per query by MaxSim over ``rows`` (an array or DecodedRows), chunked."""
    q_all = np.concatenate(queries).astype(np.float32)
    bounds = np.r_[0, np.cumsum([q.shape[0] for q in queries])]
    n_docs = len(offsets) - 1
    scores = np.zeros((len(queries), n_docs), dtype=np.float32)
    step = 2000
    for first in range(0, n_docs, step):
        last = min(first + step, n_docs)
        block = np.asarray(rows[offsets[first] : offsets[last]], dtype=np.float32)
        sims = block @ q_all.T  # (tokens, all query tokens)
        best = np.maximum.reduceat(sims, offsets[first:last] - offsets[first], axis=0)
        for i in range(len(queries)):
            scores[i, first:last] = best[:, bounds[i] : bounds[i + 1]].sum(axis=1)
    return [np.argsort(-s, kind="stable")[:10] for s in scores]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--passages", type=int, default=0, help="0: the documents as they are")
    parser.add_argument("--passage-tokens", type=int, default=100)
    parser.add_argument("--noise", type=float, default=0.02)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--nbits", type=int, default=2)
    parser.add_argument("--budgets", default="4:128,8:256,8:512,16:1024")
    h.result_options(parser)
    args = parser.parse_args()
    started = dt.datetime.now()
    from late_interaction import IndexConfig
    from late_interaction._index.search import SearchRequest, run_search
    from late_interaction._index.snapshot import View
    from late_interaction._index.state import IndexState

    docs, folder = cached_tokens(args.dataset)  # float32
    queries_folder = max(h.EMBEDDINGS.glob(f"{args.dataset}-queries-*"))
    queries = h.load_packed(queries_folder)[: args.queries]
    copies = 0
    if args.passages:
        docs, copies = make_passages(docs, args.passages, args.passage_tokens, args.noise)
    n_tokens = sum(d.shape[0] for d in docs)
    print(f"{len(docs)} passages ({copies} noisy copies), {n_tokens:,} tokens", flush=True)
    config = IndexConfig(nbits=args.nbits, exact_scan_tokens=0, exact_scan_fraction=0.0)
    state = IndexState(config)
    start = time.perf_counter()
    ids = [str(i) for i in range(len(docs))]
    state.add(docs[0].shape[1], lambda p: [docs[i] for i in p], [""] * len(docs), ids,
              [{} for _ in docs])  # fmt: skip
    build_s = time.perf_counter() - start
    snap = state.snap
    offsets = snap.offsets
    exact = brute_force_top10(np.concatenate(docs).astype(np.float16), offsets, queries)
    decoded = brute_force_top10(snap.tokens, offsets, queries)
    codec_recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, decoded, strict=True)])
    print(f"built in {build_s:.1f} s; decoded brute force vs exact: {codec_recall:.4f}", flush=True)
    rows = []
    for pair in args.budgets.split(","):
        n_probe, n_full = (int(v) for v in pair.split(":"))
        cfg = dataclasses.replace(config, n_probe=n_probe, n_full_scores=n_full)
        got, latencies = [], []
        for q in queries:
            t0 = time.perf_counter()
            hits = run_search(View(snap, None), [q], SearchRequest(k=10), cfg)[0]
            latencies.append(time.perf_counter() - t0)
            got.append([int(hit.id) for hit in hits])
        r_exact = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact, strict=True)])
        r_dec = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, decoded, strict=True)])
        rows.append(
            f"| {n_probe} | {n_full} | {np.percentile(latencies, 50) * 1000:.1f} "
            f"| {r_exact:.4f} | {r_dec:.4f} |"
        )
        print(rows[-1], flush=True)
    source = (
        f"{len(docs):,} passages of {args.passage_tokens} tokens cut from the real vectors, "
        f"{copies:,} of them noisy copies (sigma {args.noise}, renormalised): synthetic around "
        "real vectors"
        if args.passages
        else f"{len(docs):,} real documents"
    )
    body = [
        f"Data: {source}; {n_tokens:,} tokens from `{h.repo_relative(folder)}`; "
        f"{len(queries)} real queries from `{h.repo_relative(queries_folder)}`. "
        f"nbits={args.nbits}, {snap.codec.n_centroids} centroids, build {build_s:.1f} s "
        "(shared machine). k=10, one query at a time.",
        "",
        f"Brute force over decoded vectors vs exact (the codec's ceiling): **{codec_recall:.4f}**",
        "",
        "| n_probe | n_full_scores | p50 ms | R@10 vs exact | R@10 vs decoded brute force |",
        "|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]
    meta = h.run_meta(started)
    label = args.dataset + (f"{len(docs) // 1000}k" if args.passages else "")
    stem = h.result_stem("compressed", label, started, "budgets", args.tag)
    text = "\n".join([*h.header_lines("Compressed index: candidate budgets vs size", meta), *body])
    h.save_result(args.results_dir, stem, text)


if __name__ == "__main__":
    main()
