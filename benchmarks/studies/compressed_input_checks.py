"""What the input checks of ``add_embeddings`` cost per token of a compressed build; a cheaper rule.

``add_embeddings`` passes every document matrix through ``_validation.as_token_matrix`` twice
(a check of the whole call first, then again as each chunk is appended) and the compressed
store checks unit norms once more. This times, per token, on 256 real 96-token matrices (a chunk
of ``add_embeddings``; ``compressed_scale`` windows, dim 128): one ``as_token_matrix`` pass with
the compressed store's rules, the same checks on the concatenated chunk, and one float32
unit-norm check per matrix (``|norm - 1| <= tol`` is False for NaN and infinite rows, and unit
rows cannot exceed float16's range, so for a compressed store it implies the other checks).
Wall time, best of ``--repeats``, one BLAS thread.

Usage (from the repository root; writes ``benchmarks/results/compressed-inputchecks-<stamp>.md``):
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=integrations python -m \\
        benchmarks.studies.compressed_input_checks
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np

from benchmarks import _harness as h

SCALE = h.CACHE / "compressed-scale" / "d128-w100"


def best_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    h.result_options(p)
    args = p.parse_args()
    started = dt.datetime.now()
    from late_interaction._validation import as_token_matrix, storable

    tokens = np.load(SCALE / "windows" / "tokens.npy", mmap_mode="r")
    mats = [np.asarray(tokens[i * 96 : (i + 1) * 96], dtype=np.float32) for i in range(256)]
    n = sum(m.shape[0] for m in mats)
    rules = storable("float16", 2)

    def per_matrix():
        return [as_token_matrix(m, 128, "", **rules) for m in mats]

    def concatenated():
        return as_token_matrix(np.concatenate(mats), 128, "", **rules)

    def unit_only():
        for m in mats:
            norms = np.sqrt(np.einsum("ij,ij->i", m, m))
            if not (np.abs(norms - 1.0) <= 1e-2).all():
                raise ValueError

    rows = []
    for label, fn in (
        (
            "`as_token_matrix` per matrix (one pass; add_embeddings made two before 22b2425)",
            per_matrix,
        ),
        ("`as_token_matrix` on the concatenated chunk", concatenated),
        ("float32 unit-norm check per matrix", unit_only),
    ):
        ms = best_ms(fn, args.repeats)
        rows.append(f"| {label} | {ms:.2f} | {ms / n * 1e3:.3f} |")
    body = [
        f"{len(mats)} real matrices of 96 tokens (dim 128, `{h.repo_relative(SCALE)}`), "
        f"{n:,} tokens; wall ms, best of {args.repeats}.",
        "",
        "| check | ms per chunk | µs per token |",
        "|---|---:|---:|",
        *rows,
    ]
    h.publish(args, "compressed", "inputchecks", started, "Input checks of a compressed add", body)


if __name__ == "__main__":
    main()
