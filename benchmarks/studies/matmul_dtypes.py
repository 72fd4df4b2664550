"""CPU matrix-product speed by library and dtype for the compressed index's two product shapes.

The build's nearest-centroid assignment multiplies a chunk of token vectors by a group of
centroids (``--rows`` x dim x ``--cols``, then an argmax per row); a search's probe multiplies the
query tokens by every centroid (32 x dim x ``--centroids``). Each is timed by process CPU time,
rounds interleaved, for numpy float32 (OpenBLAS) and torch float32 / bfloat16 / float16 (oneDNN
or MKL), with one thread unless the environment says otherwise; the argmax is timed with the
product (it runs on the product's dtype).

Usage (from the repository root; writes ``benchmarks/results/matmul-dtypes-<stamp>.md``):
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 PYTHONPATH=integrations \\
        python -m benchmarks.studies.matmul_dtypes
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np

from benchmarks import _harness as h


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--rows", type=int, default=32_768)
    p.add_argument("--cols", type=int, default=2_048)
    p.add_argument("--centroids", type=int, default=32_768)
    p.add_argument("--rounds", type=int, default=3)
    h.result_options(p)
    args = p.parse_args()
    started = dt.datetime.now()
    import torch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.dim)).astype(np.float32)
    w = rng.standard_normal((args.cols, args.dim)).astype(np.float32)
    q = rng.standard_normal((32, args.dim)).astype(np.float32)
    c = rng.standard_normal((args.centroids, args.dim)).astype(np.float32)

    def variants(a: np.ndarray, b: np.ndarray, argmax: bool) -> dict:
        out = {"numpy float32": lambda: a @ b.T}
        for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16),
                            ("float16", torch.float16)):  # fmt: skip
            ta, tb = torch.from_numpy(a).to(dtype), torch.from_numpy(b).to(dtype)
            out[f"torch {name}"] = lambda ta=ta, tb=tb: ta @ tb.T
        if argmax:
            return {k: (lambda f=f: f().argmax(1)) for k, f in out.items()}
        return out

    shapes = {
        f"assignment {args.rows:,} x {args.dim} x {args.cols:,} + argmax": (x, w, True, 3),
        f"probe 32 x {args.dim} x {args.centroids:,}": (q, c, False, 50),
    }
    rows = []
    for label, (a, b, argmax, reps) in shapes.items():
        fns = variants(a, b, argmax)
        times: dict[str, list[float]] = {k: [] for k in fns}
        for f in fns.values():
            f()
        for _ in range(args.rounds):
            for k, f in fns.items():
                c0 = time.process_time()
                for _ in range(reps):
                    f()
                times[k].append((time.process_time() - c0) / reps)
        flops = 2 * a.shape[0] * a.shape[1] * b.shape[0]
        for k, v in times.items():
            med = float(np.median(v))
            rows.append(f"| {label} | {k} | {med * 1000:.2f} | {flops / med / 1e9:.0f} |")
            print(rows[-1], flush=True)
    body = [
        f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), torch threads "
        f"{torch.get_num_threads()}; {args.rounds} interleaved rounds, median; CPU time.",
        "",
        "| product | library / dtype | CPU ms | GFLOP/s |",
        "|---|---|---:|---:|",
        *rows,
    ]
    h.publish(args, "matmul", "dtypes", started, "Matrix products by dtype", body)


if __name__ == "__main__":
    main()
