"""Study: the fused plain-encoder default end to end, through ``LateInteractionIndex``.

Issue 14, part 3. ``benchmarks/results/study-plain-defaults-20261130.md`` chose, by exact
brute-force scoring outside the library, the default ``(MaxSim/|q| + 0.25 cos(dense)) / 1.25`` for
the embedded all-MiniLM-L6-v2 (``EncoderConfig.dense_weight``). This study measures what the
library now does with it: nDCG@10 and recall@100 of

* dense alone: the dense vectors ``encode_*(..., return_dense=True)`` returns, brute-force cosine
  (numpy; the reference, not a library search mode);
* MaxSim alone (``dense_weight=0``, query_length 128): ``index.search_batch`` with its ANN
  candidates, and with ``exact=True``;
* the default (``dense_weight=0.25``): the same two searches.

plus the candidate-budget check: how many of the exact fused top-10 the ANN search returns
(overlap@10), since candidates still come from the token ANN stage (``n_full_scores`` best by
their token hits) and only those are fused.

One index per dataset: built once from the cached encodings with ``add_embeddings(..., dense=)``
(the encoder output of ``ColBERT.from_pretrained()``; one forward pass gives tokens and dense
vectors), saved, and loaded twice: with the default encoder (0.25) and with
``ColBERT.from_pretrained(dense_weight=0)``. Queries are encoded by the index from their text.

Splits: the test splits of the earlier study (SciFact BEIR test, 300 queries; Cranfield even query
ids, 112). Encodings are cached under ``.cache/benchmarks/embeddings`` (``<dataset>-dense-<hash>``:
float16 tokens, float32 dense vectors).

Usage (from the repository root):
    PYTHONPATH=integrations python -m benchmarks.studies.fused_default --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _harness as h
from benchmarks._beir import BeirDataset, load_beir, ndcg_at_k, overlap_at_k, recall_at_k

K, TOP = 10, 100


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def test_split(ds: BeirDataset) -> BeirDataset:
    """The earlier study's test split: all of SciFact's test queries, Cranfield's even ids."""
    if ds.name != "cranfield":
        return ds
    keep = [q for q in ds.queries if int(q) % 2 == 0]
    return BeirDataset(
        ds.name, ds.doc_ids, ds.doc_texts, {q: ds.queries[q] for q in keep},
        {q: ds.qrels[q] for q in keep},
    )  # fmt: skip


def encoded(model: Any, ds: BeirDataset) -> tuple[list[np.ndarray], np.ndarray]:
    """Token matrices (float16 views) and dense vectors of the corpus, cached."""
    digest = hashlib.sha256(json.dumps(model.fingerprint(), sort_keys=True).encode())
    for t in ds.doc_texts:
        digest.update(hashlib.sha1(t.encode()).digest())
    folder = h.EMBEDDINGS / f"{ds.name}-dense-{digest.hexdigest()[:16]}"
    if not (folder / "dense.npy").exists():
        t0 = time.perf_counter()
        mats, dense = model.encode_documents(
            ds.doc_texts, batch_size=32, show_progress_bar=True, return_dense=True
        )
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        h.save_packed(tmp / "packed", mats)
        np.save(tmp / "dense.npy", dense)
        (tmp / "packed").rename(tmp / "tokens")
        tmp.rename(folder)
        log(f"encoded {len(mats)} documents into {folder} in {time.perf_counter() - t0:.0f}s")
    return h.load_packed(folder / "tokens", dtype=np.float16), np.load(folder / "dense.npy")


def evaluate(run: dict[str, list[str]], ds: BeirDataset) -> dict[str, float]:
    return {
        "ndcg@10": ndcg_at_k(run, ds.qrels, K),
        "recall@100": recall_at_k(run, ds.qrels, TOP),
    }


def search_run(index: Any, ds: BeirDataset, *, exact: bool) -> tuple[dict[str, list[str]], float]:
    qids = list(ds.queries)
    t0 = time.perf_counter()
    hits = index.search_batch([ds.queries[q] for q in qids], k=TOP, exact=exact)
    seconds = time.perf_counter() - t0
    return {q: [x.id for x in hs] for q, hs in zip(qids, hits, strict=True)}, seconds


