"""GPU search (issue 13): exact MaxSim on the device against its floors, and GPU vs CPU search.

Part 1, exact brute force (``IndexConfig(ann=False)`` on a device; what ``exact_top_k`` runs):
synthetic unit vectors, ``--docs`` passages x 100 tokens x dim 128 in float16 on the GPU, queries of
32 tokens. For each size: one query, and batches of 32 queries (per-query time), with

* ``padded_maxsim``: what a device search runs (our Triton kernel, ``_triton_maxsim.py``);
* ``ours: Triton batch kernel``: the kernel called directly;
* ``torch matmul, then max``: ``padded_maxsim`` without Triton (what CPU torch builds run);
* ``torch, 1 query at a time``: the batch scored query by query (what a loop over ``maxsim`` did);
* ``exact_top_k``: the whole device search (all scores, mask, top-10, copy back);

and the floors measured on the same GPU in the same run: reading the documents once at the
measured copy bandwidth, and the matmul FLOPs at the measured float16 tensor-core rate
(8192^3 matmul); the floor of a batch is the larger of the two.

Part 2, the same index searched on the GPU and on the CPU (``LateInteractionIndex(device=...)``):
``--index-docs`` synthetic documents of 30-250 unit tokens (dim 128), default HNSW config, k=10;
p50/p95 of single searches (ANN candidates), per-query time in ``search_batch`` of 32, and
``exact=True``. Synthetic vectors: latency depends on sizes, not on meaning.

Run on a GPU machine from the repository root:
    PYTHONPATH=integrations python -m benchmarks.studies.gpu_search --out $OUT/gpu-search.md
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from late_interaction import LateInteractionIndex, _torch_maxsim
from late_interaction._index.device_search import exact_top_k
from late_interaction._index.device_store import DeviceMirror, _Bucket

DIM, DOC_TOKENS, QUERY_TOKENS, BATCH = 128, 100, 32, 32


def timed(fn, reps: int) -> tuple[float, float]:
    """p50 and p95 wall milliseconds of ``fn()`` (synchronised), after two warm-up calls."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append((time.perf_counter() - t0) * 1e3)
    return float(np.percentile(out, 50)), float(np.percentile(out, 95))


def unit(shape, device, dtype=torch.float16, seed=0) -> torch.Tensor:
    gen = torch.Generator(device=device).manual_seed(seed)
    out = torch.empty(shape, dtype=dtype, device=device)
    step = 1 << 16
    for a in range(0, shape[0], step):
        x = torch.randn((min(step, shape[0] - a), *shape[1:]), generator=gen, device=device)
        out[a : a + step] = torch.nn.functional.normalize(x, dim=-1).to(dtype)
    return out


