"""One command for the side-by-side speed/quality table: late-interaction vs PyLate (+ LlamaIndex).

Both sides load the same PyLate-format checkpoint (embedded MiniLM + seeded 384->128 Dense, built
by PyLate itself into ``.cache/benchmarks/minilm-colbert-128``). Every phase of every side runs in
a fresh subprocess -- ours (``benchmarks._side_ours``) with this interpreter, the baselines
(``benchmarks._side_pylate``) with ``.venv-baselines/bin/python``, both as ``-m`` modules from
the repository root -- so peak memory is per phase and the two dependency sets never meet.
Embeddings are encoded once per side and cached, so index and search phases never re-encode.
Results go to ``benchmarks/results/compare-<dataset>-<YYYYMMDD>-<HHMM>[-<device>][-<tag>].md``
and ``.json`` (and a copy of the report to ``latest.md``), with machine, versions and command.

Usage (from the repository root; ``bash benchmarks/setup_baselines.sh`` first):
    .venv/bin/python -m benchmarks.compare --data ../shared/data/scifact      # full run
    .venv/bin/python -m benchmarks.compare --max-docs 300 --n-queries 50 \\
        --rerank-queries 20 --encode-docs 100                                 # quick check
    .venv/bin/python -m benchmarks.compare --sides ours --phases search --reuse  # one phase again
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import _harness as h
from benchmarks._beir import load_beir, ndcg_at_k, overlap_at_k, recall_at_k
from benchmarks._harness import median
from benchmarks._report import render_report

logger = logging.getLogger("compare")

REUSED: list[str] = []  # "side/phase (file time)" of results taken from an earlier run
PHASES = ("encode", "embed", "index", "search", "rerank")
# Encoding-only variants of "ours" (same checkpoint): from_pretrained options of each.
VARIANTS = {
    "ours-auto": {"--dtype": "auto"},  # bfloat16 autocast on a CPU with native bfloat16
    "ours-onnx": {"--backend": "onnx"},
    "ours-openvino": {"--backend": "openvino"},
    "ours-openvino-auto": {"--backend": "openvino", "--dtype": "auto"},
    "ours-onnx-int8": {"--backend": "onnx", "--quantize": "int8"},
    "ours-openvino-int8": {"--backend": "openvino", "--quantize": "int8"},
}
_ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def _side_cmd(side: str, phase: str, args: argparse.Namespace, out: Path, **extra) -> list[str]:
    """The command line of one side's phase; it runs with cwd = repository root (``-m``)."""
    ours = side.startswith("ours")
    python = sys.executable if ours else str(args.baseline_python)
    module = "benchmarks._side_ours" if ours else "benchmarks._side_pylate"
    cmd = [python, "-m", module, "--phase", phase, "--data", str(args.data), "--out", str(out)]
    opts = {
        "--checkpoint": "default" if side == "ours-default" else str(args.checkpoint),
        "--device": args.device,
        "--batch-size": args.batch_size,
        "--encode-docs": args.encode_docs,
        "--latency-queries": args.latency_queries,
        "--work-dir": str(args.work_dir / side),
        **extra,
    }
    opts.update(VARIANTS.get(side, {}))
    if side == "ours-default" and args.default_settings:
        opts["--encoder-settings"] = args.default_settings
    for flag, value in [("--max-docs", args.max_docs), ("--n-queries", args.n_queries)]:
        if value is not None:
            opts[flag] = value
    for flag, value in opts.items():
        cmd += [flag, str(value)]
    return cmd


def run_phase(side: str, phase: str, args: argparse.Namespace, **extra) -> dict:
    """Run one phase of one side in a fresh process; return its JSON result."""
    out = args.work_dir / "json" / f"{side}-{phase}.json"
    if args.reuse and out.exists():
        logger.info("reusing %s", out)
        REUSED.append(f"{side}/{phase} ({dt.datetime.fromtimestamp(out.stat().st_mtime):%H:%M})")
        return json.loads(out.read_text())
    out.unlink(missing_ok=True)
    cmd = _side_cmd(side, phase, args, out, **extra)
    log = args.work_dir / "logs" / f"{side}-{phase}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    logger.info("%s/%s ...", side, phase)
    t0 = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run(
            cmd, stdout=f, stderr=subprocess.STDOUT, env=_ENV, cwd=h.REPO, check=False
        )
    if proc.returncode != 0 or not out.exists():
        tail = "\n".join(log.read_text().splitlines()[-25:])
        msg = f"{side}/{phase} failed (exit {proc.returncode}); command:\n{shlex.join(cmd)}\n{tail}"
        raise RuntimeError(msg)
    logger.info("%s/%s done in %.0fs", side, phase, time.perf_counter() - t0)
    return json.loads(out.read_text())


