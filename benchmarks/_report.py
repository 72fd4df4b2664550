"""Markdown rendering of a benchmark run: the side-by-side table, targets, machine and versions.

Ratios are always ``ours / baseline``; each target is stated in that same direction (e.g. search
latency ratio <= 0.1 means "at least 10x lower than PyLate").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from benchmarks._harness import header_lines

Target = tuple[str, Callable[[float], bool]]


def _get(res: dict, *keys: str) -> float | None:
    cur: Any = res
    for k in keys:
        if not isinstance(cur, dict) or k not in cur:
            return None
        cur = cur[k]
    return float(cur) if isinstance(cur, (int, float)) else None


def fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _mb(v: float | None) -> float | None:
    return None if v is None else v / 1e6


def _row(label: str, ours: float | None, base: float | None, target: Target | None) -> str:
    ratio = ours / base if ours is not None and base not in (None, 0) else None
    tgt, met = "", ""
    if target is not None:
        tgt = target[0]
        met = "–" if ratio is None else ("met" if target[1](ratio) else "**missed**")
    ratio_s = "–" if ratio is None else f"{ratio:.2f}"
    return f"| {label} | {fmt(ours)} | {fmt(base)} | {ratio_s} | {tgt} | {met} |"


def _main_table(res: dict) -> list[str]:
    o, b = res.get("ours", {}), res.get("pylate", {})

    def both(*keys: str, conv: Callable = lambda x: x) -> tuple[float | None, float | None]:
        return conv(_get(o, *keys)), conv(_get(b, *keys))

    ge = lambda x: (f"≥ {x}", lambda r: r >= x)  # noqa: E731
    le = lambda x: (f"≤ {x}", lambda r: r <= x)  # noqa: E731
    bs = _get(o, "encode", "batch_size")
    rows = [
        ("Document encoding, docs/s" + (f" (batch {bs:.0f})" if bs else ""),
         both("encode", "docs_per_s"), ge(1.5)),
        ("Document encoding, tokens/s", both("encode", "tokens_per_s"), None),
        ("Query encoding latency p50, ms (one query)",
         both("encode", "query_latency", "p50_ms"), None),
        ("Index build, s (encoding excluded, incl. save)", both("index", "build_s"), le(0.2)),
        ("Index build, tokens/s", both("index", "tokens_per_s"), None),
        ("Index size on disk, MB", both("index", "disk_bytes", conv=_mb), None),
        ("Index bytes per token on disk", both("index", "bytes_per_token"), le(0.4)),
        ("Search p50, ms (k=10, query encoding excluded)",
         both("search", "latency_k10", "p50_ms"), le(0.1)),
        ("Search p95, ms (k=10)", both("search", "latency_k10", "p95_ms"), None),
        ("Search p50, ms (k=100)", both("search", "latency_k100", "p50_ms"), None),
        ("Search p95, ms (k=100)", both("search", "latency_k100", "p95_ms"), None),
        ("Batch of 100 queries, s (query encoding included)",
         both("search", "batch", "seconds"), None),
        ("  of which encoding the 100 queries, s", both("search", "batch", "encode_seconds"), None),
        ("Peak RSS while indexing, MB (whole process)",
         both("index", "memory", "peak_rss_mb"), None),
        ("Peak RSS while indexing, MB above phase start",
         both("index", "memory", "peak_increment_mb"), None),
        ("Peak RSS while retrieving, MB (whole process, model loaded)",
         both("search", "memory", "peak_rss_mb"), None),
        ("Peak RSS while retrieving, MB above the loaded model (index load + single queries)",
         both("search", "memory", "peak_increment_mb"), le(0.25)),
        ("Peak RSS, 100-query batch, MB above the loaded model",
         both("search", "memory_batch", "peak_increment_mb"), None),
        ("nDCG@10 (qrels)", both("quality", "ndcg@10"), None),
        ("Recall@100 (qrels)", both("quality", "recall@100"), None),
        ("Recall@10 of the ANN path vs exact MaxSim", both("quality", "ann_recall@10_vs_exact"),
         None),
        ("nDCG@10 of exact brute-force MaxSim", both("quality", "exact_ndcg@10"), None),
    ]  # fmt: skip
    out = [
        "| Metric | ours | PyLate | ratio ours/PyLate | target (ratio) | |",
        "|---|---:|---:|---:|---|---|",
    ]
    out += [_row(label, *vals, tgt) for label, vals, tgt in rows]
    out += _variant_rows(res)
    mr = _get(o, "encode", "median_round_ratio")
    if mr is not None:
        out.append(
            f"\nEncoding was A/B-interleaved over {_get(o, 'encode', 'rounds'):.0f} rounds "
            f"(warm models, same documents); median per-round docs/s ratio {mr:.2f}."
        )
    ann = _get(o, "quality", "ann_recall@10_vs_exact")
    if ann is not None:
        out.append(
            f"\nOur ANN recall@10 vs exact: {ann:.3f} (target ≥ 0.98: "
            f"{'met' if ann >= 0.98 else '**missed**'})."
        )
    return out


_VARIANT_LABELS = {
    "ours": "torch, float32 (default)",
    "ours-auto": "torch, `dtype='auto'`",
    "ours-onnx": "`backend='onnx'` (onnxruntime, float32)",
    "ours-openvino": "`backend='openvino'` (float32)",
    "ours-openvino-auto": "`backend='openvino', dtype='auto'`",
    "ours-onnx-int8": "`backend='onnx', quantize='int8'`",
    "ours-openvino-int8": "`backend='openvino', quantize='int8'`",
}


def _variant_rows(res: dict) -> list[str]:
    """The CPU encoding variants (dtype, backend, int8) side by side with PyLate, same run."""
    base = _get(res.get("pylate", {}), "encode", "docs_per_s")
    present = [s for s in _VARIANT_LABELS if s != "ours" and res.get(s, {}).get("encode")]
    if not present or not base:
        return []
    out = [
        "\n### Encoder variants (document encoding, same run, A/B-interleaved with PyLate)\n",
        "| ours, encoder | docs/s | PyLate docs/s | ratio | median per-round ratio | "
        "token cosine vs float32 torch: min / 0.1% / mean | target | |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    loads: list[float] = []
    for side in ["ours", *present]:
        enc = res.get(side, {}).get("encode") or {}
        if not enc:
            continue
        loads = enc.get("load_avg_1min_rounds") or loads
        cos = enc.get("token_cosine_vs_float32") or {}
        cos_s = "1 (reference)" if side == "ours" else (
            f"{cos.get('min', math.nan):.5f} / {cos.get('p001', math.nan):.5f} / "
            f"{cos.get('mean', math.nan):.5f} ({cos.get('tokens', 0)} tokens)"
        )  # fmt: skip
        int8 = side.endswith("int8")
        goal = 2.5 if int8 else 1.5
        ratio = enc["docs_per_s"] / base
        met = ratio >= goal and (int8 or side == "ours" or cos.get("min", 0) >= 0.999)
        label = _VARIANT_LABELS[side] + (f" ({enc['dtype']})" if side.endswith("auto") else "")
        tgt = f"≥ {goal}" + (" (nDCG: studies/backends.py)" if int8 else ", cosine ≥ 0.999")
        verdict = "met" if met else "**missed**"
        if side == "ours":
            tgt, verdict = "", ""
        out.append(
            f"| {label} | {fmt(enc['docs_per_s'])} | {fmt(base)} | {ratio:.2f} | "
            f"{enc.get('median_round_ratio', math.nan):.2f} | {cos_s} | {tgt} | {verdict} |"
        )
    if loads:
        out.append(
            f"\n1-minute load average after each round: {', '.join(f'{x:.1f}' for x in loads)} "
            "(2 cores, shared)."
        )
    return out


def _rerank_table(summary: dict, res: dict) -> list[str]:
    rows = []
    if "bm25_ndcg@10" in summary:
        rows.append(
            ("BM25 top-100 order (bm25s), no rerank", None, None, summary["bm25_ndcg@10"], None)
        )
    for label, side, key in [
        ("ours: `ColBERT.rerank`", "ours", "rerank_quality"),
        (
            "ours, `dtype='auto'` (bfloat16 autocast): `ColBERT.rerank`",
            "ours-auto",
            "rerank_quality",
        ),
        ("PyLate: encode + `rank.rerank`", "pylate", "rerank_quality"),
        ("LlamaIndex: `ColbertRerank` (raw 384-d hidden states)", "pylate", "rerank_li_quality"),
        ("ours, embedded default model: `ColBERT.rerank`", "ours-default", "rerank_quality"),
    ]:
        q = res.get(side, {}).get(key)
        if q:
            rows.append((label, q["p50_ms"], q["p95_ms"], q["ndcg@10"], q["queries"]))
    if len(rows) <= 1:
        return []
    out = [
        "| Rerank 100 BM25 candidates per query | p50 ms | p95 ms | nDCG@10 | queries |",
        "|---|---:|---:|---:|---:|",
    ]
    out += [f"| {r[0]} | {fmt(r[1])} | {fmt(r[2])} | {fmt(r[3])} | {r[4] or ''} |" for r in rows]
    ours = res.get("ours", {}).get("rerank_quality")
    others = [res.get("pylate", {}).get(k) for k in ("rerank_quality", "rerank_li_quality")]
    others = [x for x in others if x]
    if ours and others:
        fast = all(ours["p50_ms"] < x["p50_ms"] for x in others)
        good = all(ours["ndcg@10"] >= x["ndcg@10"] - 1e-9 for x in others)
        out.append(
            f"\nTarget, rerank faster than both baselines: {'met' if fast else '**missed**'}; "
            f"nDCG@10 ≥ theirs: {'met' if good else '**missed**'}."
        )
    return out


def _quality_table(res: dict) -> list[str]:
    out = [
        "| Model (our index) | nDCG@10 | Recall@100 | ANN recall@10 vs exact | exact nDCG@10 |",
        "|---|---:|---:|---:|---:|",
    ]
    n = 0
    for side, label in [
        ("ours", "shared MiniLM-128 PyLate checkpoint"),
        ("ours-default", "embedded default `ColBERT.from_pretrained()`"),
    ]:
        q = res.get(side, {}).get("quality")
        if q:
            n += 1
            out.append(
                f"| {label} | {fmt(q['ndcg@10'])} | {fmt(q['recall@100'])} | "
                f"{fmt(q['ann_recall@10_vs_exact'])} | {fmt(q['exact_ndcg@10'])} |"
            )
    return out if n else []


def render_report(summary: dict, res: dict, meta: dict) -> str:
    """The whole markdown report for one run."""
    title = (
        f"late-interaction vs PyLate — {summary['dataset']} ({summary['docs']} docs, "
        f"{summary['queries']} queries)"
    )
    lines = header_lines(title, meta)
    if meta.get("reused"):
        lines.append(
            "- Phases reused from earlier runs in the same work folder (finished at): "
            + ", ".join(meta["reused"])
        )
    for side in ("ours", "pylate"):
        for phase in res.get(side, {}).values():
            if isinstance(phase, dict) and "versions" in phase:
                v = ", ".join(f"{k} {x}" for k, x in phase["versions"].items())
                lines.append(f"- Versions ({side}): {v}")
                break
    o_idx = res.get("ours", {}).get("index", {}).get("settings")
    b_idx = res.get("pylate", {}).get("index", {}).get("settings")
    if o_idx:
        lines.append(f"- Our index settings: {o_idx}")
    if b_idx:
        lines.append(f"- PyLate Voyager settings: {b_idx}, retrieve k_token=100")
    thr = res.get("ours", {}).get("encode", {}).get("torch_threads")
    dev = res.get("ours", {}).get("encode", {}).get("device")
    if thr:
        lines.append(f"- Encoding device {dev}, torch threads {thr}")
    lines += [
        "- Each phase ran in its own fresh process. Checkpoint: PyLate-built MiniLM + seeded "
        f"384→128 Dense (`{meta.get('checkpoint', '?')}`), loaded by both sides.",
        "",
        "## Side by side",
        "",
        *_main_table(res),
        "",
    ]
    rr = _rerank_table(summary, res)
    if rr:
        lines += ["## Rerank", "", *rr, ""]
    qt = _quality_table(res)
    if qt:
        lines += ["## Quality of our index by model", "", *qt, ""]
    return "\n".join(lines) + "\n"
