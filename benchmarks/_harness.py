"""Plumbing shared by every benchmark: paths, the cache, result files, memory and timing probes.

Imported by scripts running in *both* virtual environments (ours and ``.venv-baselines``), so it
uses only the standard library and numpy. Each phase of ``benchmarks.compare`` runs in a fresh
process and reports its result as one JSON file, which the orchestrator reads.

Every path the benchmarks read or write is defined here: one cache root (``CACHE``, git-ignored)
and one results folder with one naming scheme (:func:`result_stem`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"
BASELINE_PYTHON = REPO / ".venv-baselines" / "bin" / "python"

# The one cache root; everything below it can be deleted at any time (it is rebuilt on demand).
CACHE = REPO / ".cache" / "benchmarks"
EMBEDDINGS = CACHE / "embeddings"  # token matrices, keyed by encoder fingerprint + texts
CHECKPOINT_DIR = CACHE / "minilm-colbert-128"  # shared PyLate checkpoint (built by PyLate)
RUNS = CACHE / "runs"  # compare: per-run work folders (phase JSON, logs, indexes)
SCALE = CACHE / "scale"  # studies.scale: passages, indexes, phase JSON
GPU_CARRY = CACHE / "gpu-carry"  # studies/gpu_prepare.sh: what studies.gpu needs on a GPU box

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(key: str) -> float | None:
    if not _STATUS.exists():
        return None
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    return None


def rss_mb() -> float:
    """Current resident set size in MiB (0.0 where /proc is unavailable)."""
    kb = _status_kb("VmRSS")
    return kb / 1024 if kb is not None else 0.0


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS.

    Lets a phase load its model first and then measure only the peak caused by the index work
    that follows. Returns False where unsupported (non-Linux): the peak then covers the whole
    process, which the orchestrator reports as such.
    """
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """Peak resident set size since start (or the last :func:`reset_peak_rss`) in MiB."""
    kb = _status_kb("VmHWM")
    if kb is None:  # macOS reports bytes, Linux KiB
        scale = 1024 * 1024 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
    return kb / 1024


class MemoryWindow:
    """Peak RSS of a block of work, measured above the RSS at its start.

    ``with MemoryWindow() as mem: ...`` then ``mem.result()`` gives the RSS at entry, the peak
    during the block (whole process) and the peak increment over the entry RSS, or over
    ``base_mb`` when given (e.g. the RSS before an earlier window loaded the index).
    """

    def __init__(self, base_mb: float | None = None) -> None:
        self.base_mb = base_mb

    def __enter__(self) -> MemoryWindow:
        self.reset_ok = reset_peak_rss()
        self.start = rss_mb() if self.base_mb is None else self.base_mb
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = peak_rss_mb()
        self.end = rss_mb()

    def result(self) -> dict[str, float | bool]:
        return {
            "rss_start_mb": round(self.start, 1),
            "peak_rss_mb": round(self.peak, 1),
            "peak_increment_mb": round(self.peak - self.start, 1),
            "rss_end_mb": round(self.end, 1),
            "peak_reset_supported": self.reset_ok,
        }


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / mean in milliseconds of per-call wall times."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    if ms.size == 0:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "mean_ms": float("nan"), "n": 0}
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "n": int(ms.size),
    }


def timed_calls(fn: Callable[[Any], Any], items: Sequence[Any]) -> tuple[list[Any], list[float]]:
    """Call ``fn`` on each item, returning the outputs and the wall time of each call."""
    outs, times = [], []
    for item in items:
        t0 = time.perf_counter()
        outs.append(fn(item))
        times.append(time.perf_counter() - t0)
    return outs, times


def timed_run(fn: Callable[[str], list[str]], qids: Sequence[str]) -> dict[str, Any]:
    """Rank every query id with ``fn`` after one warm-up call: latency stats and the run."""
    fn(qids[0])  # warm-up
    runs, times = timed_calls(fn, qids)
    return {"latency": latency_stats(times), "run": dict(zip(qids, runs, strict=True))}


