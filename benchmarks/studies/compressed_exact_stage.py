"""The last stage of a compressed search (decode + exact MaxSim of the best documents), in variants.

On a saved compressed index, each query's documents for that stage are found once with the
library's default budgets (``centroid_candidates``); then, per query and interleaved, every variant
scores the same documents, timed by process CPU time (run with one BLAS thread). Variants:

* ``decoded``: the library's path (``score_slots`` on the store's decoded rows), run first and
  again last;
* ``stored norm f32`` / ``f16``: the norm ``|c + r|`` of each token read from a per-token array
  (computed for the whole index before timing: what a norm stored at build would give), so the
  centroid part of a dot product is the probe's ``S[q, code]`` and only the residual is decoded:
  ``(S[q, code] + q . r) / norm``;
* ``no renorm``: ``S[q, code] + q . r`` (WARP scores un-normalised reconstructions);
* ``..., embedding_bag``: the same sums without decoding, as WARP does: per query, a table of
  ``S[q, code]`` rows and, per packed byte position and byte value, the residual's dot product
  with the query; torch's ``embedding_bag`` sums a token's 1 + ``packed_width`` rows, and its
  ``max`` mode is the segmented max;
* ``numba lookup tables``: the ``embedding_bag`` sums in one compiled loop per token (numba,
  when it can be imported: not a dependency of the package; e.g. ``pip install --target
  /tmp/numba-site numba`` and put that folder on ``PYTHONPATH``), with the norm ``|c + r|``
  computed in the same loop from ``|c|^2 + 2 c . r + |r|^2`` (so no stored norm), and the
  segmented max and sum over the query tokens in the loop too: what a compiled kernel would
  give the library's exact scores;
* ``margin <m>``: only tokens whose centroid score is within ``m`` of their document's best
  centroid score for some query token are decoded (the others cannot be the max unless their
  residual moves them by more than ``m``).

For each: CPU ms per query, the largest score difference from ``decoded``, the share of queries
whose top 10 is identical to ``decoded``'s, the share of tokens decoded, and recall@10 against
exact brute force (``--exact``, passage ids from ``compressed_scale``) and against brute force over
the decoded vectors (``decoded-top10-<index>.json`` beside the index, from ``compressed_sweep``).

Usage (from the repository root; writes ``results/compressed-<index>-<stamp>-exactstage.md``):
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 PYTHONPATH=integrations \\
        python -m benchmarks.studies.compressed_exact_stage \\
        --index .cache/benchmarks/compressed-scale/d128-w100/index-n100000 \\
        --queries .cache/benchmarks/compressed-scale/d128-w100/queries \\
        --exact .cache/benchmarks/compressed-scale/d128-w100/exact-n100000-t2.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Callable

import numpy as np

from benchmarks import _harness as h
from benchmarks.studies._compressed_data import load_saved_index, saved_index_options

Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, float]]


def token_rows(offsets: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Store rows of ``docs`` one after another, and each document's start among them."""
    starts, lengths = offsets[docs], offsets[docs + 1] - offsets[docs]
    local = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=local[1:])
    return np.repeat(starts - local[:-1], lengths) + np.arange(local[-1]), local


def all_norms(codec, codes, residuals, chunk: int = 1 << 18) -> np.ndarray:
    """``|centroid + residual|`` of every token of the store (float32)."""
    out = np.empty(len(codes), dtype=np.float32)
    for a in range(0, len(codes), chunk):
        _, norms = codec._decode_unnormalised(np.asarray(codes[a : a + chunk]),
                                              np.asarray(residuals[a : a + chunk]))  # fmt: skip
        out[a : a + chunk] = norms
    return out


