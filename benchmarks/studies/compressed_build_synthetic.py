"""Compressed-index build throughput on a bare machine: synthetic vectors, core modules only.

For machines without the project's venv (e.g. the lent GPU host, used for its idle CPU cores):
imports the codec, k-means, token store and inverted lists straight from ``integrations/``
without the package ``__init__`` (no torch), makes ``--tokens`` synthetic unit vectors around
``--topics`` random directions (Gaussian noise ``--noise`` per dimension, renormalised; *not*
real token vectors: only the timing is meant, agreement rates differ from real data) and runs
what ``IndexState.add`` runs for a compressed index: codec training on at most 2**18 vectors,
then encoding and inverted lists in chunks of ~25k tokens. Pin the cores from outside, e.g.
``OPENBLAS_NUM_THREADS=2 taskset -c 0,1 python3 benchmarks/studies/compressed_build_synthetic.py``.
Prints one line; no result file (copy the output into one). CPU time / 2 stands in for the
wall time of 2 idle cores when the machine is shared.
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2] / "integrations" / "late_interaction"
for name, path in (("late_interaction", ROOT), ("late_interaction._index", ROOT / "_index")):
    module = types.ModuleType(name)
    module.__path__ = [str(path)]
    sys.modules[name] = module

from late_interaction._index.codec import ResidualCodec, centroid_count  # noqa: E402
from late_interaction._index.ivf import InvertedLists  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1_100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--topics", type=int, default=20_000)
    parser.add_argument("--noise", type=float, default=0.04)
    parser.add_argument("--nbits", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    topics = rng.standard_normal((args.topics, args.dim), dtype=np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    x = topics[rng.integers(0, args.topics, args.tokens)]
    x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(args.noise)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    sample = x[rng.choice(args.tokens, min(args.tokens, 2**18), replace=False)]
    k = centroid_count(args.tokens, sample.shape[0])
    codec = ResidualCodec.train(sample, args.nbits, n_centroids=k)
    t1 = time.perf_counter()
    ivf, doc_len, chunk = InvertedLists(k), 100, 25_600
    for start in range(0, args.tokens, chunk):
        part = x[start : start + chunk]
        np.sqrt(np.einsum("ij,ij->i", part, part))  # the store's unit-norm check
        codes, _, _ = codec.encode_with_error(part)
        slots = (start + np.arange(len(part))) // doc_len
        ivf = ivf.appended(codes, slots.astype(np.int32))
    t2, cpu = time.perf_counter(), time.process_time() - cpu0
    total = t2 - t0
    print(
        f"{args.tokens:,} tokens, dim {args.dim}, nbits {args.nbits}, {k} centroids: train "
        f"{t1 - t0:.1f} s, encode + lists {t2 - t1:.1f} s ({args.tokens / (t2 - t1):,.0f} "
        f"tokens/s), total {total:.1f} s = {args.tokens / total:,.0f} tokens/s; CPU time "
        f"{cpu:.1f} s (= {args.tokens / (cpu / 2):,.0f} tokens/s on 2 idle cores)"
    )


if __name__ == "__main__":
    main()
