"""BEIR loading and retrieval metrics, shared by every benchmark (standard library and numpy only).

Every benchmark imports these, so a number in one table means the same thing as in another.
Metrics follow trec_eval: nDCG with linear gains and log2 discounts, ideal ranking from the qrels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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
