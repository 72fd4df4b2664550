"""The process pool (``pool.EncodePool``) on GPUs: scaling and the parent's CPU.

Device tool, nvidia-h200-x2; SciFact x4, bfloat16::

    python3 benchmarks/studies/gpu_process_pool.py CHECKPOINT BATCH_SIZE

Prints docs/s (best of two passes after a warm-up) and the parent's CPU seconds per wall
second, for one GPU in this process, then the pool on cuda:0, then on cuda:0 and cuda:1.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from late_interaction import ColBERT
from late_interaction._encoding.pool import EncodePool


def main() -> None:
    bs = int(sys.argv[2])
    with open(".cache/gpu13/scifact-docs.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f] * 4
    model = ColBERT.from_pretrained(sys.argv[1], device="cuda:0", dtype=torch.bfloat16)

    def rate(encode) -> tuple[float, float]:
        encode(texts[:3000])
        best = (0.0, 0.0)
        for _ in range(2):
            t0, c0 = time.perf_counter(), time.process_time()
            encode(texts)
            wall = time.perf_counter() - t0
            best = max(best, (len(texts) / wall, (time.process_time() - c0) / wall))
        return best

    one = rate(lambda t: model.encode_documents(t, batch_size=bs, show_progress_bar=False))
    print(f"one GPU in-process: {one[0]:.0f} docs/s, parent CPU {one[1]:.2f} s/s", flush=True)
    for devs in (["cuda:0"], ["cuda:0", "cuda:1"]):
        t0 = time.perf_counter()
        pool = EncodePool(model._pipeline.load_args, devs)
        start = time.perf_counter() - t0
        got = rate(lambda x, p=pool: p.encode(x, False, bs, False))
        print(f"process pool {devs} (start {start:.1f} s): {got[0]:.0f} docs/s, "
              f"parent CPU {got[1]:.2f} s/s", flush=True)  # fmt: skip
        pool.close()


if __name__ == "__main__":
    main()