def variants(snap, norms32: np.ndarray, margins: list[float]) -> dict[str, Scorer]:
    from late_interaction._index.torch_blas import matmul_nt
    from late_interaction.scoring import score_slots

    codec, store, offsets = snap.codec, snap.tokens, snap.offsets
    norms16 = norms32.astype(np.float16)

    def decoded(q, by_query, docs):
        return score_slots(q, store, offsets, docs), 1.0

    def residual_part(q, rows):
        codes, packed = store.codes[rows], store.residuals[rows]
        r = np.take(codec._lut, packed, axis=0).reshape(len(rows), -1)[:, : codec.dim]
        return codes, matmul_nt(q, np.ascontiguousarray(r))

    def stored(norms):
        def score(q, by_query, docs):
            rows, local = token_rows(offsets, docs)
            codes, sims = residual_part(q, rows)
            sims += np.take(by_query, codes, axis=1)
            sims /= norms[rows].astype(np.float32)
            return np.maximum.reduceat(sims, local[:-1], axis=1).sum(axis=0), 1.0

        return score

    def lookup_tables(q, by_query):
        # One table for torch's embedding_bag: the probe's centroid scores, then per packed byte
        # position j and byte value the residual's dot product with q's dimensions in that byte.
        per_byte = 8 // codec.nbits
        width = codec.packed_width
        qpad = np.zeros((q.shape[0], width * per_byte), dtype=np.float32)
        qpad[:, : codec.dim] = q
        tables = np.einsum("bk,njk->jbn", codec._lut, qpad.reshape(q.shape[0], width, per_byte))
        return np.concatenate([by_query.T, tables.reshape(width * 256, q.shape[0])])

    def bagged(norms):
        import torch
        import torch.nn.functional as F

        def score(q, by_query, docs):
            rows, local = token_rows(offsets, docs)
            table = torch.from_numpy(lookup_tables(q, by_query))
            packed = torch.from_numpy(np.asarray(store.residuals[rows]))
            index = torch.empty((len(rows), packed.shape[1] + 1), dtype=torch.int64)
            index[:, 0] = torch.from_numpy(np.asarray(store.codes[rows]).astype(np.int64))
            base = codec.n_centroids + 256 * torch.arange(packed.shape[1])
            torch.add(packed, base, out=index[:, 1:])
            sims = F.embedding_bag(index, table, mode="sum")  # q . (c + r), (n, n_query)
            if norms is not None:
                sims /= torch.from_numpy(norms[rows].astype(np.float32))[:, None]
            best = F.embedding_bag(torch.arange(len(rows)), sims, torch.from_numpy(local[:-1]),
                                   mode="max")  # fmt: skip
            return best.sum(dim=1).numpy(), 1.0

        return score

    def no_renorm(q, by_query, docs):
        rows, local = token_rows(offsets, docs)
        codes, sims = residual_part(q, rows)
        sims += np.take(by_query, codes, axis=1)
        return np.maximum.reduceat(sims, local[:-1], axis=1).sum(axis=0), 1.0

    def margin(m):
        def score(q, by_query, docs):
            rows, local = token_rows(offsets, docs)
            approx = np.take(by_query, store.codes[rows], axis=1)
            best = np.maximum.reduceat(approx, local[:-1], axis=1)
            doc_of = np.repeat(np.arange(len(docs)), np.diff(local))
            keep = (approx >= best[:, doc_of] - m).any(axis=0)
            kept = np.zeros(len(local), dtype=np.int64)
            np.cumsum(np.add.reduceat(keep, local[:-1]), out=kept[1:])  # every doc keeps >= 1
            sims = store.query_similarities(q, rows[keep])
            return np.maximum.reduceat(sims, kept[:-1], axis=1).sum(axis=0), float(keep.mean())

        return score

    numba_scorer = compiled(codec, store, offsets)
    out: dict[str, Scorer] = {
        "decoded": decoded,
        "stored norm f32": stored(norms32),
        "stored norm f16": stored(norms16),
        "no renorm": no_renorm,
        "stored norm f16, embedding_bag": bagged(norms16),
        "no renorm, embedding_bag": bagged(None),
    }
    if numba_scorer is not None:
        out["numba lookup tables"] = numba_scorer
    out.update({f"margin {m:g}": margin(m) for m in margins})
    out["decoded, again"] = decoded  # the order's effect on the first variant's time
    return out