def measure_floors(device) -> tuple[float, float]:
    """(bytes/s read+write of a large copy, float16 matmul FLOP/s) measured on ``device``."""
    x = torch.empty(1 << 31, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    p50, _ = timed(lambda: y.copy_(x), 10)
    bandwidth = 2 * x.numel() / (p50 / 1e3)
    a = torch.randn(8192, 8192, device=device, dtype=torch.float16)
    p50, _ = timed(lambda: a @ a, 10)
    return bandwidth, 2 * 8192**3 / (p50 / 1e3)


class _AllLive:
    """A view with every document live and no restriction (what exact_top_k reads)."""

    def __init__(self, n: int) -> None:
        self._mask = np.ones(n, dtype=bool)
        self.allowed = None
        self.snap = type("Snap", (), {"n_live": n})()

    def mask(self) -> np.ndarray:
        return self._mask


def exact_part(n_docs: int, device, bandwidth: float, flops: float) -> list[str]:
    docs = unit((n_docs, DOC_TOKENS, DIM), device)
    queries = unit((BATCH, QUERY_TOKENS, DIM), device, torch.float32, seed=1)
    read_ms = docs.numel() * 2 / bandwidth * 1e3
    mm_ms = 2 * n_docs * DOC_TOKENS * DIM * QUERY_TOKENS / flops * 1e3
    rows = []
    batched = _torch_maxsim._batched_kernel()

    def run(label, fn, n_q, floor_ms, reps):
        p50, p95 = timed(fn, reps)
        rows.append(
            f"| {n_docs:,} | {label} | {n_q} | {p50 / n_q:.2f} | {p95 / n_q:.2f} | "
            f"{floor_ms / n_q:.2f} | {p50 / floor_ms:.1f}x |"
        )

    def without_kernel(fn):
        def wrapped():
            saved = _torch_maxsim._batched
            _torch_maxsim._batched = None
            try:
                return fn()
            finally:
                _torch_maxsim._batched = saved

        return wrapped

    one, batch = queries[:1], queries
    floor_one, floor_batch = max(read_ms, mm_ms), max(read_ms, BATCH * mm_ms)
    reps = 20 if n_docs <= 100_000 else 8
    for n_q, qs, floor in ((1, one, floor_one), (BATCH, batch, floor_batch)):
        run(
            "padded_maxsim (what search runs)",
            lambda qs=qs: _torch_maxsim.padded_maxsim(qs, docs),
            n_q,
            floor,
            reps,
        )
        if batched is not None:
            run("ours: Triton batch kernel", lambda qs=qs: batched(qs, docs), n_q, floor, reps)
        run(
            "torch matmul, then max",
            without_kernel(lambda qs=qs: _torch_maxsim.padded_maxsim(qs, docs)),
            n_q,
            floor,
            reps,
        )
    loop = without_kernel(lambda: [_torch_maxsim.padded_maxsim(q[None], docs) for q in batch])
    run("torch, 1 query at a time", loop, BATCH, floor_batch, max(3, reps // 4))
    mirror = DeviceMirror(device)
    bucket = _Bucket(DOC_TOKENS)
    slots = torch.arange(n_docs, device=device)
    bucket.payload, bucket.n = {"vectors": docs, "slots": slots}, n_docs
    mirror.buckets[DOC_TOKENS], mirror.n_slots = bucket, n_docs
    view = _AllLive(n_docs)
    qs_np = [q.cpu().numpy() for q in queries]
    run("exact_top_k (k=10)", lambda: exact_top_k(mirror, view, qs_np[:1], 10), 1, floor_one, reps)
    run(
        "exact_top_k (k=10)", lambda: exact_top_k(mirror, view, qs_np, 10), BATCH, floor_batch, reps
    )
    return rows


class _Encoder:
    dim = DIM

    def fingerprint(self) -> dict:
        return {"kind": "synthetic", "dim": DIM}


def index_part(n_docs: int, device) -> list[str]:
    rng = np.random.default_rng(0)
    docs = []
    for _ in range(n_docs):
        m = rng.standard_normal((int(rng.integers(30, 251)), DIM)).astype(np.float32)
        docs.append(m / np.linalg.norm(m, axis=1, keepdims=True))
    index = LateInteractionIndex(_Encoder(), device="cpu")
    t0 = time.perf_counter()
    index.add_embeddings(docs, [f"doc {i}" for i in range(n_docs)])
    build_s = time.perf_counter() - t0
    queries = []
    for _ in range(64):
        q = rng.standard_normal((QUERY_TOKENS, DIM)).astype(np.float32)
        queries.append(q / np.linalg.norm(q, axis=1, keepdims=True))
    rows = [
        f"(index: {n_docs:,} docs, {len(index._state.snap.tokens):,} tokens; "
        f"built in {build_s:.0f} s on the CPU)",
        "",
    ]
    rows += [
        "| search | CPU p50 / p95 ms | GPU p50 / p95 ms | CPU / GPU (p50) |",
        "|---|---|---|---|",
    ]
    cases = [
        ("single, ANN, k=10", lambda i: index.search(queries[i % 64], k=10), 1),
        (
            "batch of 32, ANN, k=10 (per query)",
            lambda i: index.search_batch(queries[:BATCH], k=10),
            BATCH,
        ),
        ("single, exact=True", lambda i: index.search(queries[i % 64], k=10, exact=True), 1),
        (
            "batch of 32, exact=True (per query)",
            lambda i: index.search_batch(queries[:BATCH], k=10, exact=True),
            BATCH,
        ),
    ]
    for label, fn, n_q in cases:
        out = {}
        for where in ("cpu", device):
            index._device = torch.device(where)
            counter = iter(range(10**6))
            reps = 30 if n_q == 1 else 5
            out[where] = timed(lambda: fn(next(counter)), reps)  # noqa: B023
        (c50, c95), (g50, g95) = out["cpu"], out[device]
        rows.append(
            f"| {label} | {c50 / n_q:.2f} / {c95 / n_q:.2f} | {g50 / n_q:.2f} / {g95 / n_q:.2f} | "
            f"{c50 / g50:.1f}x |"
        )
    cpu_hits = [
        h.id
        for h in (setattr(index, "_device", torch.device("cpu")) or index.search(queries[0], k=10))
    ]
    index._device = torch.device(device)
    gpu_hits = [h.id for h in index.search(queries[0], k=10)]
    rows.append("")
    rows.append(f"Same top-10 ids on CPU and GPU for query 0: {cpu_hits == gpu_hits}.")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--index-docs", type=int, default=4000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    device = "cuda"
    bandwidth, flops = measure_floors(device)
    lines = [
        "# GPU search: exact MaxSim on the device, and GPU vs CPU search (issue 13)",
        "",
        "- Command: `PYTHONPATH=integrations python -m benchmarks.studies.gpu_search --out ...`",
        f"- Device: {torch.cuda.get_device_name()} ({platform.node()}), torch {torch.__version__}, "
        f"Triton batch kernel: {_torch_maxsim._batched_kernel() is not None}",
        f"- Measured floors: copy bandwidth {bandwidth / 1e12:.2f} TB/s, float16 matmul "
        f"{flops / 1e12:.0f} TFLOP/s",
        "",
        "## Exact brute force: passages x 100 tokens x dim 128 (float16), 32-token queries",
        "",
        "| passages | path | queries | ms/query p50 | ms/query p95 | floor ms/query "
        "| p50 / floor |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in args.docs:
        lines += exact_part(n, device, bandwidth, flops)
    lines += ["", "## The same index on the CPU and on the GPU", ""]
    lines += index_part(args.index_docs, device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
