"""GPU mode: encoding against the forward bound and PyLate (1 and N GPUs), batched MaxSim.

Runs where torch sees a CUDA device (falls back to CPU otherwise, with smaller defaults). For each
dtype and batch size it measures, on the same checkpoint and texts:

* the forward bound: the module stack alone on batches tokenised beforehand and already on the
  device (what encoding could reach if tokenising and copying were free), in kept tokens/s;
* our end-to-end ``encode_documents`` (text in, numpy token matrices out), its ratio to the
  bound, and how long the tokenising (the background thread's work) takes alone, as a share
  of the end-to-end time;
* PyLate's ``encode`` in a subprocess (``--worker pylate``) whose ``PYTHONPATH`` starts with
  ``--pylate-site`` (PyLate 1.6.0 needs sentence-transformers 5.3); skipped, and said so in the
  report, when PyLate cannot be imported there;
* with ``--devices cuda:0,cuda:1``: the same encode through ``ColBERT.start_pool(devices)``,
  and its scaling over one device (pool start-up not timed).

MaxSim: one query (32 tokens) against ``--maxsim-docs`` synthetic unit-norm documents padded to
180 tokens in float16 -- the shape a GPU reranker or brute-force search scans. The floor is the
bytes of the document tensor read once over the card's measured copy bandwidth (read + write
bytes of a large device-to-device copy).

Writes ``gpu-<device>-<YYYYMMDD>-<HHMM>[-<tag>].md`` and ``.json`` (device e.g. ``h200``) to
``--results-dir``. ``gpu_prepare.sh`` packs what a bare GPU machine needs.

On the device (the H200 image: Python 3.12, torch, transformers; sentence-transformers 6.2 and
PyLate from the carried wheels), from the repository root, carrying ``.cache/gpu13``:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .cache/gpu13/whl/*.whl
    python3 -m pip install -q --no-index --no-deps --target /tmp/pl .cache/gpu13/whl/pylate/*.whl
    mkdir -p /tmp/pl/fast_plaid && echo 'def __getattr__(n): raise ImportError(n)' \
        > /tmp/pl/fast_plaid/__init__.py
    PYTHONPATH=/tmp/site:$PWD/integrations python3 -m benchmarks.studies.gpu \
        --checkpoint .cache/gpu13/whl/ckpt-fp16 --texts .cache/gpu13/scifact-docs.jsonl \
        --dtypes bfloat16,float16,float32 --batch-sizes 64,256 --repeat 4 \
        --pylate-site /tmp/pl --results-dir $OUT
    # 2 GPUs (the nvidia-h200-x2 kind): the same, plus --devices cuda:0,cuda:1 --dtypes bfloat16

Elsewhere: ``python -m benchmarks.studies.gpu --checkpoint DIR --texts docs.jsonl --results-dir
DIR`` (``--profile``: cProfile of our encoder instead).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import _harness as h

DIM, QTOK, DOC_LEN = 128, 32, 180


def _rate(tokens_per_s: float) -> str:
    return f"{tokens_per_s / 1e6:.2f}M" if tokens_per_s >= 1e5 else f"{tokens_per_s:,.0f}"


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_seconds(fn, warmup: int = 3, reps: int = 10) -> float:
    """Median seconds of ``fn`` (synchronised wall clock)."""
    for _ in range(warmup):
        fn()
    _sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def copy_bandwidth() -> float | None:
    """Device-to-device copy rate in GB/s, counting bytes read plus bytes written."""
    if not torch.cuda.is_available():
        return None
    src = torch.empty(2 * 1024**3 // 2, dtype=torch.float16, device="cuda").normal_()
    dst = torch.empty_like(src)
    t = median_seconds(lambda: dst.copy_(src))
    return 2 * src.numel() * 2 / t / 1e9


def synthetic_docs(n_docs: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit-norm float16 documents padded to DOC_LEN, their mask, and one 32-token query."""
    g = torch.Generator(device=_device()).manual_seed(seed)
    docs = torch.randn(n_docs, DOC_LEN, DIM, generator=g, device=_device(), dtype=torch.float16)
    docs = torch.nn.functional.normalize(docs, dim=-1)
    lengths = torch.randint(32, DOC_LEN + 1, (n_docs,), generator=g, device=_device())
    mask = torch.arange(DOC_LEN, device=_device())[None, :] < lengths[:, None]
    docs = docs * mask[..., None]
    query = torch.nn.functional.normalize(
        torch.randn(QTOK, DIM, generator=g, device=_device(), dtype=torch.float16), dim=-1
    )
    return docs, mask, query


