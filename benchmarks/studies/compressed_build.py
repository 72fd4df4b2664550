"""Where a compressed index's build time goes (encoding excluded), on cached real token vectors.

Loads a dataset's cached document token matrices (``.cache/benchmarks/embeddings/``: the
embedded default model, dim 384; ``--dim 128`` projects them through a seeded random Gaussian
matrix and renormalises, a synthetic stand-in for a 128-d checkpoint, said in the output), builds
``IndexConfig(nbits=...)`` indexes with ``add_embeddings`` under cProfile, and reports tokens/s,
the top functions by cumulative and own time, and bytes per token (RAM arrays and saved folder).

Usage (from the repository root; writes
``benchmarks/results/compressed-<dataset>-<stamp>-build.md``):
    PYTHONPATH=integrations python -m benchmarks.studies.compressed_build \\
        [--dataset cranfield] [--nbits 2] [--dim 384] [--max-tokens N] [--threads 2]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h


def cached_tokens(name: str) -> tuple[list[np.ndarray], Path]:
    """The newest cached document token matrices of ``name`` (float32) and their folder."""
    folders = [p for p in h.EMBEDDINGS.glob(f"{name}-docs-*") if (p / "tokens.npy").exists()]
    folders += [p / "tokens" for p in h.EMBEDDINGS.glob(f"{name}-dense-*")]
    folders = [p for p in folders if (p / "tokens.npy").exists()]
    if not folders:
        msg = f"no cached token matrices for {name} under {h.EMBEDDINGS}; run a study first."
        raise SystemExit(msg)
    folder = max(folders, key=lambda p: np.load(p / "offsets.npy").shape[0])
    return h.load_packed(folder), folder


def project(docs: list[np.ndarray], dim: int, seed: int = 0) -> list[np.ndarray]:
    """Seeded random projection to ``dim`` and renormalisation (synthetic lower-dim vectors)."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(docs[0].shape[1], dim)).astype(np.float32)
    out = []
    for d in docs:
        p = d @ matrix
        out.append(p / np.linalg.norm(p, axis=1, keepdims=True))
    return out


def blas_gflops(dim: int) -> float:
    """float32 matmul speed right now (the machine is shared: a calibration for the timings)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((16384, dim), dtype=np.float32)
    b = rng.standard_normal((2048, dim), dtype=np.float32)
    a @ b.T
    start = time.perf_counter()
    for _ in range(3):
        a @ b.T
    return 3 * 2 * 16384 * 2048 * dim / (time.perf_counter() - start) / 1e9


def agreement(codec, docs: list[np.ndarray], n: int = 20_000) -> str:
    """How often the encoder's assignment is the exact nearest centroid, and the score gap."""
    from late_interaction._index.kmeans import nearest_centroids

    if not hasattr(codec, "nearest"):  # code before the two-level assignment: always exact
        return "Assignment: exact (every token against every centroid)."
    vectors = np.concatenate(docs)
    vectors = vectors[np.random.default_rng(1).choice(len(vectors), min(n, len(vectors)), False)]
    got, exact = codec.nearest(vectors), nearest_centroids(vectors, codec.centroids)
    gap = (vectors * codec.centroids[exact]).sum(1) - (vectors * codec.centroids[got]).sum(1)
    mode = "two-level" if codec.nearest.two_level else "exact"
    return (
        f"Assignment ({mode}) on {len(vectors):,} sampled tokens: exact nearest centroid for "
        f"{(got == exact).mean():.4f}; mean score gap to the exact nearest {gap.mean():.5f} "
        f"(max {gap.max():.4f})."
    )


def build(docs, nbits: int, n_centroids: int | None, dim: int):
    from late_interaction import IndexConfig
    from late_interaction._index.state import IndexState

    state = IndexState(IndexConfig(nbits=nbits, n_centroids=n_centroids))
    ids = [str(i) for i in range(len(docs))]
    texts = [""] * len(docs)
    start, cpu = time.perf_counter(), time.process_time()
    state.add(dim, lambda pos: [docs[i] for i in pos], texts, ids, [{} for _ in docs])
    return state, time.perf_counter() - start, time.process_time() - cpu


