"""Compressed index at 100k+ passages: streamed build, RSS, disk, latency, recall vs brute force.

Data (synthetic around real vectors, said in the output): SciFact's real token vectors from the
embedded default model (cached), projected to ``--dim`` by a seeded random Gaussian matrix and
renormalised (``compressed_build.project``), cut into windows of ``--passage-tokens`` tokens: the
first passages are those real windows; every further passage is ``--segments`` runs of
consecutive real tokens, each from a random window, with N(0, ``--noise``) per dimension added
and renormalised. Unlike noisy copies of whole windows (``studies.scale``), no two passages are
near-duplicates, so the exact top 10 is not a tie among copies. Passages are made chunk by chunk
from a seed, never all in RAM; queries are SciFact's real queries through the same projection.

Per size, each step in a fresh process (BLAS/OpenMP threads set in its environment):

* ``build`` (2 threads): ``add_embeddings`` once per ``--chunk`` passages into one index, then
  ``save``; add time only (passage generation excluded), RSS after every chunk and the peak;
* ``exact``: brute-force MaxSim top 10 over the float32 passages, and over the index's decoded
  vectors (the codec's ceiling: what perfect candidates would give);
* ``search`` (1 thread, then 2): load (memory-mapped) and search every query at k=10.

At 1M passages (``--no-decoded --parallel-exact``): the brute force over the float32 passages
runs beside the build in its own process with one thread (it needs no index), the decoded
brute force is skipped, and both workers append progress lines (passages, tokens, seconds, RSS)
to ``build-n<size>.log`` / ``exact-n<size>.log`` in the work folder, so a run stopped early
still shows how far it got.

Usage (from the repository root; writes ``benchmarks/results/compressed-scale<size>-<stamp>.md``):
    PYTHONPATH=integrations python -u -m benchmarks.studies.compressed_scale \\
        --sizes 20000,100000 [--dim 128] [--nbits 2] [--queries 100]
    ... --sizes 1000000 --queries 50 --no-decoded --parallel-exact \\
        --work-dir .cache/benchmarks/compressed-scale-1m
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h
from benchmarks.studies._compressed_data import PrecomputedModel, timed_searches
from benchmarks.studies.compressed_index import THREAD_VARS, _latency, _threads

BLOCK = 500  # passages made from one seed; exact scoring goes block by block too

# --- passages -----------------------------------------------------------------------------------


class Passages:
    """Passage ``i`` of the synthetic collection, made on demand from the real windows."""

    def __init__(self, folder: Path, args: argparse.Namespace) -> None:
        self.tokens = np.load(folder / "windows" / "tokens.npy").astype(np.float32)
        self.offsets = np.load(folder / "windows" / "offsets.npy")
        self.n_real = len(self.offsets) - 1
        seg = args.passage_tokens // args.segments
        ends = np.repeat(self.offsets[1:], np.diff(self.offsets))
        self.starts = np.flatnonzero(np.arange(len(self.tokens)) + seg <= ends)  # in one window
        self.seg, self.args = seg, args

    def chunk(self, first: int, last: int) -> list[np.ndarray]:
        """Passages ``first .. last - 1`` (float32 unit rows): the same whatever the chunking."""
        out = []
        for block in range(first // BLOCK, -(-last // BLOCK)):
            start = block * BLOCK
            made = self._block(start)
            out += made[max(first - start, 0) : last - start]
        return out

    def _block(self, first: int) -> list[np.ndarray]:
        last = first + BLOCK
        out = [
            self.tokens[self.offsets[i] : self.offsets[i + 1]]
            for i in range(first, min(last, self.n_real))
        ]
        n = last - max(first, self.n_real)
        if n > 0:  # seeded by the block, so any chunking sees the same passages
            rng = np.random.default_rng([self.args.seed, first])
            starts = self.starts[rng.integers(0, len(self.starts), (n, self.args.segments))]
            rows = self.tokens[(starts[..., None] + np.arange(self.seg)).reshape(n, -1)]
            rows += rng.normal(0.0, self.args.noise, rows.shape).astype(np.float32)
            rows /= np.linalg.norm(rows, axis=2, keepdims=True)
            out += list(rows)
        return out

    def blocks(self, size: int, step: int):
        for first in range(0, size, step):
            yield first, self.chunk(first, min(first + step, size))


def prepare(args: argparse.Namespace) -> Path:
    """Real windows and queries, projected, under the work folder (once)."""
    folder = args.work_dir / f"d{args.dim}-w{args.passage_tokens}"
    if (folder / "queries").exists():
        return folder
    from benchmarks.studies._compressed_data import SHARED_DATA, dataset_embeddings, load_beir
    from benchmarks.studies.compressed_build import project
    from late_interaction import ColBERT

    data = load_beir(SHARED_DATA / "scifact")
    docs, queries = dataset_embeddings(ColBERT.from_pretrained(device="cpu"), data)
    docs, queries = project(docs, args.dim), project(queries, args.dim)
    w = args.passage_tokens
    windows = [d[i : i + w] for d in docs for i in range(0, d.shape[0], w)]
    h.save_packed(folder / "windows", windows)
    h.save_packed(folder / "queries", queries)
    return folder


# --- workers ------------------------------------------------------------------------------------


def _log(folder: Path, name: str, line: str) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    with open(folder / name, "a", encoding="utf-8") as f:
        f.write(f"{stamp} {line}\n")


def _saved(index, folder: Path, n: int, timing: dict, start_mb: float) -> dict:
    """Save ``index`` as ``index-n<n>`` and return the build's figures so far."""
    target = folder / f"index-n{n}"
    shutil.rmtree(target, ignore_errors=True)
    t0 = time.perf_counter()
    index.save(target)
    save_s = time.perf_counter() - t0
    peak = h.peak_rss_mb()
    _log(folder, timing["log"], f"saved {target.name} in {save_s:.0f} s; peak_mb {peak:,.0f}")
    state = index._state
    return {
        "add_s": timing["add_s"], "cpu_s": timing["cpu_s"], "save_s": save_s,
        "tokens": timing["tokens"], "n_centroids": state.store.codec.n_centroids,
        "store_bytes": state.store.nbytes(), "ivf_bytes": state.ivf.nbytes(),
        "disk_bytes": h.dir_bytes(target) - (target / "docs.jsonl").stat().st_size,
        "rss_after_chunks": timing["after"], "threads": _threads(), "load_avg": os.getloadavg(),
        "memory": {"rss_start_mb": start_mb, "peak_rss_mb": peak,
                   "peak_increment_mb": peak - start_mb},
    }  # fmt: skip