def maxsim_reference(query, docs, mask, chunk: int = 8192) -> torch.Tensor:
    """What a bandwidth-minded MaxSim looks like in plain torch: half-precision matmul in
    chunks (float32 accumulation inside the tensor cores), -inf masking, max, sum."""
    out = torch.empty(docs.shape[0], dtype=torch.float32, device=docs.device)
    qt = query.to(docs.dtype).T
    for s in range(0, docs.shape[0], chunk):
        sims = docs[s : s + chunk] @ qt  # (c, L, Q)
        sims.masked_fill_(~mask[s : s + chunk, :, None], float("-inf"))
        out[s : s + chunk] = sims.amax(dim=1).float().sum(dim=1)
    return out


def encode_bench(encode, texts: list[str], batch_size: int, trials: int = 3) -> dict:
    """Median of ``trials`` timed passes after a warm-up pass over the same texts.

    The warm-up runs every batch shape once: the first pass at a new shape pays cuBLAS/SDPA
    kernel selection, which made single-pass timings swing by 1.5x between configurations.
    """
    embs = encode(texts, batch_size)  # warm-up (kernels for every shape, allocator)
    _sync()
    times = []
    for _ in range(trials):
        t0 = time.perf_counter()
        embs = encode(texts, batch_size)
        _sync()
        times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    n_tok = int(sum(e.shape[0] for e in embs))
    return {"docs": len(texts), "seconds": dt, "trials_s": times, "docs_per_s": len(texts) / dt,
            "tokens": n_tok, "tokens_per_s": n_tok / dt}  # fmt: skip


def forward_bound(model, texts: list[str], batch_size: int, trials: int = 3) -> dict:
    """The module stack alone over the batches ``encode_documents`` would run, inputs on the device.

    Tokens are the kept rows (what end-to-end encoding returns), so the two rates compare.
    """
    from late_interaction._encoding.batches import make_batches, plan_groups

    pipe = model._pipeline
    groups = plan_groups(texts, batch_size)
    batches = list(make_batches(pipe.tokenizer, pipe.rules, pipe.config, texts, groups,
                                is_query=False, batch_size=batch_size, pin=False))  # fmt: skip
    on_device = [{k: v.to(pipe.device) for k, v in b.features.items()} for b in batches]
    tokens = int(sum(int(b.counts.sum()) for b in batches))

    def run() -> None:
        with torch.inference_mode():
            for features in on_device:
                pipe._forward(dict(features))

    seconds = median_seconds(run, warmup=1, reps=trials)
    padded = sum(f["input_ids"].numel() for f in on_device)
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds,
            "padded_positions": padded}  # fmt: skip


def tokenise_alone(model, texts: list[str], batch_size: int) -> float:
    """Seconds the background thread's work takes alone: Rust tokenizer, padding, rules."""
    from late_interaction._encoding.batches import make_batches, plan_groups

    pipe = model._pipeline
    t0 = time.perf_counter()
    for _ in make_batches(pipe.tokenizer, pipe.rules, pipe.config, texts,
                          plan_groups(texts, batch_size), is_query=False, batch_size=batch_size,
                          pin=pipe.device.type == "cuda"):  # fmt: skip
        pass
    return time.perf_counter() - t0


def pool_scaling(model, texts: list[str], batch_size: int, devices: list[str]) -> dict:
    """End-to-end encoding through a pool on ``devices`` (start-up not timed)."""
    t0 = time.perf_counter()
    with model.start_pool(devices):
        started = time.perf_counter() - t0
        r = encode_bench(
            lambda t, b: model.encode_documents(t, batch_size=b, show_progress_bar=False),
            texts, batch_size,
        )  # fmt: skip
    return {"devices": devices, "start_s": started, **r}


