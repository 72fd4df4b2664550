"""Data for the compressed-index study: BEIR loading, metrics and an embedding cache.

Self-contained (standard library, numpy and late_interaction) so the study does not depend on the
shared benchmark helpers while they are being reorganised. Embeddings are cached under
``.cache/compressed-study/`` (git-ignored), keyed by the encoder fingerprint and every text.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
CACHE = REPO / ".cache" / "compressed-study"


@dataclass
class Dataset:
    """A BEIR-layout dataset: corpus ids/texts in file order, judged queries and qrels."""

    name: str
    doc_ids: list[str]
    doc_texts: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir(folder: Path) -> Dataset:
    """Load ``corpus.jsonl``, ``queries.jsonl`` and ``qrels.tsv`` (queries without qrels go)."""
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels.tsv").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0] != "query-id" and int(parts[2]) > 0:
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    doc_ids, doc_texts = [], []
    with (folder / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            doc_ids.append(str(rec["_id"]))
            # Cranfield has two empty documents; a space still encodes to the special tokens.
            doc_texts.append(f"{rec.get('title', '')} {rec.get('text', '')}".strip() or " ")
    queries = {}
    with (folder / "queries.jsonl").open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if str(rec["_id"]) in qrels:
                queries[str(rec["_id"])] = rec["text"]
    return Dataset(folder.name, doc_ids, doc_texts, queries, qrels)


def ndcg_at_k(
    run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], k: int = 10
) -> float:
    """Mean nDCG@k (trec_eval: linear gains, log2 discounts) over every judged query."""
    total = 0.0
    for qid, rels in qrels.items():
        ranked = list(run.get(qid, []))[:k]
        dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked))
        ideal = sorted(rels.values(), reverse=True)[:k]
        total += dcg / sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return total / max(len(qrels), 1)


def overlap_at_k(
    approx: Sequence[Sequence[str]], exact: Sequence[Sequence[str]], k: int = 10
) -> float:
    """Mean recall@k of one ranking against a reference ranking (same query order)."""
    vals = [
        len(set(a[:k]) & set(e[:k])) / max(min(k, len(e)), 1)
        for a, e in zip(approx, exact, strict=True)
    ]
    return float(np.mean(vals)) if vals else 0.0


def cached(name: str, fingerprint: object, texts: Sequence[str], encode) -> list[np.ndarray]:
    """Token matrices of ``texts`` (float32 copies), encoded once and cached as float16.

    Args:
        name: Cache label (dataset and side).
        fingerprint: The encoder's identity; any change re-encodes.
        texts: What to encode.
        encode: ``list[str] -> list[matrix]``; called on a cache miss only.
    """
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode())
    for text in texts:
        digest.update(hashlib.sha1(text.encode()).digest())
    folder = CACHE / f"{name}-{digest.hexdigest()[:16]}"
    if not (folder / "offsets.npy").exists():
        start = time.perf_counter()
        matrices = encode(list(texts))
        tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        np.save(tmp / "tokens.npy", np.concatenate([np.asarray(m, np.float16) for m in matrices]))
        np.save(tmp / "offsets.npy", np.cumsum([0] + [m.shape[0] for m in matrices]))
        tmp.rename(folder)
        print(
            f"encoded {len(texts)} texts into {folder} in {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )
    tokens = np.load(folder / "tokens.npy", mmap_mode="r")
    offsets = np.load(folder / "offsets.npy")
    return [np.asarray(tokens[a:b], np.float32) for a, b in itertools.pairwise(offsets)]


def dataset_embeddings(model, data: Dataset) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Cached document and query matrices of ``data`` under ``model`` (a ``ColBERT``)."""
    fp = model.fingerprint()
    docs = cached(
        f"{data.name}-docs",
        fp,
        data.doc_texts,
        lambda t: model.encode_documents(t, batch_size=32, show_progress_bar=True),
    )
    queries = cached(
        f"{data.name}-queries",
        fp,
        list(data.queries.values()),
        lambda t: model.encode_queries(t, batch_size=64),
    )
    return docs, queries


if __name__ == "__main__":  # python -m benchmarks.studies._compressed_data: fill the cache
    from late_interaction import ColBERT

    encoder = ColBERT.from_pretrained(device="cpu")
    for dataset in sys.argv[1:] or ["cranfield", "scifact"]:
        d, q = dataset_embeddings(encoder, load_beir(SHARED_DATA / dataset))
        print(dataset, len(d), sum(m.shape[0] for m in d), "tokens", len(q), "queries")