def worker_build(folder: Path, size: int, args: argparse.Namespace) -> dict:
    """Build by chunks; also save (and record) the index at each of ``--milestones``."""
    from late_interaction import IndexConfig, LateInteractionIndex

    source = Passages(folder, args)
    config = IndexConfig(nbits=args.nbits, n_centroids=args.n_centroids)
    if args.index_seed is not None:  # the codec's k-means draw (IndexConfig.random_seed)
        config = IndexConfig(nbits=args.nbits, n_centroids=args.n_centroids,
                             random_seed=args.index_seed)  # fmt: skip
    index = LateInteractionIndex(PrecomputedModel(args.dim), config=config)
    timing = {"add_s": 0.0, "cpu_s": 0.0, "after": [], "tokens": 0, "log": f"build-n{size}.log"}
    h.reset_peak_rss()
    start_mb = h.rss_mb()
    for first, passages in source.blocks(size, args.chunk):
        t0, c0 = time.perf_counter(), time.process_time()
        ids = [str(first + i) for i in range(len(passages))]
        index.add_embeddings(passages, [""] * len(passages), ids=ids)
        timing["add_s"] += time.perf_counter() - t0
        timing["cpu_s"] += time.process_time() - c0
        timing["tokens"] += sum(p.shape[0] for p in passages)
        done = first + len(passages)
        timing["after"].append((done, timing["tokens"], round(h.rss_mb(), 1)))
        _log(folder, timing["log"], f"passages {done:,} tokens {timing['tokens']:,} add_s "
             f"{timing['add_s']:.0f} cpu_s {timing['cpu_s']:.0f} rss_mb {h.rss_mb():,.0f} "
             f"peak_mb {h.peak_rss_mb():,.0f}")  # fmt: skip
        del passages
        if done in args.milestone_set and done < size:
            h.write_result(folder / f"build-n{done}-t2.json",
                           _saved(index, folder, done, timing, start_mb))  # fmt: skip
            for m in args.milestone_set & set(range(done)):  # disk: keep the latest only
                shutil.rmtree(folder / f"index-n{m}", ignore_errors=True)
    return _saved(index, folder, size, timing, start_mb)


