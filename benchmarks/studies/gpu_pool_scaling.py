"""Two GPUs against one, with tokenizer processes: threads or worker processes? (device tool)

Runs on ``nvidia-h200-x2``. Times ``encode_documents`` (docs/s, best of 2 passes after
a warm-up on the first 3,000 texts) on, in this order:

* ``one GPU``: cuda:0 in this process (its tokenizer process on all the host's cores);
* ``threads x2``: ``DeviceThreads`` on cuda:0 and cuda:1 (one thread per GPU in this process,
  each pipeline with a tokenizer process on half the cores);
* ``processes x1`` / ``processes x2``: ``EncodePool`` workers on cuda:0 / on both (each worker a
  process of its own with its own tokenizer process);

and each pool's start-up (until every worker can encode). "x one GPU" = docs/s over the first
row's. ``--pools`` picks the rows after the first.

    python3 benchmarks/studies/gpu_pool_scaling.py CHECKPOINT [--repeat 8] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchmarks.studies.gpu_pool_stages import rate
from late_interaction import ColBERT
from late_interaction._encoding.device_threads import DeviceThreads
from late_interaction._encoding.pool import EncodePool


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--texts", default=".cache/gpu13/scifact-docs.jsonl")
    p.add_argument("--repeat", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--pools", default="threads,processes")
    args = p.parse_args()
    bs = args.batch_size
    with open(args.texts, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f] * args.repeat
    t0 = time.perf_counter()
    model = ColBERT.from_pretrained(args.checkpoint, device="cuda:0", dtype=torch.bfloat16)
    loaded = time.perf_counter() - t0
    print(f"{len(texts)} texts, batch {bs}, bfloat16, {args.checkpoint}; "
          f"from_pretrained in this process {loaded:.1f} s", flush=True)  # fmt: skip
    print("| run | start s | docs/s | x one GPU |\n|---|---:|---:|---:|", flush=True)
    one = rate(lambda t: model.encode_documents(t, batch_size=bs, show_progress_bar=False), texts)
    print(f"| one GPU | - | {one:.0f} | 1.00x |", flush=True)
    load_args = model._pipeline.load_args
    kinds = args.pools.split(",")
    runs = [("threads x2", DeviceThreads, ["cuda:0", "cuda:1"])] if "threads" in kinds else []
    if "processes" in kinds:
        runs += [("processes x1", EncodePool, ["cuda:0"]),
                 ("processes x2", EncodePool, ["cuda:0", "cuda:1"])]  # fmt: skip
    for name, kind, devices in runs:
        t0 = time.perf_counter()
        pool = kind(load_args, devices)
        pool.encode(texts[:10], False, bs, False)  # the first job starts tokenizer processes
        start = time.perf_counter() - t0
        got = rate(lambda t, pool=pool: pool.encode(t, False, bs, False), texts)
        pool.close()
        print(f"| {name} | {start:.1f} | {got:.0f} | {got / one:.2f}x |", flush=True)
        if kind is EncodePool:  # seconds each worker spent loading, of its start
            print(f"<!-- workers' load_seconds: {[w['load_seconds'] for w in pool.workers]} -->")


if __name__ == "__main__":
    main()
