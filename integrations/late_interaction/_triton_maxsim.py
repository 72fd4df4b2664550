"""A Triton kernel for MaxSim of a *batch* of queries against padded documents, on CUDA.

Why our own kernel: a plain matmul-then-max writes a (documents x doc tokens x query tokens)
block to memory and reads it back, 2-5x the floor. The kernel libraries on PyPI did not fit:
``late-interaction-kernels`` 0.4.5 (Apache-2.0) runs one program per (query, document) pair, so
a batch of 32 queries reads every document 32 times (7.5 ms/query at 1M x 100 x 128 on an H200,
worse than the matmul), and it hit an illegal memory access at that size in a repeated-call
check. Here one program loads one document once and scores every query of the batch against it
in tiles of query tokens, keeping the similarities in registers: the documents are read once per
batch, with 64-bit offsets, and nothing but the scores is written (H200 figures:
``benchmarks/results/gpu-search-h200-*.md``).

Inputs follow ``_torch_maxsim.padded_maxsim``'s mask-free convention: document padding repeats
a real token, query padding is zero rows. Imported only where CUDA and Triton are present.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["batched_maxsim"]


@triton.jit
def _batched_maxsim_kernel(
    docs_ptr,
    queries_ptr,
    out_ptr,
    lengths_ptr,
    n_docs,
    n_doc_tokens,
    dim,
    stride_dn,
    stride_dl,
    n_query_blocks,
    BLOCK_L: tl.constexpr,
    DOCS: tl.constexpr,
    DIM_PAD: tl.constexpr,
    QUERY_TOKENS: tl.constexpr,
    QUERIES_PER_BLOCK: tl.constexpr,
    QUERY_ROWS: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,
):
    # One program: DOCS documents, loaded once, against every query tile of the batch (each
    # tile read once per program, so more documents per program means fewer query reads).
    first_doc = tl.program_id(0).to(tl.int64) * DOCS
    rows = tl.arange(0, DOCS * BLOCK_L)
    doc_of_row = first_doc + rows // BLOCK_L
    token_of_row = rows % BLOCK_L
    row_ok = (token_of_row < n_doc_tokens) & (doc_of_row < n_docs)
    if HAS_LENGTHS:  # zero-padded documents: rows past a document's length are neither read
        # nor counted (what the public ``maxsim`` passes for a prefix mask)
        doc_len = tl.load(lengths_ptr + doc_of_row, mask=doc_of_row < n_docs, other=0)
        row_ok = row_ok & (token_of_row < doc_len)
    cols = tl.arange(0, DIM_PAD)
    col_ok = cols < dim
    d = tl.load(
        docs_ptr
        + doc_of_row[:, None] * stride_dn
        + token_of_row[:, None] * stride_dl
        + cols[None, :],
        mask=row_ok[:, None] & col_ok[None, :],
        other=0.0,
    )
    tokens = tl.arange(0, QUERIES_PER_BLOCK * QUERY_TOKENS)
    n_queries_padded = n_query_blocks * QUERIES_PER_BLOCK
    docs_here = first_doc + tl.arange(0, DOCS)
    d_t = tl.trans(d)
    for block in range(0, n_query_blocks):
        first_token = block * QUERIES_PER_BLOCK * QUERY_TOKENS
        q = tl.load(queries_ptr + (first_token + tokens)[:, None] * DIM_PAD + cols[None, :])
        if QUERY_ROWS:
            # (tokens, document rows): the max runs along each accumulator row, inside a warp,
            # not across warps through shared memory (2.53 -> 2.01 ms/query on an H200).
            sims_t = tl.dot(q, d_t)
            sims_t = tl.where(row_ok[None, :], sims_t, float("-inf"))
            best = tl.max(
                tl.reshape(sims_t, (QUERIES_PER_BLOCK * QUERY_TOKENS, DOCS, BLOCK_L)), axis=2
            )
            best = tl.trans(best)  # (DOCS, tokens)
        else:
            sims = tl.dot(d, tl.trans(q))  # (DOCS * BLOCK_L, tokens), float32 accumulate
            sims = tl.where(row_ok[:, None], sims, float("-inf"))
            best = tl.max(
                tl.reshape(sims, (DOCS, BLOCK_L, QUERIES_PER_BLOCK * QUERY_TOKENS)), axis=1
            )
        per_query = tl.sum(tl.reshape(best, (DOCS, QUERIES_PER_BLOCK, QUERY_TOKENS)), axis=2)
        query_ids = block * QUERIES_PER_BLOCK + tl.arange(0, QUERIES_PER_BLOCK)
        tl.store(
            out_ptr + docs_here[:, None] * n_queries_padded + query_ids[None, :],
            per_query,
            mask=(docs_here < n_docs)[:, None],
        )


def _pow2(n: int, floor: int = 16) -> int:
    return max(floor, 1 << (max(n, 1) - 1).bit_length())


# Shared memory a program may ask for (an H100/H200 SM has 228 KB): the document tile plus two
# buffered query tiles, in 16-bit values.
_SMEM_BUDGET = 160 * 1024


def _queries_per_block(block_l: int, dim_pad: int, query_tokens: int, n_queries: int) -> int | None:
    """Whole queries per tile (up to 64 tokens, no more queries than there are), or None."""
    per_block = min(max(1, 64 // query_tokens), 1 << (n_queries - 1).bit_length())
    while per_block >= 1:
        tokens = max(per_block * query_tokens, 16)
        if 2 * dim_pad * (block_l + 2 * tokens) <= _SMEM_BUDGET:
            return max(per_block, 16 // query_tokens)
        per_block //= 2
    return None


def batched_maxsim(
    queries: torch.Tensor, documents: torch.Tensor, lengths: torch.Tensor | None = None
) -> torch.Tensor | None:
    """MaxSim of each query against each padded document.

    Args:
        queries: ``(n_queries, n_query_tokens, dim)`` on the documents' device (any float).
        documents: ``(n_docs, n_doc_tokens, dim)`` float16 or bfloat16, last dim contiguous.
            Without ``lengths``, padding repeats a real token (mask-free input).
        lengths: Optional ``(n_docs,)`` count of each document's real leading rows (>= 1); the
            rows after them are ignored.

    Returns:
        float32 scores ``(n_queries, n_docs)``, or None when a document and a query tile do not
        fit in shared memory (long documents at a large dim): the caller uses the matmul path.
    """
    n_docs, n_doc_tokens, dim = documents.shape
    n_q, n_q_tokens, _ = queries.shape
    query_tokens, dim_pad, block_l = _pow2(n_q_tokens, 1), _pow2(dim), _pow2(n_doc_tokens)
    per_block = _queries_per_block(block_l, dim_pad, query_tokens, n_q)
    if per_block is None:
        return None
    n_blocks = -(-n_q // per_block)
    padded = torch.zeros(
        n_blocks * per_block, query_tokens, dim_pad, dtype=documents.dtype, device=documents.device
    )
    padded[:n_q, :n_q_tokens, :dim] = queries
    if documents.stride(2) != 1:
        documents = documents.contiguous()
    out = torch.empty(n_docs, n_blocks * per_block, dtype=torch.float32, device=documents.device)
    # Query tokens as the tile's rows need a tile of >= 64 of them (the tensor-core shape).
    query_rows = per_block * query_tokens >= 64
    # Documents per program: each program reads the whole query batch (from L2), so two
    # documents of 100 rows per program halve that traffic. Only where measured (dim <= 128),
    # and tiles stay at <= 256 document rows: a 512-row tile (4 x 128) gave wrong scores with
    # Triton 3.6 on an H200, and 4 x 32 rows at dim 384 failed the kernel test.
    docs_per_program = min(4, max(1, 256 // block_l)) if query_rows and dim_pad <= 128 else 1
    _batched_maxsim_kernel[(-(-n_docs // docs_per_program),)](
        documents,
        padded,
        out,
        out if lengths is None else lengths.to(device=documents.device, dtype=torch.int32),
        n_docs,
        n_doc_tokens,
        dim,
        documents.stride(0),
        documents.stride(1),
        n_blocks,
        BLOCK_L=block_l,
        DOCS=docs_per_program,
        DIM_PAD=dim_pad,
        QUERY_TOKENS=query_tokens,
        QUERIES_PER_BLOCK=per_block,
        QUERY_ROWS=query_rows,
        HAS_LENGTHS=lengths is not None,
        # Measured on an H200 at 1M x 100 x 128, 32 queries of 32 tokens in 64-token tiles
        # (benchmarks/results/gpu-search-h200-*.md and the sweeps behind it), ms/query:
        # 1 document per program, 4 warps, 2 stages 2.06; 2 documents, 8 warps, 2 stages 1.90,
        # 3 stages 1.84; 16 warps 3.06. At 48 rows, 4 documents and 8 warps: 0.95 (1 doc 1.24).
        # One query (document rows as the tile's rows): 7.5 ms, the 32.8 GB read at 4.4 TB/s.
        num_warps=8 if docs_per_program * block_l >= 256 else 4,
        num_stages=3 if query_rows and block_l == 128 else 2,
    )
    return out[:, :n_q].T