def encode_server(
    encode_docs: Callable[[list[str]], list[Any]],
    encode_query: Callable[[str], Any],
    doc_texts: Sequence[str],
    queries: Sequence[str],
    ready_info: dict[str, Any],
) -> None:
    """Serve timed encoding trials over stdin/stdout, one JSON object per line.

    The orchestrator keeps one warm server per side and alternates trials between them, so
    load from other processes on a shared machine hits both sides alike (A/B interleaving).
    Requests: ``{"op": "docs", "start": i, "n": n}`` -> ``{"seconds", "docs", "tokens"}``;
    ``{"op": "queries", "start": i, "n": n}`` -> ``{"times": [...]}`` (one query per call);
    ``{"op": "quit"}``. Library output is diverted to stderr to keep the channel clean.
    """
    channel, sys.stdout = sys.stdout, sys.stderr
    encode_docs(list(doc_texts[:32]))  # warm-up: allocator, kernels, lazy imports
    encode_query(queries[0])

    def reply(obj: dict[str, Any]) -> None:
        channel.write(json.dumps(obj) + "\n")
        channel.flush()

    reply({"ready": True, **ready_info})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        a, b = cmd["start"], cmd["start"] + cmd["n"]
        if cmd["op"] == "docs":
            t0 = time.perf_counter()
            embs = encode_docs(list(doc_texts[a:b]))
            dt = time.perf_counter() - t0
            reply({"seconds": dt, "docs": len(embs), "tokens": int(sum(len(e) for e in embs))})
        else:
            _, times = timed_calls(encode_query, list(queries[a:b]))
            reply({"times": times})


