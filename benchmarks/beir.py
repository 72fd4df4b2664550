"""Shared helpers for the quality and speed scripts: BEIR loading, metrics, embedding cache.

Every benchmark imports these, so a number in one table means the same thing as in another.
Metrics follow trec_eval: nDCG with linear gains and log2 discounts, ideal ranking from the qrels.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CACHE_DIR = REPO / ".cache" / "embeddings"


@dataclass
class BeirDataset:
    """A BEIR-layout dataset held in memory.

    Attributes:
        name: Folder name.
        doc_ids: Corpus ids, in file order.
        doc_texts: ``title + " " + text`` for each corpus id, in the same order.
        queries: Query id -> text, for the queries that have qrels.
        qrels: Query id -> {doc id: relevance}.
    """

    name: str
    doc_ids: list[str]
    doc_texts: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir(folder: str | Path, *, max_docs: int | None = None) -> BeirDataset:
    """Load ``corpus.jsonl``, ``queries.jsonl`` and ``qrels.tsv`` from a BEIR-layout folder.

    Args:
        folder: The dataset folder, e.g. ``../shared/data/scifact``.
        max_docs: Keep only the first documents plus every judged one (for quick runs); queries
            keep only judgements of kept documents.

    Returns:
        The dataset; queries without qrels are dropped.
    """
    folder = Path(folder)
    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels.tsv").open(encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0] == "query-id":
                continue
            if int(parts[2]) > 0:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    judged = {d for rels in qrels.values() for d in rels}
    doc_ids, doc_texts = [], []
    with (folder / "corpus.jsonl").open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            rec = json.loads(line)
            if max_docs is not None and i >= max_docs and rec["_id"] not in judged:
                continue
            doc_ids.append(str(rec["_id"]))
            doc_texts.append(f"{rec.get('title', '')} {rec.get('text', '')}".strip())
    kept = set(doc_ids)
    qrels = {q: {d: r for d, r in rels.items() if d in kept} for q, rels in qrels.items()}
    qrels = {q: rels for q, rels in qrels.items() if rels}
    queries = {}
    with (folder / "queries.jsonl").open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if str(rec["_id"]) in qrels:
                queries[str(rec["_id"])] = rec["text"]
    return BeirDataset(folder.name, doc_ids, doc_texts, queries, qrels)


def ndcg_at_k(
    run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], k: int = 10
) -> float:
    """Mean nDCG@k over the judged queries (a query missing from ``run`` scores 0).

    Args:
        run: Query id -> ranked doc ids, best first.
        qrels: Query id -> {doc id: relevance > 0}.
        k: Cut-off.

    Returns:
        The mean over every query in ``qrels``.
    """
    total = 0.0
    for qid, rels in qrels.items():
        ranked = list(run.get(qid, []))[:k]
        dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked))
        ideal = sorted(rels.values(), reverse=True)[:k]
        idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
        total += dcg / idcg if idcg > 0 else 0.0
    return total / max(len(qrels), 1)


def recall_at_k(
    run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], k: int = 100
) -> float:
    """Mean fraction of relevant documents found in the top k."""
    total = 0.0
    for qid, rels in qrels.items():
        found = set(list(run.get(qid, []))[:k]) & set(rels)
        total += len(found) / len(rels)
    return total / max(len(qrels), 1)


def overlap_at_k(
    approx: Sequence[Sequence[str]], exact: Sequence[Sequence[str]], k: int = 10
) -> float:
    """Mean recall@k of an approximate ranking against an exact one (same query order)."""
    vals = [
        len(set(a[:k]) & set(e[:k])) / max(min(k, len(e)), 1)
        for a, e in zip(approx, exact, strict=True)
    ]
    return float(np.mean(vals)) if vals else 0.0


def _cache_key(model: Any, texts: Sequence[str], key: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(model.fingerprint(), sort_keys=True).encode())
    h.update(key.encode())
    for t in texts:
        h.update(hashlib.sha1(t.encode()).digest())
    return f"{key}-{h.hexdigest()[:16]}"


def cached_document_embeddings(
    model: Any,
    texts: Sequence[str],
    cache_key: str,
    *,
    batch_size: int = 32,
    cache_dir: Path = CACHE_DIR,
) -> list[np.ndarray]:
    """Document token matrices from ``model.encode_documents``, cached on disk.

    The cache is keyed by the model fingerprint, ``cache_key`` and a hash of every text, so a
    changed encoder setting or corpus never reuses stale vectors.

    Args:
        model: A ``late_interaction.ColBERT`` (needs ``encode_documents``, ``fingerprint``).
        texts: Documents to encode.
        cache_key: Short name for the folder, e.g. ``"scifact"``.
        batch_size: Encoding batch size.
        cache_dir: Where caches live (git-ignored).

    Returns:
        One float16 ``(n_tokens, dim)`` read-only view per text, backed by a memory-mapped array.
    """
    folder = cache_dir / _cache_key(model, texts, cache_key)
    tokens_path, offsets_path = folder / "tokens.npy", folder / "offsets.npy"
    if not (tokens_path.exists() and offsets_path.exists()):
        logger.info("encoding %d documents into %s", len(texts), folder)
        embs = model.encode_documents(list(texts), batch_size=batch_size, show_progress_bar=True)
        offsets = np.zeros(len(embs) + 1, dtype=np.int64)
        np.cumsum([e.shape[0] for e in embs], out=offsets[1:])
        # A per-process temp folder, renamed into place: two processes filling the same cache
        # never clash, and the loser of the race just reads the winner's (identical) arrays.
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        np.save(tmp / "tokens.npy", np.concatenate(embs).astype(np.float16))
        np.save(tmp / "offsets.npy", offsets)
        try:
            tmp.rename(folder)
        except OSError:
            if not (tokens_path.exists() and offsets_path.exists()):
                raise
            shutil.rmtree(tmp)
    tokens = np.load(tokens_path, mmap_mode="r")
    offsets = np.load(offsets_path)
    return [tokens[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def quality_run_setup(description: str) -> tuple[Any, BeirDataset, dict[str, str], dict]:
    """Options and data of the framework quality scripts (``quality_*.py``).

    Returns:
        ``(args, dataset, queries, qrels)``: queries cut to ``--max-queries``, qrels to match.
    """
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", default=str(SHARED_DATA / "scifact"))
    parser.add_argument("--max-docs", type=int, default=None, help="first N docs + all judged ones")
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--rerank-depth", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    ds = load_beir(args.data, max_docs=args.max_docs)
    queries = dict(list(ds.queries.items())[: args.max_queries])
    return args, ds, queries, {q: ds.qrels[q] for q in queries}
