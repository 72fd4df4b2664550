"""What checksum verification costs when opening a saved index (``LateInteractionIndex.load``).

Builds an index of ``--docs`` documents from seeded random unit token matrices (no encoder: the
cost of verifying depends only on the bytes on disk), saves it once per store (exact float16 +
HNSW graph, and the 2-bit compressed store) and times ``load`` with ``verify=True`` (every file
hashed, the default), ``verify=False`` (the memory-mapped token arrays not hashed), a copy
without recorded checksums (nothing verified: the cost before checksums) and the hashing of every
file alone. The page cache is warm (``--rounds`` rounds, variants interleaved, medians); a cold
read adds the disk's read time to the hashing of the token arrays.

Usage (from the repository root):
    .venv/bin/python -m benchmarks.studies.load_verify --docs 3000 --dim 128 --tokens 40,160
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h
from late_interaction import IndexConfig, LateInteractionIndex
from late_interaction._index.checksums import file_checksum


class _Model:
    """Stands in for an encoder: load() only checks its dim and fingerprint."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def fingerprint(self) -> dict:
        return {"kind": "load-verify-study", "dim": self.dim}


def _matrices(n: int, dim: int, lengths: tuple[int, int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for length in rng.integers(lengths[0], lengths[1] + 1, n):
        m = rng.standard_normal((int(length), dim)).astype(np.float32)
        out.append(m / np.linalg.norm(m, axis=1, keepdims=True))
    return out


def _without_checksums(folder: Path) -> Path:
    """A copy of ``folder`` as releases before checksums wrote it (what loading cost then)."""
    copy = folder.with_name(folder.name + "-legacy")
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / "config.json").read_text())
    del manifest["checksums"], manifest["manifest_checksum"]
    (copy / "config.json").write_text(json.dumps(manifest))
    return copy


def _interleaved_medians(fns: list, rounds: int) -> list[float]:
    """Median seconds of each callable, run in turn each round (load drifts hit all alike)."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, spent in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return [h.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--tokens", default="40,160", help="min,max tokens per document")
    parser.add_argument("--rounds", type=int, default=5)
    h.result_options(parser)
    args = parser.parse_args()
    logging.getLogger("late_interaction").setLevel(logging.ERROR)  # the legacy copy's warning
    started = dt.datetime.now()
    lengths = tuple(int(x) for x in args.tokens.split(","))
    model, matrices = _Model(args.dim), _matrices(args.docs, args.dim, lengths, seed=0)
    n_tokens = sum(m.shape[0] for m in matrices)
    texts, ids = [f"doc {i}" for i in range(args.docs)], [f"d{i}" for i in range(args.docs)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, nbits in (("exact float16 + HNSW", None), ("compressed, nbits=2", 2)):
            index = LateInteractionIndex(model, config=IndexConfig(nbits=nbits))
            for i in range(0, args.docs, 512):
                index.add_embeddings(matrices[i : i + 512], texts[i : i + 512], ids[i : i + 512])
            folder = index.save(Path(tmp) / f"idx-{nbits}")
            del index
            files = sorted(p for p in folder.iterdir() if p.is_file())
            size_mb = sum(p.stat().st_size for p in files) / 2**20
            LateInteractionIndex.load(folder, model)  # warm the page cache
            legacy = _without_checksums(folder)
            verified, unverified, unchecked, hashing = _interleaved_medians(
                [
                    lambda f=folder: LateInteractionIndex.load(f, model),
                    lambda f=folder: LateInteractionIndex.load(f, model, verify=False),
                    lambda f=legacy: LateInteractionIndex.load(f, model),
                    lambda fs=files: [file_checksum(p) for p in fs],
                ],
                args.rounds,
            )
            rows.append(
                f"| {label} | {size_mb:.1f} | {verified * 1000:.0f} | {unverified * 1000:.0f} | "
                f"{unchecked * 1000:.0f} | {hashing * 1000:.0f} | {size_mb / hashing:.0f} |"
            )
    body = [
        f"{args.docs} documents, {n_tokens:,} tokens of dim {args.dim} (seeded random unit "
        f"vectors, {lengths[0]}-{lengths[1]} tokens each); warm page cache, median of "
        f"{args.rounds} rounds, the variants interleaved in each. 'No checksums recorded' is "
        "the same folder as earlier releases wrote it: what a load cost before verification.",
        "",
        "| store | folder MB | load, verify=True (ms) | load, verify=False (ms) | "
        "load, no checksums recorded (ms) | sha256 of every file alone (ms) | hash MB/s |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    h.publish(
        args, "loadverify", f"synthetic{args.docs}", started,
        "Index load time with and without checksum verification", body, f"dim{args.dim}",
    )  # fmt: skip


if __name__ == "__main__":
    main()
