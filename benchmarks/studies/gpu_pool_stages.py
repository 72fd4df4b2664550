"""Which stage keeps two GPUs' encoding threads from overlapping? (device tool, nvidia-h200-x2)

The thread pool (``DeviceThreads``, which serves one-off ``devices=[...]`` calls on GPUs; until
f3d4c17 ``start_pool`` made it too) runs one thread per GPU in one process.
Each device gets every other group of the plan (``batches.plan_groups``). For each stage, each
device's share is timed alone (rank 0, then rank 1) and then both at once in two threads;
"overlap" is the sum of the two alone over the wall time of both at once (2.0: perfect, 1.0:
serialised):

* ``tokenize``: the batches made from the texts (Rust tokenizer, reads, rules, pinned copies);
* ``forward``: the module stack on batches already on the device (no host work but launching);
* ``flight``: forward plus the asynchronous copy back (``Pipeline._launch`` on pinned batches);
* ``run``: the whole per-device pipeline (``Pipeline.run``: tokenising thread, forward, copy);

then the public call: ``encode_documents`` on one GPU and through the two-GPU pool.

    python3 benchmarks/studies/gpu_pool_stages.py CHECKPOINT [--repeat 4] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import torch

from late_interaction import ColBERT
from late_interaction._encoding.batches import make_batches, plan_groups
from late_interaction._encoding.device_threads import DeviceThreads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--texts", default=".cache/gpu13/scifact-docs.jsonl")
    p.add_argument("--repeat", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args()
    bs = args.batch_size
    with open(args.texts, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f] * args.repeat
    model = ColBERT.from_pretrained(args.checkpoint, device="cuda:0", dtype=torch.bfloat16)
    encode = lambda t: model.encode_documents(t, batch_size=bs, show_progress_bar=False)  # noqa: E731
    print(f"{len(texts)} texts, batch {bs}, {args.checkpoint}")
    print(f"encode_documents, one GPU: {rate(encode, texts):.0f} docs/s", flush=True)
    with DeviceThreads(model._pipeline.load_args, ["cuda:0", "cuda:1"]) as pool:
        pooled = lambda t: pool.encode(t, False, bs, False)  # noqa: E731
        print(f"encode_documents, pool of two: {rate(pooled, texts):.0f} docs/s", flush=True)
        stages(pool._pipelines, texts, bs)


def rate(encode, texts: list[str]) -> float:
    """Best docs/s of two passes after a warm-up on the first 3,000 texts."""
    encode(texts[:3000])
    torch.cuda.synchronize()
    best = 0.0
    for _ in range(2):
        t0 = time.perf_counter()
        encode(texts)
        best = max(best, len(texts) / (time.perf_counter() - t0))
    return best


def stages(pipes, texts: list[str], bs: int) -> None:
    groups = plan_groups(texts, bs)
    share = [groups[0::2], groups[1::2]]

    def batches(r: int) -> list:
        p = pipes[r]
        return list(make_batches(p.tokenizer, p.rules, p.config, texts, share[r],
                                 is_query=False, batch_size=bs, pin=True))  # fmt: skip

    made = [batches(0), batches(1)]
    on_device = [
        [{k: v.to(pipes[r].device) for k, v in b.features.items()} for b in made[r]]
        for r in range(2)
    ]

    def forward(r: int) -> None:
        with torch.inference_mode():
            for features in on_device[r]:
                pipes[r]._forward(dict(features))
        torch.cuda.synchronize(pipes[r].device)

    def flight(r: int) -> None:
        pending: list = []
        for batch in made[r]:
            launched = pipes[r]._launch(batch, False)
            for f in pending:
                f.result()
            pending = launched
        for f in pending:
            f.result()

    def run(r: int) -> None:
        for _ in pipes[r].run(texts, share[r], False, bs, False):
            pass

    def timed(fn, r: int, out: dict) -> None:
        torch.cuda.set_device(pipes[r].device)
        t0 = time.perf_counter()
        fn(r)
        out[r] = time.perf_counter() - t0

    for name, fn in [("tokenize", batches), ("forward", forward), ("flight", flight),
                     ("run", run)]:  # fmt: skip
        for _ in range(2):  # warm-up: every shape on both devices
            for r in range(2):
                timed(fn, r, {})
        alone: dict = {}
        for r in range(2):
            timed(fn, r, alone)
        both: dict = {}
        threads = [threading.Thread(target=timed, args=(fn, r, both)) for r in range(2)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        print(f"{name:9s} alone r0 {alone[0]:.2f} r1 {alone[1]:.2f} sum {alone[0] + alone[1]:.2f}"
              f" | both wall {wall:.2f} (r0 {both[0]:.2f} r1 {both[1]:.2f}) overlap "
              f"x{(alone[0] + alone[1]) / wall:.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
