"""Plumbing shared by both benchmark sides: memory probes, timing stats, packed-array caches.

Imported by scripts running in *both* virtual environments (ours and ``.venv-baselines``), so it
uses only the standard library and numpy. Each benchmark phase runs in a fresh process; a phase
reports its result as one JSON file, which the orchestrator (``benchmarks/run.py``) reads.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH_CACHE = REPO / ".cache" / "bench"
CHECKPOINT_DIR = REPO / ".cache" / "minilm-colbert-128"
BASELINE_PYTHON = REPO / ".venv-baselines" / "bin" / "python"

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
    """Store ragged float token matrices as one float16 array plus int64 offsets (atomic)."""
    folder = Path(folder)
    offsets = np.zeros(len(matrices) + 1, dtype=np.int64)
    np.cumsum([m.shape[0] for m in matrices], out=offsets[1:])
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    tokens = np.concatenate([np.asarray(m, dtype=np.float16) for m in matrices])
    np.save(tmp / "tokens.npy", tokens)
    np.save(tmp / "offsets.npy", offsets)
    tmp.rename(folder)


def load_packed(folder: Path, *, dtype: Any = np.float32) -> list[np.ndarray]:
    """Inverse of :func:`save_packed`: one ``(n_tokens, dim)`` array per item, as ``dtype``."""
    tokens = np.load(Path(folder) / "tokens.npy", mmap_mode="r")
    offsets = np.load(Path(folder) / "offsets.npy")
    return [
        np.asarray(tokens[offsets[i] : offsets[i + 1]], dtype=dtype)
        for i in range(len(offsets) - 1)
    ]


def packed_exists(folder: Path) -> bool:
    return (Path(folder) / "tokens.npy").exists() and (Path(folder) / "offsets.npy").exists()


def exact_maxsim_topk(
    queries: Sequence[np.ndarray],
    documents: Sequence[np.ndarray],
    k: int,
    chunk_tokens: int = 2_000_000,
) -> list[list[int]]:
    """Brute-force exact MaxSim ranking (positions into ``documents``), numpy only.

    The reference for the baseline's ANN recall (ours uses ``LateInteractionIndex.exact_search``).
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
    """The command-line options both sides take (run.py passes the same ones to each)."""
    parser.add_argument("--phase", required=True, choices=list(phases))
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--max-docs", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--encode-docs", type=int, default=500)
    parser.add_argument("--latency-queries", type=int, default=50)
    parser.add_argument("--n-queries", type=int, default=None)
    parser.add_argument("--rerank-queries", type=int, default=None)
    parser.add_argument("--candidates", default=None, help="JSON {query id: [doc ids]} for rerank")
    parser.add_argument("--work-dir", default=str(BENCH_CACHE / "work"))
    parser.add_argument("--out", default=None)
