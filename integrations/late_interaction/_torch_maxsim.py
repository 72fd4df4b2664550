"""MaxSim with torch: on the query's device, batched over queries, with a Triton kernel on CUDA.

Two entry points:

* :func:`maxsim_torch`: what public :func:`late_interaction.maxsim` runs for torch input (ragged
  or padded+mask documents, one query or a batch of them).
* :func:`padded_maxsim`: the mask-free kernel the device-resident index runs. Its documents are
  padded by *repeating a real token of the same document* and its queries by *zero rows*; a
  repeated token cannot change a max, and a zero query row adds exactly 0 to the sum, so no mask is
  built, moved or applied on any call.

On CUDA with half-precision documents, :func:`padded_maxsim` runs our Triton kernel
(``_triton_maxsim.py``; Triton ships with CUDA builds of torch): it reads the documents once for
a whole batch of queries and never writes the ``(docs, doc tokens, query tokens)`` similarity
block to memory, which bounds a plain matmul-then-max at 2-5x the floor. Without Triton (CPU
torch builds), or where its tile does not fit, the same result comes from chunked matmuls.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)

__all__ = ["maxsim_torch", "padded_maxsim"]

_HALF = (torch.float16, torch.bfloat16)
# Bytes of the similarity block one chunk may hold: large enough for full-speed matmuls, small
# enough to sit beside a big resident index.
_BLOCK_BYTES = {"cuda": 1 << 30, "cpu": 1 << 27}
_batched: Any = None
_batched_checked = False


def _batched_kernel() -> Any:
    """Our Triton batch kernel (``_triton_maxsim``), or None without Triton."""
    global _batched, _batched_checked
    if not _batched_checked:
        _batched_checked = True
        try:
            _batched = importlib.import_module("late_interaction._triton_maxsim").batched_maxsim
        except Exception as exc:  # no Triton (CPU torch wheels): use the matmul path
            logger.debug("Triton batch kernel not used: %s", exc)
            _batched = None
    return _batched


def _compute_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    # Performance note: on an accelerator, half-precision documents are multiplied as they are
    # (tensor cores accumulate in float32) instead of being widened, which would read and write
    # them twice more; on CPU, half-precision matmuls are slow, so everything is widened.
    return dtype if device.type != "cpu" and dtype in _HALF else torch.float32


def padded_maxsim(queries: torch.Tensor, documents: torch.Tensor) -> torch.Tensor:
    """MaxSim of each query against each padded document, without masks.

    Args:
        queries: ``(n_queries, n_query_tokens, dim)``; shorter queries padded with zero rows.
        documents: ``(n_docs, n_doc_tokens, dim)`` on the same device; shorter documents padded
            with copies of one of their own tokens.

    Returns:
        float32 scores. Shape: ``(n_queries, n_docs)``.
    """
    device = documents.device
    if documents.shape[0] == 0:
        return torch.zeros(queries.shape[0], 0, dtype=torch.float32, device=device)
    dtype = _compute_dtype(device, documents.dtype)
    queries = queries.to(device=device, dtype=dtype)
    batched = _batched_kernel() if device.type == "cuda" and dtype in _HALF else None
    scores = batched(queries, documents) if batched is not None else None
    if scores is not None:
        return scores
    n_q, l_q, _ = queries.shape
    flat_t = queries.reshape(n_q * l_q, -1).T
    per_doc = documents.shape[1] * n_q * l_q * torch.finfo(dtype).bits // 8
    chunk = max(1, _BLOCK_BYTES.get(device.type, _BLOCK_BYTES["cuda"]) // max(per_doc, 1))
    out = torch.empty(n_q, documents.shape[0], dtype=torch.float32, device=device)
    for start in range(0, documents.shape[0], chunk):
        block = documents[start : start + chunk].to(dtype) @ flat_t  # (c, L, n_q * l_q)
        best = block.amax(dim=1).float().reshape(-1, n_q, l_q)
        out[:, start : start + chunk] = best.sum(dim=2).T
    return out


def _pad_ragged(documents: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    docs = [torch.as_tensor(d, device=device) for d in documents]
    padded = torch.nn.utils.rnn.pad_sequence(docs, batch_first=True)
    lengths = torch.tensor([d.shape[0] for d in docs], device=device)
    return padded, torch.arange(padded.shape[1], device=device)[None, :] < lengths[:, None]


def maxsim_torch(query: torch.Tensor, documents: Any, mask: Any) -> torch.Tensor:
    """Public ``maxsim`` for a torch query: ``(n_docs,)`` for a 2-D query, else ``(n_q, n_docs)``.

    Args:
        query: ``(n_query_tokens, dim)`` or ``(n_queries, n_query_tokens, dim)`` (zero rows pad
            shorter queries: they add nothing).
        documents: Ragged token matrices or a padded ``(n_docs, max_tokens, dim)`` tensor.
        mask: For padded documents, ``(n_docs, max_tokens)`` true for real tokens (None: all).

    Returns:
        float32 scores on the query's device.

    Raises:
        ValueError: On mismatched shapes, an empty query or a document without tokens.
    """
    if query.ndim not in (2, 3) or query.shape[-2] == 0:
        msg = (
            "query must have shape (n_query_tokens, dim) or (n_queries, n_query_tokens, dim) "
            f"with at least one token; got {tuple(query.shape)}."
        )
        raise ValueError(msg)
    device = query.device
    if isinstance(documents, torch.Tensor) and documents.ndim == 3:
        padded = documents.to(device)
        mask = None if mask is None else torch.as_tensor(mask, device=device).bool()
    else:
        if len(documents) == 0:
            shape = (0,) if query.ndim == 2 else (query.shape[0], 0)
            return torch.zeros(shape, dtype=torch.float32, device=device)
        padded, mask = _pad_ragged(documents, device)
    if padded.shape[-1] != query.shape[-1]:
        msg = f"query {tuple(query.shape)} and documents {tuple(padded.shape)} dims differ."
        raise ValueError(msg)
    if mask is not None:
        if mask.shape != padded.shape[:2]:
            msg = (
                f"documents_mask must have shape {tuple(padded.shape[:2])}; "
                f"got {tuple(mask.shape)}."
            )
            raise ValueError(msg)
        lengths = mask.sum(dim=1)
        if bool((lengths == 0).any()):
            msg = "every document needs at least one unmasked token for MaxSim."
            raise ValueError(msg)
    queries = query if query.ndim == 3 else query[None]
    scores = None
    if mask is not None and not bool(mask.all()):
        scores = _prefix_masked(queries, padded, mask, lengths)
        if scores is None:
            padded = _repeat_last_real(padded, mask, lengths)
    if scores is None:
        scores = padded_maxsim(queries, padded)
    return scores[0] if query.ndim == 2 else scores


def _prefix_masked(
    queries: torch.Tensor, padded: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor | None:
    """Scores from the Triton kernel told each document's length, or None where it cannot run.

    Why: with a mask that keeps a prefix of each document (the usual zero padding), the kernel
    skips the padding itself, which reads only the real rows instead of first copying the whole
    tensor with its padding replaced (``_repeat_last_real``: 9.1 vs PyLate's 2.6 ms at 100k
    documents x 180 tokens on an H200, ``benchmarks/results/gpu-h200-*``).
    """
    device = padded.device
    dtype = _compute_dtype(device, padded.dtype)
    if device.type != "cuda" or dtype not in _HALF or padded.dtype != dtype:
        return None
    batched = _batched_kernel()
    if batched is None:
        return None
    positions = torch.arange(mask.shape[1], device=device)
    if not bool((mask == (positions[None, :] < lengths[:, None])).all()):
        return None  # real tokens not all first: the copy path handles any mask
    return batched(queries.to(device=device, dtype=dtype), padded, lengths)


def _repeat_last_real(padded: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> Any:
    """Replace masked positions by the document's last real token (so no mask is needed).

    Real tokens need not come first: each masked position takes the nearest real token before
    it, or the first real token for leading padding.
    """
    positions = torch.arange(padded.shape[1], device=padded.device).expand_as(mask)
    last_real = torch.where(mask, positions, torch.full_like(positions, -1)).cummax(dim=1).values
    first_real = torch.where(mask, positions, torch.full_like(positions, padded.shape[1]))
    first_real = first_real.amin(dim=1, keepdim=True).expand_as(last_real)
    source = torch.where(last_real < 0, first_real, last_real)
    return torch.gather(padded, 1, source[..., None].expand_as(padded))