def _top10(score_blocks, n_queries: int) -> list[list[int]]:
    scores = np.concatenate(list(score_blocks), axis=1)
    return [np.argsort(-scores[i], kind="stable")[:10].tolist() for i in range(n_queries)]


def worker_exact(folder: Path, size: int, args: argparse.Namespace) -> dict:
    from late_interaction import LateInteractionIndex

    queries = h.load_packed(folder / "queries")[: args.queries]
    q_all = np.concatenate(queries)
    bounds = np.r_[0, np.cumsum([q.shape[0] for q in queries])]

    q_t = np.ascontiguousarray(q_all.T)

    def scores(rows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        if (lengths == lengths[0]).all():  # equal lengths: a reshape, not a reduceat
            sims = (rows @ q_t).reshape(len(lengths), int(lengths[0]), -1)
            best = sims.max(axis=1)
        else:
            best = np.maximum.reduceat(rows @ q_t, np.r_[0, np.cumsum(lengths)[:-1]], axis=0)
        return np.add.reduceat(best, bounds[:-1], axis=1).T  # (queries, passages)

    def exact_blocks():
        t0, done = time.perf_counter(), []
        for first, passages in Passages(folder, args).blocks(size, BLOCK):
            for i in range(0, len(passages), 100):  # 100 passages: ~0.5 GB of similarities
                part = passages[i : i + 100]
                done.append(scores(np.concatenate(part), np.array([p.shape[0] for p in part])))
                yield done[-1]
            n = first + len(passages)
            if n in args.milestone_set and n < size:  # the reference over the first n
                h.write_result(folder / f"exact-n{n}-t1.json", {
                    "exact": _top10(done, len(queries)), "decoded": None,
                    "exact_s": time.perf_counter() - t0})  # fmt: skip
            if (first // BLOCK) % 100 == 99:
                _log(folder, f"exact-n{size}.log", f"passages {first + BLOCK:,} "
                     f"s {time.perf_counter() - t0:.0f} rss_mb {h.rss_mb():,.0f}")  # fmt: skip

    if args.no_decoded:
        t0 = time.perf_counter()
        exact = _top10(exact_blocks(), len(queries))
        return {"exact": exact, "decoded": None, "exact_s": time.perf_counter() - t0}
    index = LateInteractionIndex.load(folder / f"index-n{size}", model=PrecomputedModel(args.dim))
    snap = index._state.snap

    def decoded_blocks():
        offsets = snap.offsets
        for first in range(0, size, BLOCK):
            last = min(first + BLOCK, size)
            rows = snap.tokens[offsets[first] : offsets[last]]
            yield scores(rows, np.diff(offsets[first : last + 1]))

    t0 = time.perf_counter()
    exact = _top10(exact_blocks(), len(queries))
    exact_s = time.perf_counter() - t0
    return {"exact": exact, "decoded": _top10(decoded_blocks(), len(queries)), "exact_s": exact_s}


def worker_search(folder: Path, size: int, args: argparse.Namespace) -> dict:
    from late_interaction import LateInteractionIndex

    queries = h.load_packed(folder / "queries")[: args.queries]
    with h.MemoryWindow() as mem:
        index = LateInteractionIndex.load(
            folder / f"index-n{size}", model=PrecomputedModel(args.dim)
        )
        index.search(queries[0], 10)
        runs, wall, cpu = timed_searches(
            lambda q: [int(x.id) for x in index.search(q, 10)], queries
        )
    return {"latency": wall, "cpu": cpu, "runs": runs, "memory": mem.result(),
            "threads": _threads(), "load_avg": os.getloadavg()}  # fmt: skip


WORKERS = {"build": worker_build, "exact": worker_exact, "search": worker_search}


def _command(worker: str, folder: Path, size: int, threads: int, args, out: Path):
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, str(threads))}
    cmd = [sys.executable, "-m", __spec__.name, "--worker", worker, "--size", str(size),
           "--folder", str(folder), "--out", str(out), *args.passthrough]  # fmt: skip
    return cmd, env


