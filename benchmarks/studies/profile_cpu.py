"""Where CPU time goes: cProfile of document encoding and of index search (embedded model).

Explains the CPU targets the harness misses: encoding at equal precision is the transformer
forward pass (the same torch BERT modules PyLate runs), and a search is per-token HNSW queries
plus exact MaxSim over the candidates (widening float16 rows, the matrix product, the
segmented max). Writes ``benchmarks/results/profile-<dataset>-<YYYYMMDD>-<HHMM>[-<tag>].md``.

Usage (from the repository root):
    .venv/bin/python -m benchmarks.studies.profile_cpu --max-docs 300
    .venv/bin/python -m benchmarks.studies.profile_cpu --max-docs 300 --skip-encode \\
        --storage-dtype float32 --tag float32
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import pstats
import tempfile
from pathlib import Path

from benchmarks import _harness as h
from benchmarks._beir import load_beir


def _top(profile: cProfile.Profile, n: int) -> tuple[float, list[str]]:
    stats = pstats.Stats(profile, stream=io.StringIO())
    total = stats.total_tt
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:n]  # tottime
    lines = ["| function | calls | own time s | share |", "|---|---:|---:|---:|"]
    for (file, line, name), (_, calls, tottime, _, _) in rows:
        where = name if file == "~" else f"{Path(file).name}:{line} {name}"
        lines.append(f"| `{where}` | {calls} | {tottime:.3f} | {tottime / total:.0%} |")
    return total, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(h.SHARED_DATA / "scifact"))
    parser.add_argument("--max-docs", type=int, default=1000)
    parser.add_argument("--encode-docs", type=int, default=64)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--pool-factor", type=int, default=1)
    parser.add_argument("--storage-dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--skip-encode", action="store_true", help="profile search only")
    h.result_options(parser)
    args = parser.parse_args()
    started = dt.datetime.now()

    import torch

    from late_interaction import ColBERT, IndexConfig, LateInteractionIndex

    ds = load_beir(args.data, max_docs=args.max_docs)
    model = ColBERT.from_pretrained()
    texts = list(ds.doc_texts[: args.encode_docs])
    enc = cProfile.Profile()
    if not args.skip_encode:
        model.encode_documents(texts[:8])  # warm-up
        enc.enable()
        model.encode_documents(texts, batch_size=32, show_progress_bar=False)
        enc.disable()

    embs = h.document_embeddings(model, ds.doc_texts, ds.name)
    queries = model.encode_queries(list(ds.queries.values())[: args.queries])
    title = f"CPU profile ({ds.name}, {len(embs)} docs, torch threads {torch.get_num_threads()})"
    out = []  # sections, each starting with a blank line
    with tempfile.TemporaryDirectory() as tmp:
        config = IndexConfig(pool_factor=args.pool_factor, storage_dtype=args.storage_dtype)
        index = LateInteractionIndex(model, tmp, config=config)
        index.add_embeddings(embs, ds.doc_texts, ids=ds.doc_ids)
        index.search(queries[0], k=10)  # warm-up
        search = cProfile.Profile()
        search.enable()
        for q in queries:
            index.search(q, k=10)
        search.disable()
    if not args.skip_encode:
        total, lines = _top(enc, 12)
        out += ["", f"## encode_documents: {len(texts)} docs, batch 32, {total:.2f} s", "", *lines]
    total, lines = _top(search, 12)
    out += [
        "",
        f"## search (query matrices): {len(queries)} queries, k=10, "
        f"pool_factor {args.pool_factor}, "
        f"storage_dtype {args.storage_dtype}, "
        f"{total:.2f} s ({total / len(queries) * 1000:.0f} ms per query)",
        "",
        *lines,
    ]
    dataset = h.dataset_label(ds.name, len(embs), args.max_docs)
    h.publish(args, "profile", dataset, started, title, out[1:])


if __name__ == "__main__":
    main()
