"""Data for the compressed-index studies: the shared BEIR loading and metrics, and the one cache.

The study's documents and queries are encoded once and cached by ``_harness.cached_embeddings``
(``.cache/benchmarks/embeddings/``), keyed by the encoder fingerprint and every text. Document
matrices already cached by ``studies.fused_default`` (``<dataset>-dense-<hash>``, the same
encoder output plus dense vectors, keyed by the same fingerprint and texts) are used as they are
rather than encoded again.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h
from benchmarks._beir import BeirDataset, load_beir, ndcg_at_k, overlap_at_k

REPO, SHARED_DATA = h.REPO, h.SHARED_DATA
__all__ = [
    "load_saved_index",
    "saved_index_options",
    "REPO",
    "SHARED_DATA",
    "PrecomputedModel",
    "dataset_embeddings",
    "load_beir",
    "ndcg_at_k",
    "overlap_at_k",
    "timed_searches",
]


def dataset_embeddings(model, data: BeirDataset) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Cached document and query matrices of ``data`` under ``model`` (a ``ColBERT``), float32."""
    fp = model.fingerprint()
    own = h.EMBEDDINGS.glob(f"{data.name}-docs-*")
    if not any(h.packed_exists(p) for p in own):
        from benchmarks.studies.fused_default import encoded  # its cache, or it fills one

        docs = [np.asarray(m, dtype=np.float32) for m in encoded(model, data)[0]]
    else:
        docs = h.cached_embeddings(
            f"{data.name}-docs",
            fp,
            data.doc_texts,
            lambda t: model.encode_documents(t, batch_size=32, show_progress_bar=True),
            dtype=np.float32,
        )
    queries = h.cached_embeddings(
        f"{data.name}-queries",
        fp,
        list(data.queries.values()),
        lambda t: model.encode_queries(t, batch_size=64),
        dtype=np.float32,
    )
    return docs, queries


def timed_searches(search, queries) -> tuple[list, dict, dict]:
    """``search(q)`` for each query: the outputs, wall-time and CPU-time latency stats.

    CPU time (this process) is reported beside wall time because the machine is shared: with
    one BLAS thread it is the query's own work, which other jobs' load stretches far less.
    """
    runs, wall, cpu = [], [], []
    for q in queries:
        t0, c0 = time.perf_counter(), time.process_time()
        runs.append(search(q))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return runs, h.latency_stats(wall), h.latency_stats(cpu)


def saved_index_options(parser, *, exact: bool = False) -> None:
    """``--index``, ``--queries``, ``--n-queries`` (and ``--exact``) of a study of a saved index.

    Args:
        parser: The study's ``argparse.ArgumentParser``.
        exact: Also take ``--exact``, a brute-force reference (``compressed_scale``'s
            ``exact-n*.json``).
    """
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    if exact:
        parser.add_argument("--exact", type=Path, required=True)
    parser.add_argument("--n-queries", type=int, default=100)


def load_saved_index(args) -> tuple:
    """``(index, queries)``: ``args.index`` memory-mapped, the first ``args.n_queries`` queries."""
    from late_interaction import LateInteractionIndex

    queries = h.load_packed(args.queries)[: args.n_queries]
    index = LateInteractionIndex.load(args.index, model=PrecomputedModel(queries[0].shape[1]))
    return index, queries


class PrecomputedModel:
    """Stands in for the encoder of an index fed precomputed matrices only.

    ``LateInteractionIndex`` needs ``dim`` and ``fingerprint()``; nothing here encodes text,
    so the encode methods raise to prove they are never called.

    Args:
        dim: Token vector dimension.
        name: Recorded as the fingerprint's name (an index loads only with the same one).
    """

    def __init__(self, dim: int, name: str = "compressed-study-precomputed") -> None:
        self.dim, self.name = dim, name

    def fingerprint(self) -> dict:
        return {"name_or_path": self.name, "dim": self.dim}

    def encode_queries(self, *a, **k):  # pragma: no cover - never called
        raise RuntimeError("the study encodes nothing through the index")

    encode_documents = encode_queries


if __name__ == "__main__":  # python -m benchmarks.studies._compressed_data: fill the cache
    from late_interaction import ColBERT

    encoder = ColBERT.from_pretrained(device="cpu")
    for dataset in sys.argv[1:] or ["cranfield", "scifact"]:
        d, q = dataset_embeddings(encoder, load_beir(SHARED_DATA / dataset))
        print(dataset, len(d), sum(m.shape[0] for m in d), "tokens", len(q), "queries")