def start(worker: str, folder: Path, size: int, threads: int, args, out: Path):
    cmd, env = _command(worker, folder, size, threads, args, out)
    with open(folder / f"{worker}-n{size}.stderr", "w", encoding="utf-8") as err:
        return subprocess.Popen(cmd, env=env, cwd=h.REPO, stderr=err, text=True)


def spawn(worker: str, folder: Path, size: int, threads: int, args: argparse.Namespace) -> dict:
    out = folder / f"{worker}-n{size}-t{threads}.json"
    cmd, env = _command(worker, folder, size, threads, args, out)
    proc = subprocess.run(cmd, env=env, cwd=h.REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{worker} n={size} failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def recall(runs: list, reference: list | None) -> float:
    if runs is None or reference is None:
        return float("nan")
    return float(
        np.mean([len(set(a) & set(b)) / 10 for a, b in zip(runs, reference, strict=False)])
    )


def _progress(folder: Path, size: int | None) -> list[str]:
    """Lines of the ``size``-passage run's logs: every 50,000 passages, saves, and the last."""
    if not size:
        return []
    out = ["", f"Progress of the {size:,}-passage run (its logs, every 50,000 passages):", ""]
    for name in (f"build-n{size}.log", f"exact-n{size}.log"):
        lines = (folder / name).read_text().splitlines() if (folder / name).exists() else []
        keep = [x for x in lines if "saved" in x or _every(x, 50_000)] + lines[-1:]
        out += [f"`{name}`:", "", "```", *dict.fromkeys(keep), "```", ""]
    return out


def _every(line: str, step: int) -> bool:
    try:
        n = int(line.split("passages ")[1].split()[0].replace(",", ""))
    except (IndexError, ValueError):
        return False
    return n % step == 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--sizes", default="20000,100000")
    shared = {  # passed on to the workers
        "--dim": (int, 128), "--passage-tokens": (int, 100), "--segments": (int, 4),
        "--noise": (float, 0.02), "--seed": (int, 0), "--nbits": (int, 2),
        "--n-centroids": (int, None), "--chunk": (int, 5000), "--queries": (int, 100),
        "--index-seed": (int, None),
    }  # fmt: skip
    p.add_argument(
        "--no-decoded",
        action="store_true",
        help="skip the brute force over the decoded vectors (too slow at 1M)",
    )
    p.add_argument(
        "--milestones",
        default="",
        help="passage counts at which the build saves index-n<m> and the exact worker writes "
        "its reference over the first m (a long run stopped early still gives a full row)",
    )
    for flag, (kind, default) in shared.items():
        p.add_argument(flag, type=kind, default=default)
    p.add_argument("--work-dir", type=Path, default=h.CACHE / "compressed-scale")
    p.add_argument(
        "--parallel-exact",
        action="store_true",
        help="run the float32 brute force beside the build (needs --no-decoded)",
    )
    p.add_argument(
        "--progress-of",
        type=int,
        default=None,
        help="append the logs of this size's run (e.g. 1000000 stopped early) to the result",
    )
    p.add_argument(
        "--reuse-exact",
        action="store_true",
        help="build afresh but take the brute-force reference already saved for the size "
        "(exact-n<size>-t1.json: it depends only on the seeded passages and the queries)",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="search the saved index-n<size> against its saved reference (no build, no brute "
        "force): a milestone of a longer run",
    )
    h.result_options(p)
    args = p.parse_args()
    args.passthrough = [
        x for flag in shared for x in (flag, str(getattr(args, flag[2:].replace("-", "_"))))
        if getattr(args, flag[2:].replace("-", "_")) is not None
    ] + (["--no-decoded"] if args.no_decoded else [])  # fmt: skip
    args.passthrough += ["--milestones", args.milestones]
    args.milestone_set = {int(m) for m in args.milestones.split(",") if m}
    if args.worker:
        h.write_result(args.out, WORKERS[args.worker](args.folder, args.size, args))
        return
    started = dt.datetime.now()
    args.work_dir = args.work_dir.resolve()
    folder = prepare(args)
    n_real = len(np.load(folder / "windows" / "offsets.npy")) - 1
    rows, rss_lines = [], []
    for size in (int(s) for s in args.sizes.split(",")):
        if args.reuse:  # a milestone of a longer run
            b = json.loads((folder / f"build-n{size}-t2.json").read_text())
            ref = json.loads((folder / f"exact-n{size}-t1.json").read_text())
        elif args.reuse_exact:  # the passages are seeded: an earlier reference still holds
            ref = json.loads((folder / f"exact-n{size}-t1.json").read_text())
            if len(ref["exact"]) < args.queries:
                raise SystemExit(f"the saved reference has {len(ref['exact'])} queries")
            ref["decoded"] = None  # made over an earlier build's vectors: not this index's
            b = spawn("build", folder, size, 2, args)
        elif args.parallel_exact:  # one thread beside the build's two (the machine has two)
            exact_out = folder / f"exact-n{size}-t1.json"
            exact_proc = start("exact", folder, size, 1, args, exact_out)
            b = spawn("build", folder, size, 2, args)
            if exact_proc.wait() != 0:
                log = (folder / f"exact-n{size}.stderr").read_text()[-3000:]
                raise RuntimeError(f"exact n={size} failed:\n{log}")
            ref = json.loads(exact_out.read_text())
        else:
            b = spawn("build", folder, size, 2, args)
            ref = spawn("exact", folder, size, 2, args)
        s1, s2 = (spawn("search", folder, size, t, args) for t in (1, 2))
        tok = b["tokens"]
        rows.append(
            f"| {size:,} | {tok:,} | {min(size, n_real):,} / {max(size - n_real, 0):,} "
            f"| {b['n_centroids']:,} | {b['add_s']:.0f} | {b['cpu_s']:.0f} "
            f"| {tok / b['add_s']:,.0f} "
            f"| {tok / (b['cpu_s'] / 2):,.0f} | {b['save_s']:.1f} | {b['disk_bytes'] / tok:.1f} "
            f"| {b['memory']['peak_rss_mb']:,.0f} | {b['memory']['peak_increment_mb']:,.0f} "
            f"| {s1['memory']['peak_increment_mb']:,.0f} "
            f"| {_latency(s1)} | {_latency(s2)} "
            f"| {recall(s1['runs'], ref['exact']):.4f} | {recall(s1['runs'], ref['decoded']):.4f} "
            f"| {recall(ref['decoded'], ref['exact']):.4f} | {b['load_avg'][0]:.1f} |"
        )
        print(rows[-1], flush=True)
        after = ", ".join(
            f"{n:,}: {mb:,.0f}"
            for n, _, mb in b["rss_after_chunks"][:: max(1, len(b["rss_after_chunks"]) // 8)]
        )
        rss_lines.append(
            f"- {size:,} passages: store {b['store_bytes'] / 2**20:,.0f} MB + lists "
            f"{b['ivf_bytes'] / 2**20:,.0f} MB; RSS (MB) after passages {after}; exact brute force "
            f"{ref['exact_s']:.0f} s"
        )
    body = [
        f"Data: SciFact's real token vectors (embedded default model) projected to dim {args.dim}"
        f" (seeded random Gaussian matrix, renormalised), {n_real:,} real windows of "
        f"{args.passage_tokens} tokens first, then passages of {args.segments} runs of "
        f"{args.passage_tokens // args.segments} consecutive real tokens from random windows "
        f"with N(0, {args.noise}) noise, renormalised: synthetic around real vectors. "
        f"{args.queries} real SciFact queries, same projection. nbits={args.nbits}, centroids "
        f"{'from the first add (library rule)' if args.n_centroids is None else args.n_centroids}"
        f", default (growing) budgets, add_embeddings per {args.chunk:,} passages. Build s = add "
        "time only (passage generation excluded); CPU s / 2 is the upper bound for 2 idle cores "
        "(the machine's 2 cores are shared; load average at build start in the last column). "
        "Search RSS: peak above the worker's RSS before loading the index.",
        "",
        "| passages | tokens | real / synthetic | centroids | build s | build CPU s | tokens/s "
        "| tokens/s CPU/2 | save s | disk B/token | build peak RSS MB | build peak above start MB "
        "| search RSS MB | p50 / p95 ms (CPU p50) 1 thr | p50 / p95 ms (CPU p50) 2 thr "
        "| R@10 vs exact | R@10 vs decoded brute force | decoded brute force vs exact | load |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        *rss_lines,
        *_progress(folder, args.progress_of),
    ]
    h.publish(args, "compressed", f"scale{args.sizes.split(',')[-1]}", started,
              "Compressed index at scale", body)  # fmt: skip


if __name__ == "__main__":
    main()