def maxsim_matrix(queries: list[np.ndarray], documents: list[np.ndarray]) -> np.ndarray:
    """Raw MaxSim of every query against every document, ``(n_queries, n_docs)``, numpy float32.

    The brute-force reference (no library scoring code): documents in chunks of ~20k tokens, one
    product with all query rows, a segmented max over each document's rows, a sum per query.
    """
    q_all = np.concatenate([np.asarray(q, np.float32) for q in queries])
    q_starts = np.concatenate([[0], np.cumsum([len(q) for q in queries])[:-1]])
    out = np.empty((len(queries), len(documents)), np.float32)
    start = 0
    while start < len(documents):
        stop, total = start, 0
        while stop < len(documents) and (total == 0 or total + len(documents[stop]) <= 20_000):
            total += len(documents[stop])
            stop += 1
        block = np.concatenate([np.asarray(d, np.float32) for d in documents[start:stop]])
        seg = np.concatenate([[0], np.cumsum([len(d) for d in documents[start:stop]])[:-1]])
        best = np.maximum.reduceat(block @ q_all.T, seg, axis=0)  # (docs, all query rows)
        out[:, start:stop] = np.add.reduceat(best, q_starts, axis=1).T
        start = stop
    return out


def study(
    ds: BeirDataset, work: Path, storage_dtype: str, exact_runs: str, reuse: bool = False
) -> dict[str, Any]:
    from late_interaction import ColBERT, IndexConfig, LateInteractionIndex

    default = ColBERT.from_pretrained(device="cpu")
    mats, doc_dense = encoded(default, ds)
    ds = test_split(ds)
    qids = list(ds.queries)
    _, q_dense = default.encode_queries(
        [ds.queries[q] for q in qids], batch_size=32, return_dense=True
    )
    top = np.argsort(-(q_dense @ doc_dense.T), axis=1, kind="stable")[:, :TOP]
    rows: dict[str, dict[str, float]] = {
        "dense alone (brute-force cosine)": evaluate(
            {q: [ds.doc_ids[j] for j in row] for q, row in zip(qids, top, strict=True)}, ds
        )
    }
    folder = work / ds.name
    build = None
    if not (reuse and (folder / "config.json").exists()):
        t0 = time.perf_counter()
        index = LateInteractionIndex(default, config=IndexConfig(storage_dtype=storage_dtype))
        index.add_embeddings(mats, ds.doc_texts, ds.doc_ids, dense=doc_dense)
        build = time.perf_counter() - t0
        index.save(folder)
        del index
        log(f"{ds.name}: index built in {build:.0f}s and saved")
    runs, seconds = {}, {}
    for label, weight in (("MaxSim (dense_weight=0)", 0.0), ("default (dense_weight=0.25)", 0.25)):
        model = ColBERT.from_pretrained(device="cpu", dense_weight=weight)
        loaded = LateInteractionIndex.load(folder, model)
        assert loaded.dense_weight == weight
        for exact in (False, True):
            if exact and (exact_runs == "brute" or (exact_runs == "fused" and weight == 0)):
                continue
            name = f"{label}, {'exact=True' if exact else 'ANN candidates'}"
            runs[name], seconds[name] = search_run(loaded, ds, exact=exact)
            rows[name] = evaluate(runs[name], ds)
            log(f"{ds.name}: {name}: {rows[name]} ({seconds[name]:.1f}s)")
    if exact_runs == "brute":  # the exact rankings by numpy brute force, not exact=True
        q_mats, q_dense2 = default.encode_queries(
            [ds.queries[q] for q in qids], batch_size=32, return_dense=True
        )
        t0 = time.perf_counter()
        raw = maxsim_matrix(q_mats, mats) / np.array([len(q) for q in q_mats])[:, None]
        fused = (raw + 0.25 * (q_dense2 @ doc_dense.T)) / 1.25
        for name, scores in (
            ("MaxSim (dense_weight=0)", raw),
            ("default (dense_weight=0.25)", fused),
        ):
            order = np.argsort(-scores, axis=1, kind="stable")[:, :TOP]
            run = {q: [ds.doc_ids[j] for j in row] for q, row in zip(qids, order, strict=True)}
            runs[f"{name}, exact=True"] = run  # what exact=True ranks, computed outside the library
            label = f"{name}, exact by numpy brute force"
            rows[label], seconds[label] = evaluate(run, ds), time.perf_counter() - t0
            log(f"{ds.name}: {label}: {rows[label]}")
    exact_fused = runs["default (dense_weight=0.25), exact=True"]
    ann_fused = runs["default (dense_weight=0.25), ANN candidates"]
    exact_max = runs.get("MaxSim (dense_weight=0), exact=True")
    ann_max = runs["MaxSim (dense_weight=0), ANN candidates"]
    return {
        "rows": rows,
        "seconds": seconds,
        "build_s": build,
        "n_queries": len(qids),
        "n_docs": len(ds.doc_ids),
        "overlap_fused": overlap_at_k(
            [ann_fused[q] for q in qids], [exact_fused[q] for q in qids], K
        ),
        "overlap_maxsim": None
        if exact_max is None
        else overlap_at_k([ann_max[q] for q in qids], [exact_max[q] for q in qids], K),
    }