def ours(args, texts) -> dict:
    from late_interaction import ColBERT, maxsim

    out: dict = {"encode": {}, "bound": {}, "tokenise_s": {}, "pool": {}}
    devices = [d for d in (args.devices or "").split(",") if d]
    for dtype in args.dtypes.split(","):
        model = ColBERT.from_pretrained(str(args.checkpoint), device=_device(), dtype=dtype)
        for bs in map(int, args.batch_sizes.split(",")):
            key = f"{dtype}/bs{bs}"
            r = encode_bench(
                lambda t, b, m=model: m.encode_documents(t, batch_size=b, show_progress_bar=False),
                texts, bs,
            )  # fmt: skip
            bound = forward_bound(model, texts, bs)
            out["encode"][key], out["bound"][key] = r, bound
            out["tokenise_s"][key] = tokenise_alone(model, texts, bs)
            print(f"ours {key}: {r['docs_per_s']:.0f} docs/s, {r['tokens_per_s'] / 1e6:.2f}M "
                  f"tokens/s = {r['tokens_per_s'] / bound['tokens_per_s']:.0%} of the forward "
                  f"bound ({bound['tokens_per_s'] / 1e6:.2f}M)", flush=True)  # fmt: skip
            if devices:
                pooled = pool_scaling(model, texts, bs, devices)
                pooled["scaling"] = pooled["tokens_per_s"] / r["tokens_per_s"]
                out["pool"][key] = pooled
                print(f"pool {key} on {devices}: {pooled['tokens_per_s'] / 1e6:.2f}M tokens/s, "
                      f"{pooled['scaling']:.2f}x one device", flush=True)  # fmt: skip
        del model
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    docs, mask, query = synthetic_docs(args.maxsim_docs)
    ref = maxsim_reference(query, docs, mask)
    got = maxsim(query, docs, documents_mask=mask)
    out["maxsim"] = {
        "ours_s": median_seconds(lambda: maxsim(query, docs, documents_mask=mask)),
        "reference_s": median_seconds(lambda: maxsim_reference(query, docs, mask)),
        "ours_vs_reference_max_abs": float((got.float() - ref).abs().max()),
        "bytes": docs.numel() * docs.element_size(),
    }
    return out


def pylate_worker(args, texts) -> dict:
    from pylate import models
    from pylate.scores import colbert_scores

    out: dict = {"encode": {}}
    for dtype in args.dtypes.split(","):
        model = models.ColBERT(model_name_or_path=str(args.checkpoint), device=_device())
        model = model.to(getattr(torch, dtype))
        for bs in map(int, args.batch_sizes.split(",")):

            def enc(t, b, m=model):
                return m.encode(t, is_query=False, batch_size=b, show_progress_bar=False)

            r = encode_bench(enc, texts, bs)
            out["encode"][f"{dtype}/bs{bs}"] = r
            print(f"pylate {dtype} bs{bs}: {r['docs_per_s']:.0f} docs/s", flush=True)
        del model
    docs, mask, query = synthetic_docs(args.maxsim_docs)
    ref = maxsim_reference(query, docs, mask)

    def score():  # chunked: one (1, n, 32, 180) float16 tensor for all docs would not fit
        return torch.cat([
            colbert_scores(query[None], docs[s : s + 8192], documents_mask=mask[s : s + 8192])[0]
            for s in range(0, docs.shape[0], 8192)
        ])  # fmt: skip

    got = score()
    out["maxsim"] = {
        "pylate_s": median_seconds(score),
        "pylate_vs_reference_max_abs": float((got.float() - ref).abs().max()),
        "note": "colbert_scores multiplies masked sims by 0 (not -inf); torch backend",
    }
    return out