def dir_bytes(path: Path) -> int:
    """Total size of the regular files under ``path`` (or of ``path`` itself)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def save_packed(folder: Path, matrices: Sequence[np.ndarray]) -> None:
    """Store ragged float token matrices as one float16 array plus int64 offsets (atomic).

    Written to a per-process temp folder and renamed into place: two processes filling the same
    folder never clash, and the loser of the race keeps the winner's (identical) arrays.
    """
    folder = Path(folder)
    offsets = np.zeros(len(matrices) + 1, dtype=np.int64)
    np.cumsum([m.shape[0] for m in matrices], out=offsets[1:])
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    tokens = np.concatenate([np.asarray(m, dtype=np.float16) for m in matrices])
    np.save(tmp / "tokens.npy", tokens)
    np.save(tmp / "offsets.npy", offsets)
    try:
        tmp.rename(folder)
    except OSError:
        if not packed_exists(folder):
            raise
        shutil.rmtree(tmp)


def load_packed(folder: Path, *, dtype: Any = np.float32) -> list[np.ndarray]:
    """Inverse of :func:`save_packed`: one ``(n_tokens, dim)`` array per item, as ``dtype``.

    ``dtype=np.float16`` gives read-only views of the memory-mapped file (no copy).
    """
    tokens = np.load(Path(folder) / "tokens.npy", mmap_mode="r")
    offsets = np.load(Path(folder) / "offsets.npy")
    return [
        np.asarray(tokens[offsets[i] : offsets[i + 1]], dtype=dtype)
        for i in range(len(offsets) - 1)
    ]


def packed_exists(folder: Path) -> bool:
    return (Path(folder) / "tokens.npy").exists() and (Path(folder) / "offsets.npy").exists()


def cached_embeddings(
    name: str,
    fingerprint: Any,
    texts: Sequence[str],
    encode: Callable[[list[str]], Sequence[np.ndarray]],
    *,
    dtype: Any = np.float16,
) -> list[np.ndarray]:
    """Token matrices of ``texts`` from ``encode``, cached under ``EMBEDDINGS`` (float16).

    The folder is ``<name>-<hash>``, the hash covering the encoder ``fingerprint`` (any
    JSON-serialisable value), ``name`` and every text, so a changed encoder setting or corpus
    never reuses stale vectors. ``encode`` runs only on a cache miss (load the model inside it
    to skip loading on a hit). Returns memory-mapped float16 views, or copies as ``dtype``.
    """
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode())
    digest.update(name.encode())
    for t in texts:
        digest.update(hashlib.sha1(t.encode()).digest())
    folder = EMBEDDINGS / f"{name}-{digest.hexdigest()[:16]}"
    if not packed_exists(folder):
        t0 = time.perf_counter()
        save_packed(folder, encode(list(texts)))
        print(f"encoded {len(texts)} texts into {folder} in {time.perf_counter() - t0:.1f}s",
              file=sys.stderr, flush=True)  # fmt: skip
    return load_packed(folder, dtype=dtype)


def document_embeddings(
    model: Any, texts: Sequence[str], name: str, *, batch_size: int = 32
) -> list[np.ndarray]:
    """Cached ``model.encode_documents`` (a ``late_interaction.ColBERT``) of ``texts``.

    ``name`` is a short label for the cache folder, e.g. the dataset name. Returns read-only
    float16 views of the memory-mapped cache, one ``(n_tokens, dim)`` matrix per text.
    """

    def encode(batch: list[str]) -> list[np.ndarray]:
        return model.encode_documents(batch, batch_size=batch_size, show_progress_bar=True)

    return cached_embeddings(name, model.fingerprint(), texts, encode)


def exact_maxsim_topk(
    queries: Sequence[np.ndarray],
    documents: Sequence[np.ndarray],
    k: int,
    chunk_tokens: int = 2_000_000,
) -> list[list[int]]:
    """Brute-force exact MaxSim ranking (positions into ``documents``), numpy only.

    The reference for the baseline's ANN recall (ours uses ``index.search(..., exact=True)``).
    Documents are processed in chunks so memory stays bounded on large corpora.
    """
    lengths = np.array([d.shape[0] for d in documents], dtype=np.int64)
    scores = np.zeros((len(queries), len(documents)), dtype=np.float32)
    start = 0
    while start < len(documents):
        stop, total = start, 0
        while stop < len(documents) and (total == 0 or total + lengths[stop] <= chunk_tokens):
            total += lengths[stop]
            stop += 1
        block = np.concatenate([np.asarray(d, dtype=np.float32) for d in documents[start:stop]])
        seg = np.concatenate([[0], np.cumsum(lengths[start:stop])[:-1]])
        for qi, q in enumerate(queries):
            sims = block @ np.asarray(q, dtype=np.float32).T
            scores[qi, start:stop] = np.maximum.reduceat(sims, seg, axis=0).sum(axis=1)
        start = stop
    k = min(k, len(documents))
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return [list(row[np.argsort(-scores[i, row], kind="stable")]) for i, row in enumerate(top)]


def machine_info() -> dict[str, Any]:
    """Machine and interpreter facts recorded beside every result."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        mem_gb = round(float(meminfo.read_text().split()[1]) / 1024 / 1024, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def git_state() -> str:
    """HEAD commit, plus a note when the core package has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, cwd=REPO,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "integrations"],
            capture_output=True, text=True, check=False, cwd=REPO,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (+ uncommitted changes under integrations/)" if dirty else "")


def command_line() -> str:
    """The command that started this process, as ``python -m benchmarks....`` when run so."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    argv = ["-m", spec.name, *sys.argv[1:]] if spec is not None else sys.argv
    python = Path(sys.executable).absolute()
    shown = repo_relative(python) if python.is_relative_to(REPO) else python.name
    return shlex.join([shown, *argv])


def repo_relative(path: str | Path) -> str:
    """``path`` relative to the repository root where it lies inside it (for result files)."""
    path = Path(path).absolute()
    return str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)


def run_meta(started: dt.datetime) -> dict[str, Any]:
    """Command, start and end time, code version and machine of a run (for result headers)."""
    return {
        "command": command_line(),
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "git": git_state(),
    }