def byte_table(state, n_tokens: int, folder: Path) -> list[str]:
    store = state.store
    rows = {name: array[:n_tokens].nbytes for name, array in store._rows.items()}
    rows["offsets"] = store._offsets[: store.n_docs + 1].nbytes
    token_doc = getattr(store, "_token_doc", None)
    rows["token_doc (RAM)"] = 0 if token_doc is None else token_doc[:n_tokens].nbytes
    rows["inverted lists"] = state.ivf.nbytes()
    rows["centroids (fixed)"] = store.codec.centroids16.nbytes
    lines = ["| part | bytes | B/token |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:,} | {v / n_tokens:.2f} |" for k, v in rows.items()]
    total = sum(rows.values())
    lines.append(f"| **total in RAM** | {total:,} | **{total / n_tokens:.2f}** |")
    disk = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    disk.pop("docs.jsonl", None)
    lines.append(
        f"| saved folder (no docs.jsonl): {', '.join(disk)} | {sum(disk.values()):,} "
        f"| {sum(disk.values()) / n_tokens:.2f} |"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cranfield")
    parser.add_argument("--nbits", default="2")
    parser.add_argument("--dim", type=int, default=None, help="project to this dim (synthetic)")
    parser.add_argument("--max-tokens", type=int, default=None, help="first documents only")
    parser.add_argument("--n-centroids", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-profile", action="store_true")
    h.result_options(parser)
    args = parser.parse_args()
    started = dt.datetime.now()
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:  # pragma: no cover
        pass
    docs, folder = cached_tokens(args.dataset)
    if args.max_tokens:
        cut = int(np.searchsorted(np.cumsum([d.shape[0] for d in docs]), args.max_tokens)) + 1
        docs = docs[:cut]
    source_dim = docs[0].shape[1]
    if args.dim and args.dim != source_dim:
        docs = project(docs, args.dim)
    dim = docs[0].shape[1]
    n_tokens = sum(d.shape[0] for d in docs)
    body = [
        f"Data: {len(docs)} documents, {n_tokens:,} tokens from `{h.repo_relative(folder)}` "
        f"(real vectors of the embedded default model, dim {source_dim})"
        + (
            f", projected to dim {dim} by a seeded random matrix and renormalised (synthetic)"
            if dim != source_dim
            else ""
        )
        + f"; {args.threads} BLAS/torch threads.",
        "",
    ]
    for nbits in (int(b) for b in args.nbits.split(",")):
        profiler = None if args.no_profile else cProfile.Profile()
        if profiler:
            profiler.enable()
        gflops = blas_gflops(dim)
        state, seconds, cpu = build(docs, nbits, args.n_centroids, dim)
        if profiler:
            profiler.disable()
        with tempfile.TemporaryDirectory(dir=h.REPO / ".cache") as tmp:
            state.store.save(Path(tmp))
            offsets, slots = state.ivf.arrays()
            np.save(Path(tmp) / "ivf_offsets.npy", offsets)
            np.save(Path(tmp) / "ivf_slots.npy", slots)
            np.save(Path(tmp) / "centroids.npy", state.store.codec.centroids16)
            table = byte_table(state, n_tokens, Path(tmp))
        line = (
            f"nbits={nbits}, dim {dim}, {state.store.codec.n_centroids} centroids: build "
            f"{seconds:.2f} s, **{n_tokens / seconds:,.0f} tokens/s**; CPU time {cpu:.1f} s "
            f"(= {n_tokens / (cpu / args.threads):,.0f} tokens/s on {args.threads} idle cores); "
            f"float32 BLAS measured at {gflops:.0f} GFLOPS just before"
        )
        print(line, flush=True)
        body += [f"## {line}", "", agreement(state.store.codec, docs), "", *table, ""]
        if profiler:
            for key in ("cumulative", "tottime"):
                text = io.StringIO()
                pstats.Stats(profiler, stream=text).sort_stats(key).print_stats(18)
                lines = text.getvalue().splitlines()
                start = next(i for i, x in enumerate(lines) if "ncalls" in x)
                body += [f"cProfile, top by {key}:", "", "```", *lines[start:], "```", ""]
        print("\n".join(body[-60:]), flush=True)
    meta = h.run_meta(started)
    dataset = args.dataset + (f"{n_tokens // 1000}k" if args.max_tokens else "")
    stem = h.result_stem("compressed", dataset, started, args.tag or "build")
    h.save_result(
        args.results_dir,
        stem,
        "\n".join([*h.header_lines("Compressed index: build profile", meta), *body]),
    )


if __name__ == "__main__":
    main()