def pylate_subprocess(args, module: str, options: list[str]) -> tuple[dict | None, str | None]:
    """Run ``module --worker pylate`` with ``--pylate-site`` first on ``PYTHONPATH``.

    PyLate 1.6.0 needs sentence-transformers 5.3, so its side runs in a process of its own.

    Args:
        args: The study's arguments (``pylate_site``, ``pylate_python``, ``checkpoint``, ``texts``).
        module: The study's module name (its ``--worker pylate`` writes ``pylate.json``).
        options: The study's own options for the worker.

    Returns:
        ``(the worker's JSON, None)``, or ``(None, the last line of its error)`` if it failed
        (e.g. no PyLate on this machine).
    """
    env = dict(os.environ)
    if args.pylate_site:
        env["PYTHONPATH"] = args.pylate_site + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [args.pylate_python, "-m", module, "--worker", "pylate",
               "--checkpoint", str(args.checkpoint.resolve()), "--texts", str(args.texts.resolve()),
               *options, "--out", tmp]  # fmt: skip
        proc = subprocess.run(cmd, env=env, cwd=h.REPO, check=False, capture_output=True,
                              text=True)  # fmt: skip
        print(proc.stdout, proc.stderr[-3000:], sep="\n", flush=True)
        if proc.returncode == 0:
            return json.loads((Path(tmp) / "pylate.json").read_text()), None
        lines = proc.stderr.strip().splitlines() or ["(no output)"]
        return None, lines[-1][:300]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--texts", type=Path, required=True, help="jsonl with a 'text' field")
    p.add_argument("--docs", type=int, default=None, help="first N texts (default: all on GPU)")
    p.add_argument("--repeat", type=int, default=1, help="encode the texts N times over")
    p.add_argument("--devices", default=None, help="also encode through a pool, e.g. cuda:0,cuda:1")
    p.add_argument("--batch-sizes", default=None)
    p.add_argument("--dtypes", default=None)
    p.add_argument("--maxsim-docs", type=int, default=None)
    p.add_argument("--pylate-site", default=None, help="PYTHONPATH prefix for the PyLate side")
    p.add_argument("--pylate-python", default=sys.executable, help="interpreter for PyLate")
    p.add_argument("--worker", choices=["pylate"], default=None)
    p.add_argument("--profile", action="store_true", help="cProfile our encoder, then exit")
    p.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)  # worker's folder
    h.result_options(p)
    args = p.parse_args()
    started = dt.datetime.now()
    gpu = torch.cuda.is_available()
    args.docs = args.docs or (10**9 if gpu else 200)
    args.batch_sizes = args.batch_sizes or ("64,256" if gpu else "32")
    args.dtypes = args.dtypes or ("bfloat16,float16,float32" if gpu else "float32")
    args.maxsim_docs = args.maxsim_docs or (100_000 if gpu else 2_000)
    with args.texts.open() as f:
        texts = [json.loads(line)["text"] for line in f][: args.docs] * args.repeat
    if args.worker == "pylate":
        (args.out / "pylate.json").write_text(json.dumps(pylate_worker(args, texts)))
        return

    if args.profile:
        profile_encoder(args, texts)
        return
    info = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "copy_GBps": copy_bandwidth(),
        "docs": len(texts),
        "repeat": args.repeat,
        "cpu_cores": os.cpu_count(),
        "maxsim_docs": args.maxsim_docs,
    }
    print(info, flush=True)
    res = {"info": info, "ours": ours(args, texts)}
    torch.cuda.empty_cache() if gpu else None
    options = ["--docs", str(args.docs), "--repeat", str(args.repeat),
               "--batch-sizes", args.batch_sizes, "--dtypes", args.dtypes,
               "--maxsim-docs", str(args.maxsim_docs)]  # fmt: skip
    pylate, error = pylate_subprocess(args, __spec__.name, options)
    if pylate is not None:
        res["pylate"] = pylate
    else:  # e.g. no PyLate on this machine: the report says so
        res["pylate_error"] = error
    title = f"GPU mode — {info['device']}"
    h.publish(args, "gpu", _device_label(info["device"]), started, title, [render(res)], data=res)


def _device_label(name: str) -> str:
    """``NVIDIA H100 80GB HBM3`` -> ``h100`` (the model token), for result file names."""
    for token in re.split(r"[\s-]+", name):
        if re.fullmatch(r"[A-Za-z]+\d+[A-Za-z]*", token):
            return token.lower()
    return re.sub(r"[^a-z0-9]", "", name.lower())[:24] or "device"