def header_lines(title: str, meta: dict[str, Any]) -> list[str]:
    """The first lines of every result file: title, command, time and code, machine."""
    m = meta["machine"]
    return [
        f"# {title}",
        "",
        f"- Command: `{meta['command']}`",
        f"- When: {meta['started']} → {meta['finished']}; code: {meta.get('git', '?')}",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, {m['os']}, "
        f"Python {m['python']}; load average at the end {m['load_avg']}",
    ]


def dataset_label(name: str, n_docs: int, max_docs: int | None) -> str:
    """The dataset part of a result name: ``scifact``, or ``scifact1227`` for a cut corpus."""
    return name if max_docs is None else f"{name}{n_docs}"


def result_stem(study: str, dataset: str, started: dt.datetime, *variant: str | None) -> str:
    """``<study>-<dataset>-<YYYYMMDD>-<HHMM>[-<variant>...]``: the one result naming scheme."""
    parts = [study, dataset, f"{started:%Y%m%d-%H%M}", *(v for v in variant if v)]
    return "-".join(p.replace("-", "") if i < 2 else p for i, p in enumerate(parts))


def result_options(parser: Any) -> None:
    """``--results-dir`` and ``--tag``, taken by every script that writes a result file."""
    parser.add_argument("--results-dir", type=Path, default=RESULTS,
                        help="where the result file goes (default benchmarks/results)")  # fmt: skip
    parser.add_argument("--tag", default=None, help="variant suffix for the result file name")


def save_result(
    results_dir: Path, stem: str, markdown: str, data: dict[str, Any] | None = None
) -> Path:
    """Write ``<stem>.md`` (and ``<stem>.json`` when ``data`` is given); return the .md path."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{stem}.md"
    path.write_text(markdown, encoding="utf-8")
    if data is not None:
        text = json.dumps(data, indent=1, default=float)
        (results_dir / f"{stem}.json").write_text(text, encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)
    return path


def publish(
    args: Any,
    study: str,
    dataset: str,
    started: dt.datetime,
    title: str,
    body: Sequence[str],
    *variant: str | None,
    data: dict[str, Any] | None = None,
) -> str:
    """Print a study's result and save it under the naming scheme; return the markdown.

    The file is the header (:func:`header_lines`), a blank line and ``body``, written to
    ``args.results_dir`` as ``<study>-<dataset>-<YYYYMMDD>-<HHMM>[-<variant>...][-<args.tag>]``.
    """
    md = "\n".join([*header_lines(title, run_meta(started)), "", *body]) + "\n"
    print(md)
    stem = result_stem(study, dataset, started, *variant, args.tag)
    save_result(args.results_dir, stem, md, data)
    return md


def write_result(path: str | Path | None, result: dict[str, Any]) -> None:
    """Write a phase's JSON result (or print it when no path is given)."""
    text = json.dumps(result, indent=1, default=float)
    if path is None:
        print(text)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def package_versions(names: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``names`` ("absent" where not installed)."""
    import importlib.metadata as md

    out = {}
    for name in names:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "absent"
    return out


def sync(device: str) -> None:
    """Wait for queued CUDA work, so a timer sees it (no-op elsewhere)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def side_arguments(parser: Any, phases: Sequence[str]) -> None:
    """The command-line options both sides take (compare passes the same ones to each)."""
    parser.add_argument("--phase", required=True, choices=list(phases))
    parser.add_argument("--data", default=str(SHARED_DATA / "scifact"))
    parser.add_argument("--max-docs", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--encode-docs", type=int, default=500)
    parser.add_argument("--latency-queries", type=int, default=50)
    parser.add_argument("--n-queries", type=int, default=None)
    parser.add_argument("--rerank-queries", type=int, default=None)
    parser.add_argument("--candidates", default=None, help="JSON {query id: [doc ids]} for rerank")
    parser.add_argument("--work-dir", default=str(RUNS / "manual"))
    parser.add_argument("--out", default=None)
