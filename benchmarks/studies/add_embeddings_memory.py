"""Peak memory of ``LateInteractionIndex.add_embeddings`` relative to its input (issue 16, item 12).

Builds ``--docs`` random unit-norm token matrices (20-60 tokens, ``--dim``), then measures one
``add_embeddings`` call into an empty index: the tracemalloc peak above the input (numpy buffers
are traced; Voyager's C++ graph is not) and the growth of the process's peak RSS (graph
included). Synthetic data on purpose: memory depends on shapes, not on what the vectors mean.

Run from the repository root, once per code version to compare::

    PYTHONPATH=integrations .venv/bin/python -m benchmarks.studies.add_embeddings_memory
    PYTHONPATH=/tmp/base/integrations .venv/bin/python -m benchmarks.studies.add_embeddings_memory
"""

from __future__ import annotations

import argparse
import resource
import tracemalloc

import numpy as np


class _Encoder:
    """Only what add_embeddings needs: a dimension and a fingerprint (nothing is encoded)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def fingerprint(self) -> dict:
        return {"kind": "memory-study", "dim": self.dim}


def _inputs(n_docs: int, dim: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_docs):
        m = rng.standard_normal((int(rng.integers(20, 61)), dim), dtype=np.float32)
        out.append(m / np.linalg.norm(m, axis=1, keepdims=True))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--storage", default="float16", choices=["float16", "float32"])
    parser.add_argument("--nbits", type=int, default=None)
    parser.add_argument("--input-dtype", default="float32", choices=["float16", "float32"])
    args = parser.parse_args()

    from late_interaction import IndexConfig, LateInteractionIndex

    embeddings = [m.astype(args.input_dtype) for m in _inputs(args.docs, args.dim)]
    texts = [f"doc {i}" for i in range(args.docs)]
    input_mb = sum(m.nbytes for m in embeddings) / 2**20
    config = IndexConfig(storage_dtype=args.storage, nbits=args.nbits)
    index = LateInteractionIndex(_Encoder(args.dim), config=config)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    index.add_embeddings(embeddings, texts)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store_mb = index._state.store.nbytes() / 2**20
    print(
        f"docs={args.docs} dim={args.dim} storage={args.storage} nbits={args.nbits} "
        f"tokens={index._state.store.n_tokens}\n"
        f"input ({args.input_dtype} matrices): {input_mb:.1f} MB; "
        f"token store after: {store_mb:.1f} MB\n"
        f"traced peak above start: {(peak - base) / 2**20:.1f} MB "
        f"({(peak - base) / 2**20 / input_mb:.2f}x input); "
        f"traced still held after: {(current - base) / 2**20:.1f} MB\n"
        f"peak RSS growth (graph included): {rss_after - rss_before:.1f} MB "
        f"({(rss_after - rss_before) / input_mb:.2f}x input)"
    )


if __name__ == "__main__":
    main()
