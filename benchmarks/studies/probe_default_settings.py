"""Chooses the embedded default model's encoding settings by measurement.

all-MiniLM-L6-v2 is a sentence-embedding model, not a trained ColBERT, so whether to keep its
special tokens, drop punctuation, expand queries with [MASK] or change lengths is an empirical
question. This script scores each variant by exact brute-force MaxSim over the whole corpus
(no ANN, so the index plays no part) and prints nDCG@10 / recall@100 beside dense mean pooling of
the same model (sentence-transformers' own pooling). Writes
``benchmarks/results/probe-<dataset>-<YYYYMMDD>-<HHMM>[-<tag>].md`` and ``.json``.

Usage (from the repository root):
    .venv/bin/python -m benchmarks.studies.probe_default_settings --data ../shared/data/scifact \\
        [--device cuda] [--only "doc length"]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h
from benchmarks._beir import load_beir, ndcg_at_k, recall_at_k
from late_interaction import ColBERT

PUNCT = tuple("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")

# (name, document settings, query settings); every variant is a set of from_pretrained arguments.
VARIANTS: list[tuple[str, dict, dict]] = [
    ("all tokens, no expansion", {"skiplist_words": (), "keep_special_tokens": True}, {}),
    ("skip punctuation", {"skiplist_words": PUNCT, "keep_special_tokens": True}, {}),
    ("skip punct + specials", {"skiplist_words": PUNCT, "keep_special_tokens": False}, {}),
    ("skip specials only", {"skiplist_words": (), "keep_special_tokens": False}, {}),
    (
        "skip punct, query [MASK] expansion to 32",
        {"skiplist_words": PUNCT, "keep_special_tokens": True},
        {"do_query_expansion": True, "query_length": 32},
    ),
    (
        "skip punct, doc length 384",
        {"skiplist_words": PUNCT, "keep_special_tokens": True, "document_length": 384},
        {},
    ),
    (
        "skip punct, doc length 512",
        {"skiplist_words": PUNCT, "keep_special_tokens": True, "document_length": 512},
        {},
    ),
]


def rank_exact(q_embs, d_embs, doc_ids, device: str, k: int = 100) -> list[list[str]]:
    """Brute-force MaxSim ranking of every document for every query (torch, any device)."""
    import torch

    lengths = torch.tensor([d.shape[0] for d in d_embs])
    padded = torch.nn.utils.rnn.pad_sequence(
        [torch.from_numpy(np.asarray(d, dtype=np.float16)) for d in d_embs], batch_first=True
    ).to(device)
    mask = (torch.arange(padded.shape[1])[None, :] < lengths[:, None]).to(device)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    padded = padded.to(dtype)
    runs = []
    for q in q_embs:
        qt = torch.from_numpy(q).to(device, dtype)
        scores = torch.zeros(len(d_embs), device=device, dtype=torch.float32)
        for start in range(0, len(d_embs), 512):  # chunks bound the (q, n, L) buffer
            sims = torch.einsum("qd,nld->nql", qt, padded[start : start + 512]).float()
            sims = sims.masked_fill(~mask[start : start + 512, None, :], float("-inf"))
            scores[start : start + 512] = sims.amax(dim=2).sum(dim=1)
        top = torch.topk(scores, min(k, len(d_embs))).indices.cpu().tolist()
        runs.append([doc_ids[i] for i in top])
    return runs


def dense_run(model_path: str, data, device: str, k: int = 100) -> dict[str, list[str]]:
    """Dense baseline: the model's own sentence embedding (mean pooling), cosine, exact."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model_path, device=device)
    d = st.encode(data.doc_texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    qids = list(data.queries)
    q = st.encode([data.queries[i] for i in qids], normalize_embeddings=True)
    top = np.argsort(-(q @ d.T), axis=1)[:, :k]
    return {qid: [data.doc_ids[j] for j in row] for qid, row in zip(qids, top, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", default=None, help="defaults to the embedded MiniLM")
    parser.add_argument("--device", default=None)
    parser.add_argument("--max-docs", type=int, default=None)
    parser.add_argument("--only", default=None, help="run only variants whose name contains this")
    h.result_options(parser)
    args = parser.parse_args()
    started = dt.datetime.now()

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    data = load_beir(args.data, max_docs=args.max_docs)
    qids = list(data.queries)
    rows = []
    start = time.perf_counter()
    base = ColBERT.from_pretrained(args.model, device=device)
    model_path = base.name_or_path
    dense = dense_run(model_path, data, device)
    rows.append(
        (
            "dense mean pooling (same model)",
            ndcg_at_k(dense, data.qrels),
            recall_at_k(dense, data.qrels),
        )
    )
    doc_cache: dict[str, list[np.ndarray]] = {}
    for name, doc_kw, query_kw in VARIANTS:
        if args.only and args.only not in name:
            continue
        model = ColBERT.from_pretrained(args.model, device=device, **doc_kw, **query_kw)
        key = json.dumps(doc_kw, sort_keys=True, default=list)
        if key not in doc_cache:
            doc_cache[key] = model.encode_documents(data.doc_texts, batch_size=64)
        q_embs = model.encode_queries([data.queries[i] for i in qids], batch_size=64)
        ranked = rank_exact(q_embs, doc_cache[key], data.doc_ids, device)
        run = dict(zip(qids, ranked, strict=True))
        rows.append((f"MaxSim: {name}", ndcg_at_k(run, data.qrels), recall_at_k(run, data.qrels)))
        sys.stdout.write(f"{rows[-1][0]}: nDCG@10 {rows[-1][1]:.4f}\n")
        sys.stdout.flush()
    elapsed = time.perf_counter() - start
    body = [
        f"{data.name}: {len(data.doc_ids)} docs, {len(qids)} queries, device {device}, "
        f"torch {torch.__version__}, {elapsed:.0f}s",
        "",
        "| setting | nDCG@10 | recall@100 |",
        "|---|---|---|",
        *(f"| {name} | {ndcg:.4f} | {rec:.4f} |" for name, ndcg, rec in rows),
    ]
    dataset = h.dataset_label(data.name, len(data.doc_ids), args.max_docs)
    data_rows = [{"setting": n, "ndcg@10": a, "recall@100": b} for n, a, b in rows]
    title = "Encoding settings of the default model, by exact MaxSim"
    h.publish(args, "probe", dataset, started, title, body, data={"rows": data_rows})


if __name__ == "__main__":
    main()
