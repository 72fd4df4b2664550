"""Do two GPUs' encoding threads overlap? Pool throughput on one and two devices, then each
device's share of the plan run alone and both at once (device tool, kind nvidia-h200-x2)::

    python3 benchmarks/studies/gpu_pool_overlap.py .cache/gpu13/whl/ckpt-fp16
"""

import json
import sys
import threading
import time

import torch

from late_interaction import ColBERT
from late_interaction._encoding.device_threads import DeviceThreads

texts = [json.loads(line)["text"] for line in open(".cache/gpu13/scifact-docs.jsonl")] * 2
model = ColBERT.from_pretrained(sys.argv[1], device="cuda:0", dtype=torch.bfloat16)


def bench(label, fn):
    fn(texts[:2000])
    torch.cuda.synchronize()
    t = time.perf_counter()
    fn(texts)
    dt = time.perf_counter() - t
    print(f"{label}: {len(texts) / dt:.0f} docs/s", flush=True)


bench("model cuda:0", lambda t: model.encode_documents(t, batch_size=256, show_progress_bar=False))
for devs in (["cuda:0"], ["cuda:1"], ["cuda:0", "cuda:1"]):
    with DeviceThreads(model._pipeline.load_args, devs) as pool:  # start_pool's until f3d4c17
        print(devs, pool.workers, flush=True)
        for d in range(2):
            torch.cuda.reset_peak_memory_stats(d)
        bench(
            f"pool {devs}",
            lambda t: model.encode_documents(t, batch_size=256, show_progress_bar=False),
        )
        print(
            "peak MB per device",
            [torch.cuda.max_memory_allocated(d) // 2**20 for d in range(2)],
            flush=True,
        )
        # per-device time inside the threads
        if len(devs) == 2:
            from late_interaction._encoding.batches import plan_groups

            groups = plan_groups(texts, 256)

            def one(rank, groups=groups):
                p = pool._pipelines[rank]
                torch.cuda.set_device(p.device)
                t = time.perf_counter()
                for _ in p.run(texts, groups[rank::2], False, 256, False):
                    pass
                print(f"  thread {rank} alone-in-pair: {time.perf_counter() - t:.2f} s", flush=True)

            ths = [threading.Thread(target=one, args=(r,)) for r in range(2)]
            t = time.perf_counter()
            [x.start() for x in ths]
            [x.join() for x in ths]
            print(f"  both threads: {time.perf_counter() - t:.2f} s", flush=True)
            for r in range(2):
                t = time.perf_counter()
                one(r)
                print(f"  rank {r} sequential total {time.perf_counter() - t:.2f}")