def compiled(codec, store, offsets) -> Scorer | None:
    """The ``numba lookup tables`` variant, or None where numba cannot be imported."""
    try:
        import numba
    except ImportError:
        return None
    per_byte = 8 // codec.nbits
    if codec.dim % per_byte:
        return None
    width = codec.packed_width
    lut = np.ascontiguousarray(codec._lut, dtype=np.float32)  # (256, per_byte) residual values
    squares = (lut**2).sum(axis=1).astype(np.float32)  # |r|^2 of one packed byte
    centroids = np.ascontiguousarray(codec.centroids, dtype=np.float32)
    centroid_sq = (centroids**2).sum(axis=1).astype(np.float32)
    codes_all, packed_all = np.asarray(store.codes), np.asarray(store.residuals)

    @numba.njit(fastmath=True, nogil=True)
    def kernel(codes, packed, rows, local, by_code, tables, lut, squares, centroids, centroid_sq):
        n_q, per_byte, width = by_code.shape[1], lut.shape[1], packed.shape[1]
        longest = 0
        for d in range(len(local) - 1):
            longest = max(longest, local[d + 1] - local[d])
        out = np.empty(len(local) - 1, dtype=np.float32)
        acc = np.empty((longest, n_q), dtype=np.float32)
        inv = np.empty(longest, dtype=np.float32)
        best = np.empty(n_q, dtype=np.float32)
        # One document at a time, byte position outermost: that position's table (256 x n_q,
        # 32 KB) stays in L1 while every token of the document adds its row (token-outer loops
        # read the whole 1 MB table at random; this order measured no faster).
        for d in range(len(local) - 1):
            first, n = local[d], local[d + 1] - local[d]
            for i in range(n):
                row = rows[first + i]
                c = codes[row]
                for q in range(n_q):
                    acc[i, q] = by_code[c, q]
                dot_cr = np.float32(0.0)
                norm_r = np.float32(0.0)
                for p in range(width):
                    b = packed[row, p]
                    for j in range(per_byte):
                        dot_cr += centroids[c, p * per_byte + j] * lut[b, j]
                    norm_r += squares[b]
                inv[i] = np.float32(1.0) / np.sqrt(centroid_sq[c] + 2 * dot_cr + norm_r)
            for p in range(width):
                for i in range(n):
                    b = packed[rows[first + i], p]
                    for q in range(n_q):
                        acc[i, q] += tables[p, b, q]
            for q in range(n_q):
                best[q] = -np.inf
            for i in range(n):
                for q in range(n_q):
                    v = acc[i, q] * inv[i]
                    if v > best[q]:
                        best[q] = v
            out[d] = best.sum()
        return out

    def score(q, by_query, docs):
        rows, local = token_rows(offsets, docs)
        # Per packed byte position and byte value: the residual's dot product with each query
        # token (one BLAS product, then laid out position-major for the loop).
        q4 = q.reshape(q.shape[0], width, per_byte).transpose(2, 1, 0).reshape(per_byte, -1)
        tables = np.ascontiguousarray((lut @ q4).reshape(256, width, q.shape[0]).transpose(1, 0, 2))
        by_code = np.ascontiguousarray(by_query.T)
        return kernel(codes_all, packed_all, rows, local, by_code, tables, lut, squares,
                      centroids, centroid_sq), 1.0  # fmt: skip

    return score


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    saved_index_options(p, exact=True)
    p.add_argument("--margins", default="0.1,0.15,0.2")
    h.result_options(p)
    args = p.parse_args()
    started = dt.datetime.now()
    from late_interaction._index import centroid_candidates as cc
    from late_interaction._index.snapshot import View

    index, queries = load_saved_index(args)
    snap = index._state.snap
    ids = snap.docs.ids
    exact = json.loads(args.exact.read_text())["exact"]
    decoded_file = args.index.parent / f"decoded-top10-{args.index.name}.json"
    decoded_top = json.loads(decoded_file.read_text())["decoded"]
    n_probe, n_full = cc.default_budgets(None, None, len(index), 10)
    candidates = cc.centroid_candidates(View(snap, None), queries, n_probe, n_full)
    norms = all_norms(snap.codec, snap.tokens.codes, snap.tokens.residuals)
    scorers = variants(snap, norms, [float(m) for m in args.margins.split(",")])
    stats = {name: {"cpu": 0.0, "diff": 0.0, "same": 0, "share": 0.0, "exact": 0.0, "dec": 0.0}
             for name in scorers}  # fmt: skip
    warm = cc._query_centroid_scores(queries[0], snap.codec.centroids)
    for scorer in scorers.values():  # untimed: imports, and the numba variant's compilation
        scorer(queries[0], warm, candidates[0])
    for i, (q, docs) in enumerate(zip(queries, candidates, strict=True)):
        by_query = cc._query_centroid_scores(q, snap.codec.centroids)
        reference = None
        for name, scorer in scorers.items():
            t = time.process_time()
            scores, share = scorer(q, by_query, docs)
            s = stats[name]
            s["cpu"] += time.process_time() - t
            top = docs[np.lexsort((docs, -scores))[:10]]
            reference = top if reference is None else reference
            if name == "decoded":
                ref_scores = scores
            s["diff"] = max(s["diff"], float(np.abs(scores - ref_scores).max()))
            s["same"] += set(top.tolist()) == set(reference.tolist())
            s["share"] += share
            found = {int(ids[x]) for x in top.tolist()}
            s["exact"] += len(found & set(exact[i])) / 10
            s["dec"] += len(found & set(decoded_top[i])) / 10
    n = len(queries)
    rows = [
        f"| {name} | {s['cpu'] / n * 1000:.2f} | {s['diff']:.1e} | {s['same'] / n:.2f} "
        f"| {s['share'] / n:.2f} | {s['exact'] / n:.3f} | {s['dec'] / n:.3f} |"
        for name, s in stats.items()
    ]
    body = [
        f"Index `{h.repo_relative(args.index)}` ({len(index):,} documents, "
        f"{snap.codec.n_centroids:,} centroids, nbits={snap.codec.nbits}); {n} queries; default "
        f"budgets n_probe={n_probe}, n_full_scores={n_full}: every variant scores the same "
        f"{np.mean([len(c) for c in candidates]):.0f} documents per query "
        f"({np.mean([int((snap.offsets[c + 1] - snap.offsets[c]).sum()) for c in candidates]):,.0f}"
        " tokens). CPU time of the stage alone, variants interleaved per query.",
        "",
        "| variant | CPU ms per query | max score diff | same top 10 | tokens decoded "
        "| R@10 vs exact | R@10 vs decoded |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    h.publish(args, "compressed", args.index.name, started, "Compressed exact stage, variants",
              body, "exactstage")  # fmt: skip


if __name__ == "__main__":
    main()