def encode_interleaved(args: argparse.Namespace, sides: list[str]) -> dict[str, dict]:
    """Encoding throughput and query latency, A/B-interleaved between warm servers.

    Both sides' models stay loaded in their own processes; each round encodes the same slice of
    documents (and single queries) on one side and then the other, alternating who goes first.
    On a shared machine, load from other processes then hits both sides alike, and the median of
    the per-round ratios is the robust figure.
    """
    sides = [s for s in sides if s in ("ours", "pylate", *VARIANTS)]
    out = args.work_dir / "json" / "encode.json"
    if args.reuse and out.exists():
        REUSED.append(f"encode ({dt.datetime.fromtimestamp(out.stat().st_mtime):%H:%M})")
        return json.loads(out.read_text())
    procs, info = {}, {}
    (args.work_dir / "logs").mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    for side in sides:
        cmd = _side_cmd(side, "encode", args, args.work_dir / "json" / f"{side}-encode-srv.json")
        log = (args.work_dir / "logs" / f"{side}-encode.log").open("w")
        procs[side] = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            env=_ENV, cwd=h.REPO,
        )  # fmt: skip
    logger.info("encode: loading %s ...", ", ".join(sides))

    def ask(side: str, obj: dict) -> dict:
        proc = procs[side]
        if obj:
            proc.stdin.write(json.dumps(obj) + "\n")
            proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            msg = (
                f"{side} encode server exited; see {args.work_dir / 'logs' / f'{side}-encode.log'}"
            )
            raise RuntimeError(msg)
        return json.loads(line)

    for side in sides:
        info[side] = ask(side, {})
    rounds = max(1, args.encode_rounds)
    per = max(1, args.encode_docs // rounds)
    per_q = max(1, args.latency_queries // rounds)
    trials: dict[str, list[dict]] = {s: [] for s in sides}
    qtimes: dict[str, list[float]] = {s: [] for s in sides}
    loads: list[float] = []  # 1-minute load average after each round (the machine is shared)
    for r in range(rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for side in order:
            trials[side].append(ask(side, {"op": "docs", "start": r * per, "n": per}))
        for side in order:
            qtimes[side] += ask(side, {"op": "queries", "start": r * per_q, "n": per_q})["times"]
        loads.append(os.getloadavg()[0])
        logger.info("encode round %d/%d (load %.1f): %s", r + 1, rounds, loads[-1], {
            s: round(trials[s][-1]["docs"] / trials[s][-1]["seconds"], 1) for s in sides
        })  # fmt: skip
    for side in sides:
        procs[side].stdin.write(json.dumps({"op": "quit"}) + "\n")
        procs[side].stdin.close()
        procs[side].wait(timeout=60)
    res = {}
    for side in sides:
        t = trials[side]
        secs, docs = sum(x["seconds"] for x in t), sum(x["docs"] for x in t)
        toks = sum(x["tokens"] for x in t)
        res[side] = {
            "docs": docs, "tokens": toks, "seconds": secs, "batch_size": args.batch_size,
            "docs_per_s": docs / secs, "tokens_per_s": toks / secs,
            "round_docs_per_s": [x["docs"] / x["seconds"] for x in t],
            "query_latency": h.latency_stats(qtimes[side]), "device": args.device,
            "torch_threads": info[side].get("torch_threads"), "rounds": rounds,
            "dtype": info[side].get("dtype"), "backend": info[side].get("backend"),
            "load_avg_1min_rounds": loads,
            "token_cosine_vs_float32": info[side].get("token_cosine_vs_float32"),
        }  # fmt: skip
    for side in sides:
        if side != "pylate" and "pylate" in res:
            a, b = res[side]["round_docs_per_s"], res["pylate"]["round_docs_per_s"]
            res[side]["median_round_ratio"] = median([x / y for x, y in zip(a, b, strict=True)])
    out.write_text(json.dumps(res, indent=1))
    return res


def bm25_candidates(ds, args) -> Path:
    """BM25 (bm25s) top-100 per query, written once as JSON {query id: [doc ids]}."""
    path = args.work_dir / "bm25-top100.json"
    if path.exists():
        return path
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(ds.doc_texts, stopwords="en", show_progress=False),
                    show_progress=False)  # fmt: skip
    qids = list(ds.queries)
    toks = bm25s.tokenize([ds.queries[q] for q in qids], stopwords="en", show_progress=False)
    k = min(100, len(ds.doc_ids))
    docs, _ = retriever.retrieve(toks, k=k, show_progress=False)
    cand = {q: [ds.doc_ids[int(i)] for i in row] for q, row in zip(qids, docs, strict=True)}
    path.write_text(json.dumps(cand))
    return path


def _quality(search: dict, qrels: dict) -> dict:
    qids = list(search["run_k10"])
    sub = {q: qrels[q] for q in qids if q in qrels}
    run10, run100 = search["run_k10"], search["run_k100"]
    return {
        "ndcg@10": ndcg_at_k(run10, sub, 10),
        "recall@100": recall_at_k(run100, sub, 100),
        "ann_recall@10_vs_exact": overlap_at_k(
            [run10[q] for q in qids], [search["exact_k10"][q] for q in qids], 10
        ),
        "exact_ndcg@10": ndcg_at_k(search["exact_k10"], sub, 10),
        "queries": len(sub),
    }


def _rerank_quality(res: dict, qrels: dict) -> dict:
    sub = {q: qrels[q] for q in res["run"] if q in qrels}
    return {"ndcg@10": ndcg_at_k(res["run"], sub, 10), "queries": len(sub), **res["latency"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=h.SHARED_DATA / "scifact")
    p.add_argument("--max-docs", type=int, default=None, help="first N docs + all judged ones")
    p.add_argument("--n-queries", type=int, default=None, help="queries for search (all)")
    p.add_argument("--rerank-queries", type=int, default=100, help="queries for rerank rows")
    p.add_argument("--checkpoint", type=Path, default=h.CHECKPOINT_DIR)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--encode-docs", type=int, default=500)
    p.add_argument("--latency-queries", type=int, default=50)
    p.add_argument("--encode-rounds", type=int, default=5, help="A/B-interleaved rounds")
    p.add_argument(
        "--sides",
        default="ours,pylate,ours-default,ours-auto",
        help="comma list of ours, pylate, ours-default (embedded model, quality rows), and "
        f"encoding-only variants of ours: {', '.join(VARIANTS)}",
    )
    p.add_argument("--phases", default=",".join(PHASES))
    p.add_argument("--index-config", default=None, help="JSON IndexConfig overrides for ours")
    p.add_argument("--baseline-python", type=Path, default=h.BASELINE_PYTHON)
    p.add_argument("--work-dir", type=Path, default=None)
    p.add_argument("--reuse", action="store_true", help="reuse phase JSON already in work-dir")
    p.add_argument(
        "--default-settings", default=None, help="JSON encoder overrides for ours-default"
    )
    h.result_options(p)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")  # fmt: skip
    if not args.baseline_python.exists() and "pylate" in args.sides:
        msg = f"{args.baseline_python} missing; run `bash benchmarks/setup_baselines.sh` first."
        raise SystemExit(msg)
    ds = load_beir(args.data, max_docs=args.max_docs)
    dataset = h.dataset_label(ds.name, len(ds.doc_ids), args.max_docs)
    # The subprocesses run from the repository root: pass them absolute paths (the interpreter's
    # not resolved: a venv's python is a link that must keep its venv path).
    args.data, args.checkpoint = args.data.resolve(), args.checkpoint.resolve()
    args.baseline_python = args.baseline_python.absolute()
    args.work_dir = (args.work_dir or h.RUNS / dataset).resolve()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    sides = [s for s in args.sides.split(",") if s]
    phases = [ph for ph in args.phases.split(",") if ph]
    started = dt.datetime.now()

    if set(sides) - {"ours-default"} and not (args.checkpoint / "modules.json").exists():
        run_phase("pylate", "checkpoint", args)  # the shared checkpoint, built by PyLate

    res: dict[str, dict] = {s: {} for s in sides}
    for phase in phases:
        if phase == "encode":
            for side, r in encode_interleaved(args, sides).items():
                res[side]["encode"] = r
            continue
        for side in sides:
            if side in VARIANTS and not (side == "ours-auto" and phase == "rerank"):
                continue  # encoding speed only (ours-auto: and rerank speed)
            if phase == "rerank":
                cand = bm25_candidates(ds, args)
                extra = {"--candidates": cand, "--rerank-queries": args.rerank_queries}
                res[side]["rerank"] = run_phase(side, "rerank", args, **extra)
                if side == "pylate":
                    res[side]["rerank_li"] = run_phase(side, "rerank_li", args, **extra)
            elif phase == "index" and side != "pylate" and args.index_config:
                res[side][phase] = run_phase(
                    side, phase, args, **{"--index-config": args.index_config}
                )
            else:
                res[side][phase] = run_phase(side, phase, args)

    summary = {"dataset": ds.name, "docs": len(ds.doc_ids), "queries": len(ds.queries)}
    for side in sides:
        if "search" in res[side]:
            res[side]["quality"] = _quality(res[side]["search"], ds.qrels)
        for key in ("rerank", "rerank_li"):
            if key in res[side]:
                res[side][key + "_quality"] = _rerank_quality(res[side][key], ds.qrels)
    if "rerank" in phases:
        cand = json.loads(bm25_candidates(ds, args).read_text())
        some = list(cand)[: args.rerank_queries]
        bm25 = {q: cand[q] for q in some}
        summary["bm25_ndcg@10"] = ndcg_at_k(bm25, {q: ds.qrels[q] for q in some}, 10)
    meta = {
        **h.run_meta(started),
        "reused": REUSED,
        "checkpoint": h.repo_relative(args.checkpoint),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    md = render_report(summary, res, meta)
    device = None if args.device == "cpu" else args.device.replace(":", "")
    stem = h.result_stem("compare", dataset, started, device, args.tag)
    slim = {s: {k: _slim(v) for k, v in r.items()} for s, r in res.items()}
    data = {"summary": summary, "meta": meta, "results": slim}
    path = h.save_result(args.results_dir, stem, md, data)
    (path.parent / "latest.md").write_text(md, encoding="utf-8")  # the newest report, any run
    print(md)


def _slim(value: dict) -> dict:
    """Drop per-query rankings (large) from a phase result before archiving it."""
    return {k: v for k, v in value.items() if not k.startswith(("run", "exact_"))}


if __name__ == "__main__":
    main()
