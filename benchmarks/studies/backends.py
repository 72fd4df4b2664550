"""Study: retrieval quality and token agreement of the CPU backends (issue 11, Speed / CPU).

Speed is measured side by side with PyLate by ``benchmarks.compare`` (its encoder-variant sides
``ours-onnx``, ``ours-openvino``, ``ours-openvino-auto``, ``ours-onnx-int8``). This study answers
the other half of the targets: does a backend change what is retrieved? For each encoder variant
it encodes the SciFact corpus and its test queries, ranks by exact brute-force MaxSim (numpy,
``_harness.exact_maxsim_topk``, no index in the way) and reports nDCG@10, recall@100, the overlap
of its top-10 with float32 torch's, and every document token's cosine to float32 torch.

Embeddings are cached under ``.cache/benchmarks/embeddings`` keyed by the encoder fingerprint
*and* the variant (the fingerprint alone does not name the backend: it stands for the encoding
rules, which a backend does not change).

Usage (from the repository root):
    PYTHONPATH=integrations python -m benchmarks.studies.backends --max-docs 1000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as h
from benchmarks._beir import load_beir, ndcg_at_k, overlap_at_k, recall_at_k

VARIANTS = {
    "torch float32": {},
    "onnx": {"backend": "onnx"},
    "openvino": {"backend": "openvino"},
    "openvino dtype=auto": {"backend": "openvino", "dtype": "auto"},
    "onnx int8": {"backend": "onnx", "quantize": "int8"},
    "openvino int8": {"backend": "openvino", "quantize": "int8"},
}


def _encode(name: str, options: dict, ds, args) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    from late_interaction import ColBERT

    model = None

    def load():
        nonlocal model
        if model is None:
            path = None if str(args.checkpoint) == "default" else args.checkpoint
            model = ColBERT.from_pretrained(path, device="cpu", **options)
        return model

    key = {"variant": options, "fingerprint": load().fingerprint()}
    if options.get("backend") == "openvino" and options.get("quantize"):
        from late_interaction._encoding.int8_weights import GROUP_SIZE

        key["int8_group"] = GROUP_SIZE  # a run-time setting: the fingerprint does not see it
    timing: dict = {}

    def docs(texts):
        t0 = time.perf_counter()
        out = load().encode_documents(texts, batch_size=args.batch_size, show_progress_bar=True)
        timing["docs_s"] = time.perf_counter() - t0
        return out

    def queries(texts):
        return load().encode_queries(texts, batch_size=args.batch_size)

    d = h.cached_embeddings(f"{ds.name}-backend-docs", key, ds.doc_texts, docs, dtype=np.float32)
    q = h.cached_embeddings(
        f"{ds.name}-backend-queries", key, list(ds.queries.values()), queries, dtype=np.float32
    )
    return d, q, timing


def _cosines(a: list[np.ndarray], b: list[np.ndarray]) -> dict:
    assert [m.shape for m in a] == [m.shape for m in b], "different kept rows"
    x, y = np.concatenate(a).astype(np.float64), np.concatenate(b).astype(np.float64)
    c = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    return {"min": float(c.min()), "p001": float(np.quantile(c, 0.001)), "mean": float(c.mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=h.SHARED_DATA / "scifact")
    p.add_argument("--max-docs", type=int, default=None, help="first N docs + all judged ones")
    p.add_argument("--checkpoint", default=h.CHECKPOINT_DIR, help="folder, or 'default' (embedded)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma list of VARIANTS keys")
    h.result_options(p)
    args = p.parse_args()
    started = dt.datetime.now()
    ds = load_beir(args.data, max_docs=args.max_docs)
    dataset = h.dataset_label(ds.name, len(ds.doc_ids), args.max_docs)
    qids = list(ds.queries)
    rows, ref_docs, ref_run = {}, None, None
    for name in [v for v in args.variants.split(",") if v]:
        docs, queries, timing = _encode(name, VARIANTS[name], ds, args)
        top = h.exact_maxsim_topk(queries, docs, 100)
        run = {q: [ds.doc_ids[i] for i in r] for q, r in zip(qids, top, strict=True)}
        if ref_docs is None:
            ref_docs, ref_run = docs, run
        rows[name] = {
            "ndcg@10": ndcg_at_k(run, ds.qrels, 10),
            "recall@100": recall_at_k(run, ds.qrels, 100),
            "overlap@10_vs_first": overlap_at_k([run[q] for q in qids], [ref_run[q] for q in qids]),
            "token_cosine_vs_first": _cosines(docs, ref_docs),
            **timing,
        }
        print(name, json.dumps(rows[name]), flush=True)
    first = next(iter(rows))
    meta = h.run_meta(started)
    title = (
        f"CPU backends: retrieval quality, {dataset} ({len(ds.doc_ids)} docs, {len(qids)} queries)"
    )
    lines = [
        *h.header_lines(title, meta),
        f"- Checkpoint: `{h.repo_relative(Path(args.checkpoint))}`; exact MaxSim, no index.",
        f"- Reference (cosine, overlap, nDCG delta): {first}. Load average: {os.getloadavg()}",
        "",
        "| encoder | nDCG@10 | Δ nDCG@10 | recall@100 | top-10 overlap "
        "| token cosine min / 0.1% / mean |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, r in rows.items():
        c = r["token_cosine_vs_first"]
        delta = r["ndcg@10"] - rows[first]["ndcg@10"]
        lines.append(
            f"| {name} | {r['ndcg@10']:.4f} | {delta:+.4f} | {r['recall@100']:.4f} | "
            f"{r['overlap@10_vs_first']:.3f} | {c['min']:.5f} / {c['p001']:.5f} / {c['mean']:.5f} |"
        )
    md = "\n".join(lines) + "\n"
    stem = h.result_stem("backends", dataset, started, args.tag)
    h.save_result(
        args.results_dir,
        stem,
        md,
        {"meta": meta, "rows": rows, "args": {k: str(v) for k, v in vars(args).items()}},
    )
    print(md)


if __name__ == "__main__":
    main()
