"""One process per GPU, no Python shared: a fixed amount of work alone and both at once.

Each process loads its own copy, warms up, writes ``/tmp/ready-<device index>`` and waits for
``/tmp/go``, so two processes start their timed work together (device tool, nvidia-h200-x2)::

    go() { what=$1; shift; rm -f /tmp/go /tmp/ready-*
      for d in "$@"; do python3 benchmarks/studies/gpu_two_processes.py $what $d CKPT & done
      while [ $(ls /tmp/ready-* 2>/dev/null | wc -l) -lt $# ]; do sleep 0.2; done
      touch /tmp/go; wait; }
    go forward cuda:0; go forward cuda:1; go forward cuda:0 cuda:1   # and: go matmul ...

``matmul``: 40 x 20 bfloat16 8192^2 matrix products. ``forward``: the module stack of CKPT on
2x SciFact's documents in batches of 1024 already on the device, six times over.
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch


def main() -> None:
    what, dev = sys.argv[1], sys.argv[2]
    torch.cuda.set_device(dev)
    if what == "matmul":
        a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)

        def step() -> None:
            for _ in range(20):
                a @ a

        n = 40
    else:
        from late_interaction import ColBERT
        from late_interaction._encoding.batches import make_batches, plan_groups

        with open(".cache/gpu13/scifact-docs.jsonl", encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for line in f] * 2
        p = ColBERT.from_pretrained(sys.argv[3], device=dev, dtype=torch.bfloat16)._pipeline
        groups = plan_groups(texts, 1024)
        made = make_batches(p.tokenizer, p.rules, p.config, texts, groups,
                            is_query=False, batch_size=1024, pin=True)  # fmt: skip
        feats = [{k: v.to(dev) for k, v in b.features.items()} for b in made]

        def step() -> None:
            with torch.inference_mode():
                for f in feats:
                    p._forward(dict(f))

        n = 6
    step()
    torch.cuda.synchronize()
    open(f"/tmp/ready-{dev[-1]}", "w").close()
    while not os.path.exists("/tmp/go"):
        time.sleep(0.001)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    torch.cuda.synchronize()
    print(f"{what} {dev}: {time.perf_counter() - t0:.2f} s", flush=True)


if __name__ == "__main__":
    main()
