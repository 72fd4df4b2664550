"""GPU rerank latency: ``ColBERT.rerank`` with the rows kept on the GPU, against the host trip.

One query against k candidate passages (k = 20, 100, 1000 by default), batch size 32 (rerank's
default), one dtype, three ways (median of ``--reps`` calls each):

* **host trip**: what ``rerank`` did before the rows stayed on the device -- ``encode_queries``
  and ``encode_documents`` to numpy (every document's rows copied to the host), each matrix
  copied back to the GPU, ``maxsim`` there, scores to the host, sorted;
* **on device**: ``ColBERT.rerank`` as it is now (rows stay on the GPU, one copy of the scores);
  these two are timed interleaved in one process, the better of two rounds each;
* **PyLate**: ``models.ColBERT.encode`` for the query and the candidates, then
  ``pylate.rank.rerank``, in a subprocess whose ``PYTHONPATH`` starts with ``--pylate-site``
  (PyLate 1.6.0 needs sentence-transformers 5.3), after ours (not interleaved); left out, and
  said so, where it cannot import.

It also checks that the first two give the same order and scores (max |delta|).

On the device (see ``gpu.py`` for the install lines), carrying ``.cache/gpu13``:

    PYTHONPATH=/tmp/site:$PWD/integrations python3 -m benchmarks.studies.gpu_rerank \\
        --checkpoint .cache/gpu13/whl/ckpt-fp16 --texts .cache/gpu13/scifact-docs.jsonl \\
        --pylate-site /tmp/pl --results-dir $OUT

Elsewhere it runs on the CPU (where ``rerank`` takes the numpy path: "on device" is then the
host path too), with smaller defaults.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks import _harness as h
from benchmarks.studies.gpu import _device_label, median_seconds, pylate_subprocess


def _candidates(texts: list[str], k: int) -> tuple[str, list[str]]:
    """A query (the first 12 words of a passage) and k candidates that include that passage."""
    query = " ".join(texts[0].split()[:12])
    return query, texts[:k]


def host_trip(model, query: str, docs: list[str], batch_size: int) -> tuple[list[int], np.ndarray]:
    """The rerank path before this change: numpy out, each matrix back to the device, MaxSim.

    With the encoder's dense fusion, as ``rerank`` does (the dense vectors of the same passes).
    """
    from late_interaction import maxsim
    from late_interaction.fusion import encoder_dense_weight, fused_scores

    weight = encoder_dense_weight(model)
    (q,), q_dense = model.encode_queries([query], batch_size=1, return_dense=True)
    matrices, d_dense = model.encode_documents(docs, batch_size=batch_size, return_dense=True)
    device = model.device
    scores = maxsim(
        torch.as_tensor(q, device=device), [torch.as_tensor(d, device=device) for d in matrices]
    ).cpu().numpy()  # fmt: skip
    fused = fused_scores(scores, q.shape[0], d_dense @ q_dense[0] if weight else None, weight)
    return np.argsort(-fused, kind="stable").tolist(), scores


def ours(args, texts: list[str]) -> tuple[dict, float]:
    from late_interaction import ColBERT

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = ColBERT.from_pretrained(str(args.checkpoint), device=device, dtype=args.dtype)
    out: dict = {}
    for k in args.ks:
        query, docs = _candidates(texts, k)
        order, scores = host_trip(model, query, docs, args.batch_size)
        got = model.rerank(query, docs, batch_size=args.batch_size)
        out[k] = {
            "same_order": order == [r.position for r in got],
            "max_abs_delta": float(max(abs(r.score - scores[r.position]) for r in got)),
        }
        paths = {
            "host_trip": lambda q=query, d=docs: host_trip(model, q, d, args.batch_size),
            "on_device": lambda q=query, d=docs: model.rerank(q, d, batch_size=args.batch_size),
        }
        # Interleaved: each path's timing sees the same GPU clocks and host load.
        for _ in range(2):
            for name, fn in paths.items():
                t = median_seconds(fn, warmup=2, reps=args.reps)
                out[k].setdefault(name, []).append(t)
        for name in ("host_trip", "on_device"):
            out[k][name] = min(out[k][name])  # the better of the two interleaved medians
        print(k, out[k], flush=True)
    return out, model.config.dense_weight


def pylate_worker(args, texts: list[str]) -> dict:
    from pylate import models, rank

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = models.ColBERT(model_name_or_path=str(args.checkpoint), device=device)
    model = model.to(getattr(torch, args.dtype))
    out: dict = {}
    for k in args.ks:
        query, docs = _candidates(texts, k)

        def run(q=query, d=docs):
            qe = model.encode([q], is_query=True, batch_size=1, show_progress_bar=False)
            de = model.encode(d, is_query=False, batch_size=args.batch_size,
                              show_progress_bar=False)  # fmt: skip
            return rank.rerank(
                documents_ids=[list(range(len(d)))], queries_embeddings=qe,
                documents_embeddings=[de], device=device,
            )  # fmt: skip

        out[k] = {"pylate": median_seconds(run, warmup=2, reps=args.reps)}
        print("pylate", k, out[k], flush=True)
    return out


def run_pylate(args) -> tuple[dict | None, str | None]:
    options = ["--ks", ",".join(map(str, args.ks)), "--dtype", args.dtype,
               "--batch-size", str(args.batch_size), "--reps", str(args.reps)]  # fmt: skip
    data, error = pylate_subprocess(args, __spec__.name, options)
    return (None if data is None else {int(k): v for k, v in data.items()}), error


def render(info: dict, res: dict, pylate: dict | None, error: str | None) -> list[str]:
    lines = [
        f"Device: {info['device']}, torch {info['torch']}, {info['cpu_cores']} CPU cores; "
        f"checkpoint `{info['checkpoint']}` (dense_weight {info['dense_weight']}), "
        f"{info['dtype']}, batch size {info['batch_size']}, "
        f"median of {info['reps']} calls (the better of two interleaved rounds).",
        "",
        "| candidates | host trip ms | on device ms | host trip / on device | PyLate ms "
        "| PyLate / on device | same order | max abs delta |",
        "|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for k, r in res.items():
        p = (pylate or {}).get(k, {}).get("pylate")
        base = ("-", "-") if p is None else (f"{p * 1e3:.2f}", f"{p / r['on_device']:.2f}x")
        lines.append(
            f"| {k} | {r['host_trip'] * 1e3:.2f} | {r['on_device'] * 1e3:.2f} "
            f"| {r['host_trip'] / r['on_device']:.2f}x | {base[0]} | {base[1]} "
            f"| {r['same_order']} | {r['max_abs_delta']:.1e} |"
        )
    if error:
        lines += ["", f"PyLate side did not run here: `{error}`."]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--texts", type=Path, required=True, help="jsonl with a 'text' field")
    p.add_argument("--ks", default=None, help="candidate counts, e.g. 20,100,1000")
    p.add_argument("--dtype", default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--pylate-site", default=None, help="PYTHONPATH prefix for the PyLate side")
    p.add_argument("--pylate-python", default=sys.executable, help="interpreter for PyLate")
    p.add_argument("--worker", choices=["pylate"], default=None)
    p.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)  # worker's folder
    h.result_options(p)
    args = p.parse_args()
    started = dt.datetime.now()
    gpu = torch.cuda.is_available()
    args.ks = [int(k) for k in (args.ks or ("20,100,1000" if gpu else "20,100")).split(",")]
    args.dtype = args.dtype or ("bfloat16" if gpu else "float32")
    args.reps = args.reps or (20 if gpu else 5)
    with args.texts.open() as f:
        texts = [json.loads(line)["text"] for line in f][: max(args.ks)]
    if args.worker == "pylate":
        (args.out / "pylate.json").write_text(json.dumps(pylate_worker(args, texts)))
        return
    info = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "cpu_cores": os.cpu_count(),
        "checkpoint": args.checkpoint.name,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "reps": args.reps,
    }
    res, info["dense_weight"] = ours(args, texts)
    pylate, error = run_pylate(args)
    title = f"GPU rerank latency — {info['device']}"
    body = render(info, res, pylate, error)
    data = {"info": info, "ours": res, "pylate": pylate, "pylate_error": error}
    h.publish(args, "gpu-rerank", _device_label(info["device"]), started, title, body, data=data)


if __name__ == "__main__":
    main()