def report(results: dict[str, dict[str, Any]]) -> list[str]:
    names = list(results)
    lines = ["## nDCG@10 (recall@100), test splits", ""]
    head = " | ".join(f"{n} ({results[n]['n_queries']} queries)" for n in names)
    lines += [f"| setting | {head} |", "|---|" + "---|" * len(names)]
    for row in results[names[0]]["rows"]:
        cells = " | ".join(
            "{ndcg@10:.4f} ({recall@100:.4f})".format_map(results[n]["rows"][row]) for n in names
        )
        lines.append(f"| {row} | {cells} |")
    lines += [
        "",
        "## ANN candidates vs exact: overlap@10 with the exact ranking of the same score",
        "",
    ]
    lines += ["| score | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines.append(
        "| fused (0.25) | " + " | ".join(f"{results[n]['overlap_fused']:.4f}" for n in names) + " |"
    )
    maxsim = [results[n]["overlap_maxsim"] for n in names]
    lines.append(
        "| MaxSim | " + " | ".join("-" if v is None else f"{v:.4f}" for v in maxsim) + " |"
    )
    lines += ["", "## Search time for all queries (s; k=100, query encoding included)", ""]
    lines += ["| search | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for row in results[names[0]]["seconds"]:
        lines.append(
            f"| {row} | " + " | ".join(f"{results[n]['seconds'][row]:.1f}" for n in names) + " |"
        )
    lines.append(
        "| index build from cached encodings | "
        + " | ".join(
            "reused" if results[n]["build_s"] is None else f"{results[n]['build_s']:.0f}"
            for n in names
        )
        + " |"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=h.SHARED_DATA)
    parser.add_argument("--datasets", default="scifact,cranfield")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--encode-only", action="store_true", help="fill the cache and stop")
    parser.add_argument("--storage-dtype", default="float16", help="IndexConfig.storage_dtype")
    parser.add_argument(
        "--index-dir", type=Path, default=None,
        help="keep the built indexes here and reuse one found there (default: a temp folder)",
    )  # fmt: skip
    parser.add_argument(
        "--exact-runs", choices=("both", "fused", "brute"), default="both",
        help="exact=True searches: both weights, the fused default only, or none (exact rankings "
        "by numpy brute force over the same encodings instead: much faster than exact=True)",
    )  # fmt: skip
    h.result_options(parser)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    started = dt.datetime.now()
    results = {}
    work = args.index_dir or Path(tempfile.mkdtemp(prefix="fused-default-"))
    try:
        for name in args.datasets.split(","):
            ds = load_beir(args.data_root / name)
            if args.encode_only:
                from late_interaction import ColBERT

                encoded(ColBERT.from_pretrained(device="cpu"), ds)
                continue
            results[name] = study(
                ds, work, args.storage_dtype, args.exact_runs, reuse=args.index_dir is not None
            )
    finally:
        if args.index_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    if results:
        title = "Fused default end to end through LateInteractionIndex"
        h.publish(args, "fused", "+".join(results), started, title, report(results), data=results)


if __name__ == "__main__":
    main()
