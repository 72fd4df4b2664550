"""On one GPU, what keeps tokenising and the forward pass from overlapping? (device tool)

``encode_documents`` on MiniLM-L6 in bfloat16 reaches 26-33% of the forward bound on an H200
while tokenising alone takes 65-70% of its time: the two barely overlap. This times, on the same
batches (median of ``--trials`` after a warm-up):

* ``e2e, N tokenizer processes``: ``encode_documents`` (the pipeline: tokenising, forward,
  copy back) with the tokenising in N worker processes (``tokenizer_process.py``; 0: in threads
  of this process, as before them); their start-up is left out (the warm-up pass pays it) and
  reported on its own;
* ``tokenize``: the tokenising side alone (``make_batches`` drained, pinned batches);
* ``loop``: the device side alone: the pipeline's launch-and-collect loop over batches made
  beforehand (forward, gather, copy back, collector thread);
* ``bound``: the module stack alone on inputs already on the device (``gpu.py``'s bound);
* ``loop + tokenizer process``: ``loop`` while another process tokenises the same texts over
  and over (the host's cores busy, but no interpreter shared);
* ``loop + tokenizer thread``: ``loop`` while a thread of this process does (cores and the GIL
  shared, as in ``e2e``).

If the loop slows down with a tokenizer thread but not with a tokenizer process, the GIL is what
they share; if it slows down with both, the cores are.

    python3 benchmarks/studies/gpu_one_overlap.py CHECKPOINT [--repeat 2] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import threading
import time

import torch

from benchmarks.studies.gpu import median_seconds
from late_interaction import ColBERT
from late_interaction._encoding.batches import make_batches, plan_groups


def _drain(pipe, texts: list[str], bs: int, pin: bool) -> list:
    groups = plan_groups(texts, bs)
    return list(make_batches(pipe.tokenizer, pipe.rules, pipe.config, texts, groups,
                             is_query=False, batch_size=bs, pin=pin))  # fmt: skip


def _tokenizer_process(checkpoint: str, texts: list[str], bs: int, started, stop) -> None:
    model = ColBERT.from_pretrained(checkpoint, device="cpu")
    started.set()
    while not stop.is_set():
        _drain(model._pipeline, texts, bs, pin=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--texts", default=".cache/gpu13/scifact-docs.jsonl")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--processes", default="0,1,2,4",
                   help="tokenizer processes to try, each N or N:RUST_THREADS")  # fmt: skip
    args = p.parse_args()
    bs = args.batch_size
    with open(args.texts, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f] * args.repeat
    model = ColBERT.from_pretrained(args.checkpoint, device="cuda:0", dtype=torch.bfloat16)
    pipe = model._pipeline
    cuda = pipe.device.type == "cuda"
    batches = _drain(pipe, texts, bs, pin=cuda)
    tokens = sum(int(b.counts.sum()) for b in batches)
    on_device = [{k: v.to(pipe.device) for k, v in b.features.items()} for b in batches]

    def loop() -> None:
        pending: list = []
        for batch in batches:
            launched = pipe._launch(batch, False)
            for flight in pending:
                flight.result()
            pending = launched
        for flight in pending:
            flight.result()

    def bound() -> None:
        with torch.inference_mode():
            for features in on_device:
                pipe._forward(dict(features))

    def e2e() -> None:
        model.encode_documents(texts, batch_size=bs, show_progress_bar=False)

    rows, starts = {}, {}
    for variant in args.processes.split(","):
        n, _, rayon = variant.partition(":")
        pipe.close()
        pipe.tokenizer_processes = int(n)
        if rayon:  # the processes inherit it (a value the caller set wins over the default)
            os.environ["RAYON_NUM_THREADS"] = rayon
        t0 = time.perf_counter()
        e2e()
        starts[variant] = time.perf_counter() - t0
        os.environ.pop("RAYON_NUM_THREADS", None)
        name = f"e2e, {n} tokenizer processes" + (f", {rayon} Rust threads each" if rayon else "")
        rows[name] = median_seconds(e2e, 1, args.trials)
    pipe.tokenizer_processes = 0
    rows |= {
        "tokenize": median_seconds(lambda: _drain(pipe, texts, bs, pin=cuda), 1, args.trials),
        "loop": median_seconds(loop, 1, args.trials),
        "bound": median_seconds(bound, 1, args.trials),
    }  # fmt: skip
    ctx = mp.get_context("spawn")
    started, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_tokenizer_process, args=(args.checkpoint, texts, bs, started, stop))
    proc.start()
    started.wait()
    time.sleep(1.0)
    rows["loop + tokenizer process"] = median_seconds(loop, 1, args.trials)
    stop.set()
    proc.join()
    halt = threading.Event()

    def churn() -> None:
        while not halt.is_set():
            _drain(pipe, texts, bs, pin=False)

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    time.sleep(1.0)
    rows["loop + tokenizer thread"] = median_seconds(loop, 1, args.trials)
    halt.set()
    thread.join()
    print(f"{len(texts)} texts, {tokens} kept tokens, batch {bs}, {args.checkpoint}")
    print("| stage | s | kept tokens/s | of the bound |")
    print("|---|---:|---:|---:|")
    for name, seconds in rows.items():
        rate = tokens / seconds
        print(f"| {name} | {seconds:.3f} | {rate / 1e6:.2f}M | {rows['bound'] / seconds:.0%} |")
    for n, seconds in starts.items():
        print(f"first call with {n} tokenizer processes (start-up included): {seconds:.2f} s")


if __name__ == "__main__":
    main()
