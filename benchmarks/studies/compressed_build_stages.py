"""Where a compressed index's build time goes, stage by stage (process CPU time, encoding excluded).

Builds the ``compressed_scale`` passages (synthetic around real SciFact vectors, dim 128, nbits=2,
``add_embeddings`` per ``--chunk`` passages, as ``compressed_scale --worker build`` does) in this
process and wraps the build's functions with timers that charge each one's *own* CPU time
(process time, its callees' time subtracted) to a stage: input checks, k-means training (its
assignments apart), the centroid grouping of the two-level assignment, nearest-centroid
assignment while encoding, residuals and bucketing, packing, row file writes, inverted-list
segment builds and merges, document records, publishing, the rest of ``add``, and the save.
Passage generation is outside the timed adds. Run it with one BLAS thread
(``OPENBLAS_NUM_THREADS=1``) for per-core figures; CPU time is steadier than wall time on the
shared machine.

Usage (from the repository root; writes
``benchmarks/results/compressed-build<size>-<stamp>-stages.md``):
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=integrations python -m \\
        benchmarks.studies.compressed_build_stages --size 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks import _harness as h

SCALE = h.CACHE / "compressed-scale" / "d128-w100"


class StageClock:
    """Own CPU time per stage: a wrapped call's time minus that of the wrapped calls inside it."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list] = []  # [stage, start, time of wrapped callees]

    def wrap(self, owner: object, name: str, stage) -> None:
        """Replace ``owner.name`` by a timed wrapper; ``stage``: a name, or ``stack -> name``."""
        inner = getattr(owner, name)

        @functools.wraps(inner)
        def timed(*args, **kwargs):
            label = stage if isinstance(stage, str) else stage([s for s, _, _ in self._stack])
            frame = [label, time.process_time(), 0.0]
            self._stack.append(frame)
            try:
                return inner(*args, **kwargs)
            finally:
                self._stack.pop()
                total = time.process_time() - frame[1]
                self.cpu[label] += total - frame[2]
                self.calls[label] += 1
                if self._stack:
                    self._stack[-1][2] += total

        setattr(owner, name, timed)


def instrument(clock: StageClock) -> None:
    """Wrap the functions of a compressed build (by module attribute, where callers look)."""
    import importlib

    from late_interaction._index import (
        codec,
        document_store,
        file_rows,
        ivf,
        kmeans,
        state,
        token_store,
        write_api,
    )
    from late_interaction.index import LateInteractionIndex

    try:  # packing's module since the blocked encoder; in codec.py before
        packing = importlib.import_module("late_interaction._index.residual_encoding")
    except ImportError:
        packing = codec

    def assignment(stack: list[str]) -> str:
        return "k-means: assignment" if "k-means: other" in stack else "encode: assignment"

    def grouping(stack: list[str]) -> str:
        return "k-means: grouping" if "k-means: other" in stack else "encode: grouping"

    wraps = [
        (write_api, "as_token_matrix", "input checks (add_embeddings)"),
        (codec, "spherical_kmeans", "k-means: other"),
        (kmeans.NearestCentroid, "__init__", grouping),
        (kmeans.NearestCentroid, "__call__", assignment),
        (codec.ResidualCodec, "train", "codec training: held-out, quantiles"),
        (codec.ResidualCodec, "encode_with_error", "encode: residuals + bucketing"),
        (packing, "pack_buckets", "encode: packing"),
        (token_store.TokenStore, "_encode", "encode: norm check"),
        (token_store.TokenStore, "append", "store: concatenate + offsets"),
        (file_rows.FileRows, "write", "store: row file writes"),
        (token_store.TokenStore, "row_slots", "lists: row slots"),
        (ivf._Segment, "build", "lists: segment build (sort)"),
        (ivf._Segment, "merged", "lists: merge"),
        (ivf.InvertedLists, "appended", "lists: other"),
        (document_store.DocumentStore, "append", "document records"),
        (state.IndexState, "publish", "publish snapshot"),
        (state.IndexState, "_train_codec", "training sample (gather)"),
        (state.IndexState, "add", "add: other"),
        (LateInteractionIndex, "add_embeddings", "add_embeddings: other"),
        (LateInteractionIndex, "save", "save"),
    ]
    for owner, name, stage in wraps:
        clock.wrap(owner, name, stage)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--chunk", type=int, default=5000)
    h.result_options(p)
    args = p.parse_args()
    started = dt.datetime.now()
    clock = StageClock()
    instrument(clock)
    from benchmarks.studies._compressed_data import PrecomputedModel
    from benchmarks.studies.compressed_index import _threads
    from benchmarks.studies.compressed_scale import Passages
    from late_interaction import IndexConfig, LateInteractionIndex

    source = Passages(SCALE, argparse.Namespace(passage_tokens=100, segments=4, noise=0.02, seed=0))
    index = LateInteractionIndex(PrecomputedModel(128), config=IndexConfig(nbits=2))
    wall = cpu = 0.0
    tokens = 0
    for first, passages in source.blocks(args.size, args.chunk):
        t0, c0 = time.perf_counter(), time.process_time()
        index.add_embeddings(
            passages, [""] * len(passages), ids=[str(first + i) for i in range(len(passages))]
        )
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        tokens += sum(x.shape[0] for x in passages)
        print(f"{first + len(passages):,} passages {tokens:,} tokens cpu {cpu:.1f} s", flush=True)
    with tempfile.TemporaryDirectory(dir=h.REPO / ".cache") as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        index.save(Path(tmp) / "index")
        save_wall, save_cpu = time.perf_counter() - t0, time.process_time() - c0
    codec = index._state.store.codec
    timed = sum(clock.cpu.values())
    rows = sorted(clock.cpu.items(), key=lambda kv: -kv[1])
    body = [
        f"{args.size:,} `compressed_scale` passages (synthetic around real SciFact vectors, "
        f"dim 128; {tokens:,} tokens), nbits=2, {codec.n_centroids:,} centroids, add_embeddings "
        f"per {args.chunk:,} passages; threads: {_threads()}. Adds: {wall:.1f} s wall, {cpu:.1f} s "
        f"CPU = **{tokens / cpu:,.0f} tokens per CPU second** ({tokens / wall:,.0f} tokens/s "
        f"wall); save {save_wall:.1f} s wall, {save_cpu:.1f} s CPU. Stage CPU is each wrapped "
        "function's own process time (callees' subtracted); the stages sum to "
        f"{timed:.1f} s of the {cpu + save_cpu:.1f} s (adds + save).",
        "",
        "| stage | CPU s | share | µs per token | calls |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {k} | {v:.2f} | {v / (cpu + save_cpu):.1%} | {v / tokens * 1e6:.2f} "
            f"| {clock.calls[k]:,} |"
            for k, v in rows
        ),
    ]
    h.publish(args, "compressed", f"build{args.size}", started,
              "Compressed build, CPU time by stage", body, "stages")  # fmt: skip


if __name__ == "__main__":
    main()