def profile_encoder(args, texts) -> None:
    """Where our document encoding spends its time: tokenizer, forward, host copy (cProfile)."""
    import cProfile
    import pstats

    from late_interaction import ColBERT

    dtype, bs = args.dtypes.split(",")[-1], int(args.batch_sizes.split(",")[-1])
    model = ColBERT.from_pretrained(str(args.checkpoint), device=_device(), dtype=dtype)
    model.encode_documents(texts[: 2 * bs], batch_size=bs)
    _sync()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    model.encode_documents(texts, batch_size=bs, show_progress_bar=False)
    _sync()
    prof.disable()
    print(f"profile: {len(texts)} docs, {dtype}, batch {bs}: {time.perf_counter() - t0:.2f}s")
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


def render(res: dict) -> str:
    info, o, b = res["info"], res["ours"], res.get("pylate", {})
    nan = float("nan")
    lines = [
        f"GPU mode on {info['device']} (torch {info['torch']}, {info['cpu_cores']} CPU cores), "
        f"{info['docs']} SciFact docs ({info['repeat']}x the corpus)",
        "",
        "Forward bound: the module stack alone on the same batches, tokenised beforehand and on "
        "the device. Tokenise alone: the background thread's work (Rust tokenizer, padding, "
        "rules) run by itself; its share of the end-to-end time says how much of it is left "
        "showing. Tokens are kept token vectors.",
        "",
        "| Encoding | forward bound tokens/s | ours tokens/s | of bound | tokenise alone, "
        "share | ours docs/s | PyLate docs/s | ours / PyLate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, r in o["encode"].items():
        bound, tok = o["bound"][key], o["tokenise_s"][key]
        pb = b.get("encode", {}).get(key, {})
        ratio = r["docs_per_s"] / pb["docs_per_s"] if pb else nan
        lines.append(
            f"| {key} | {_rate(bound['tokens_per_s'])} | {_rate(r['tokens_per_s'])} | "
            f"{r['tokens_per_s'] / bound['tokens_per_s']:.0%} | {tok:.2f} s, "
            f"{tok / r['seconds']:.0%} | {r['docs_per_s']:.0f} | "
            f"{pb.get('docs_per_s', nan):.0f} | {ratio:.2f} |"
        )
    if "pylate_error" in res:
        lines += ["", f"PyLate side did not run here: `{res['pylate_error']}`."]
    if o.get("pool"):
        lines += [
            "",
            "| Pool encoding | devices | tokens/s | docs/s | x one device | start-up s |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for key, r in o["pool"].items():
            lines.append(
                f"| {key} | {', '.join(r['devices'])} | {_rate(r['tokens_per_s'])} | "
                f"{r['docs_per_s']:.0f} | {r['scaling']:.2f} | {r['start_s']:.1f} |"
            )
    m = o["maxsim"]
    bw = info["copy_GBps"]
    floor = m["bytes"] / (bw * 1e9) if bw else float("nan")
    lines += [
        "",
        f"MaxSim, 1 query x {info['maxsim_docs']:,} docs x {DOC_LEN} tokens fp16 "
        f"({m['bytes'] / 1e9:.2f} GB read); copy bandwidth {bw or float('nan'):.0f} GB/s "
        f"-> floor {floor * 1e3:.2f} ms",
        "",
        "| MaxSim implementation | ms | GB/s achieved | x floor |",
        "|---|---:|---:|---:|",
    ]
    for label, t in [
        ("ours `maxsim` (torch path)", m["ours_s"]),
        (
            "PyLate `colbert_scores` (torch backend, chunked 8192)",
            b.get("maxsim", {}).get("pylate_s"),
        ),
        ("plain-torch reference (fp16 matmul, chunked)", m["reference_s"]),
    ]:
        if t:
            lines.append(
                f"| {label} | {t * 1e3:.2f} | {m['bytes'] / t / 1e9:.0f} | {t / floor:.1f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
