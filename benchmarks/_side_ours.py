"""Our side of the speed benchmark: ``late_interaction.ColBERT`` and ``LateInteractionIndex``.

Not an entry point: ``benchmarks.compare`` runs it in our virtual environment, one fresh process
per phase (so each phase's peak memory is its own), and reads the JSON each writes. Phases mirror
``_side_pylate.py`` one for one, on the same checkpoint folder, data and batch size.

Phases:
    encode   document throughput on a fixed subset and single-query latency.
    embed    encode the whole corpus and the queries once (cached; not timed).
    index    build the index from cached embeddings (``add_embeddings`` + ``save``; no encoding).
    search   per-query latency (k=10, k=100), a 100-query batch, ANN recall vs exact MaxSim
             (``search(..., exact=True)``).
    rerank   ``ColBERT.rerank`` of the BM25 top-100 candidates.

Usage (normally through compare; from the repository root):
    .venv/bin/python -m benchmarks._side_ours --phase index --data ../shared/data/scifact
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h
from benchmarks._beir import load_beir

logger = logging.getLogger("side_ours")


def _model(args: argparse.Namespace):
    from late_interaction import ColBERT

    path = None if args.checkpoint == "default" else args.checkpoint
    settings = json.loads(args.encoder_settings) if args.encoder_settings else {}
    return ColBERT.from_pretrained(
        path,
        device=args.device,
        dtype=args.dtype,
        backend=args.backend,
        quantize=args.quantize,
        **settings,
    )


def _token_cosines(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """Cosine of each token vector in ``a`` to its counterpart in ``b``, all documents."""
    x, y = (np.concatenate(m).astype(np.float64) for m in (a, b))
    return (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))


def phase_encode(args, ds) -> dict:
    """Serve interleaved encoding trials to compare (see ``_harness.encode_server``)."""
    import torch

    model = _model(args)

    def docs(texts):
        out = model.encode_documents(texts, batch_size=args.batch_size, show_progress_bar=False)
        h.sync(args.device)
        return out

    def query(text):
        out = model.encode_queries([text], batch_size=1, show_progress_bar=False)
        h.sync(args.device)
        return out

    info = {"torch_threads": torch.get_num_threads(), "fingerprint": model.fingerprint()}
    info["backend"] = {"backend": model.backend, "quantize": model.quantize}
    if args.dtype is not None or args.backend != "torch":  # how far the vectors move
        sample = list(ds.doc_texts[: args.cosine_docs])
        plain = {"dtype": None, "backend": "torch", "quantize": None}
        reference = _model(argparse.Namespace(**{**vars(args), **plain}))
        cos = _token_cosines(model.encode_documents(sample), reference.encode_documents(sample))
        info["dtype"] = str(model.dtype)
        info["token_cosine_vs_float32"] = {
            "min": float(cos.min()),
            "mean": float(cos.mean()),
            "p001": float(np.quantile(cos, 0.001)),
            "docs": len(sample),
            "tokens": len(cos),
        }
        del reference
    h.encode_server(docs, query, ds.doc_texts, list(ds.queries.values()), info)
    return {}


def _doc_embeddings(model, ds, args) -> list[np.ndarray]:
    return h.document_embeddings(model, ds.doc_texts, ds.name, batch_size=args.batch_size)


def _query_embeddings(model, ds, args) -> list[np.ndarray]:
    def encode(texts):
        return model.encode_queries(texts, batch_size=args.batch_size)

    texts = list(ds.queries.values())
    name = f"{ds.name}-queries"
    return h.cached_embeddings(name, model.fingerprint(), texts, encode, dtype=np.float32)


def phase_embed(args, ds) -> dict:
    model = _model(args)
    t0 = time.perf_counter()
    docs = _doc_embeddings(model, ds, args)
    queries = _query_embeddings(model, ds, args)
    return {
        "docs": len(docs),
        "doc_tokens": int(sum(d.shape[0] for d in docs)),
        "queries": len(queries),
        "seconds_incl_cache": time.perf_counter() - t0,
    }


def _index_dir(args) -> Path:
    return Path(args.work_dir) / "ours-index"


def phase_index(args, ds) -> dict:
    from late_interaction import IndexConfig, LateInteractionIndex

    config = IndexConfig(**json.loads(args.index_config)) if args.index_config else None
    model = _model(args)  # the index records the encoder's fingerprint in its manifest
    docs = [np.asarray(d) for d in _doc_embeddings(model, ds, args)]
    n_tok = int(sum(d.shape[0] for d in docs))
    folder = _index_dir(args)
    shutil.rmtree(folder, ignore_errors=True)
    with h.MemoryWindow() as mem:
        t0 = time.perf_counter()
        index = LateInteractionIndex(model=model, path=folder, config=config)
        index.add_embeddings(docs, ds.doc_texts, ids=ds.doc_ids)
        t_add = time.perf_counter() - t0
        index.save()
        dt = time.perf_counter() - t0
    size = h.dir_bytes(folder)
    return {
        "docs": len(docs),
        "tokens": n_tok,
        "build_s": dt,
        "add_s": t_add,
        "save_s": dt - t_add,
        "tokens_per_s": n_tok / dt,
        "disk_bytes": size,
        "bytes_per_token": size / n_tok,
        "disk_files": {
            str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()
        },
        "memory": mem.result(),
        "settings": index.config.to_dict(),
    }


def phase_search(args, ds) -> dict:
    from late_interaction import LateInteractionIndex

    model = _model(args)  # loaded before the window: the batch path encodes query texts
    q_embs = _query_embeddings(model, ds, args)[: args.n_queries]
    qids = list(ds.queries)[: args.n_queries]
    with h.MemoryWindow() as mem:
        index = LateInteractionIndex.load(_index_dir(args), model=model)

        def one(k):
            return lambda q: [hit.id for hit in index.search(q, k=k)]

        one(10)(q_embs[0])  # warm-up
        res10, t10 = h.timed_calls(one(10), q_embs)
        res100, t100 = h.timed_calls(one(100), q_embs)
    texts = [ds.queries[q] for q in qids[:100]]
    with h.MemoryWindow(base_mb=mem.start) as mem_batch:
        t0 = time.perf_counter()
        index.search_batch(texts, k=10, batch_size=args.batch_size)
        t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.encode_queries(texts, batch_size=args.batch_size)
    t_enc = time.perf_counter() - t0
    exact = [[hit.id for hit in index.search(q, k=10, exact=True)] for q in q_embs]
    return {
        "queries": len(q_embs),
        "latency_k10": h.latency_stats(t10),
        "latency_k100": h.latency_stats(t100),
        "batch": {"queries": len(texts), "seconds": t_batch, "encode_seconds": t_enc},
        "run_k10": dict(zip(qids, res10, strict=True)),
        "run_k100": dict(zip(qids, res100, strict=True)),
        "exact_k10": dict(zip(qids, exact, strict=True)),
        "memory": mem.result(),
        "memory_batch": mem_batch.result(),
        "settings": index.config.to_dict(),
    }


def phase_rerank(args, ds) -> dict:
    cand = json.loads(Path(args.candidates).read_text())
    text_of = dict(zip(ds.doc_ids, ds.doc_texts, strict=True))
    model = _model(args)
    qids = list(cand)[: args.rerank_queries]

    def one(qid):
        ids = cand[qid]
        out = model.rerank(ds.queries[qid], [text_of[i] for i in ids], batch_size=args.batch_size)
        return [ids[r.position] for r in out]

    return h.timed_run(one, qids)


PHASES = {
    "encode": phase_encode,
    "embed": phase_embed,
    "index": phase_index,
    "search": phase_search,
    "rerank": phase_rerank,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    h.side_arguments(p, PHASES)
    p.add_argument(
        "--checkpoint", default=str(h.CHECKPOINT_DIR), help="folder, or 'default' (embedded)"
    )
    p.add_argument("--dtype", default=None, help="ColBERT dtype (None: float32; 'auto')")
    p.add_argument("--backend", default="torch", help="ColBERT backend: torch, onnx, openvino")
    p.add_argument("--quantize", default=None, help="ColBERT quantize (None; 'int8')")
    p.add_argument("--cosine-docs", type=int, default=64, help="documents for the cosine check")
    p.add_argument("--encoder-settings", default=None, help="JSON of from_pretrained overrides")
    p.add_argument("--index-config", default=None, help="JSON of IndexConfig overrides")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    ds = load_beir(args.data, max_docs=args.max_docs)
    result = PHASES[args.phase](args, ds)
    result["side"] = "ours"
    result["phase"] = args.phase
    result["checkpoint"] = args.checkpoint
    names = ("late-interaction", "voyager", "transformers", "torch", "numpy")
    result["versions"] = h.package_versions(names)
    h.write_result(args.out, result)


if __name__ == "__main__":
    main()
