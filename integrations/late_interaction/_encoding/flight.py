"""One launched batch on its way back: outputs on the device, copied to the host off the loop.

Why a collector thread: the copy out of page-locked memory into the arrays handed to the caller
(~0.8 GB per 10k SciFact passages in float32) took a third of the encoding loop's time on an
H200 host, and the loop's thread is the one that launches the next batches. The collector
waits for a batch's copy event and makes that copy while the loop launches the next batch; the
results still come back in the loop's order.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from late_interaction._encoding.batches import Batch

#: One batch's output: (positions of its texts, kept rows of all its texts stacked, rows per
#: text, dense vectors). numpy on the host, or tensors on the device with ``as_tensors``.
Output = tuple[np.ndarray, Any, np.ndarray, Any]


def place_rows(out: list[Any], where: Any, rows: Any, counts: np.ndarray) -> None:
    """Put each text's rows of one batch at ``out[where[j]]``: views of ``rows``, not copies.

    Args:
        out: The per-text results, in the caller's order.
        where: Positions in ``out`` of the batch's texts (numpy ints).
        rows: The batch's kept rows, all texts stacked (numpy, or a tensor).
        counts: Rows per text.
    """
    if isinstance(rows, torch.Tensor):
        pieces = torch.split(rows, counts.tolist())
    else:
        pieces = np.split(rows, np.cumsum(counts)[:-1])
    for i, piece in zip(where.tolist(), pieces, strict=True):
        out[i] = piece


def collector() -> ThreadPoolExecutor:
    """The thread that copies finished batches to the host (one per pipeline, made on use)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="late-interaction-collect")


class Flight:
    """One launched batch: its outputs on the device, and on their way to the host if wanted.

    Args:
        batch: The batch launched.
        vectors: Its kept token vectors, on the device.
        dense: Its dense vectors, on the device.
        as_tensors: Hand back the device tensors (no copy to the host).
        copy_stream: CUDA stream for the device-to-host copy (None: no asynchronous copy).
        collect: The collector thread (with ``copy_stream``).
    """

    def __init__(
        self, batch: Batch, vectors: torch.Tensor, dense: torch.Tensor, as_tensors: bool,
        copy_stream: Any = None, collect: ThreadPoolExecutor | None = None,
    ) -> None:  # fmt: skip
        self.index, self.counts, self.size = batch.index, batch.counts, len(batch)
        self._vectors, self._dense, self._as_tensors = vectors, dense, as_tensors
        self._copied: Future[tuple[np.ndarray, np.ndarray]] | None = None
        if copy_stream is None or collect is None:
            return
        # Copy on a side stream into page-locked memory: the copy overlaps the next batch's
        # forward pass, and the host waits for this batch's copy alone (an event), not for
        # everything queued on the GPU since.
        copy_stream.wait_stream(torch.cuda.current_stream(vectors.device))
        with torch.cuda.stream(copy_stream):
            host = [
                torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True)
                for t in (vectors, dense)
            ]
            event = torch.cuda.Event()
            event.record(copy_stream)
        for tensor in (vectors, dense):  # the caching allocator must not reuse them too soon
            tensor.record_stream(copy_stream)
        self._copied = collect.submit(_to_pageable, event, host)

    def result(self) -> Output:
        """The batch's output: numpy, or the device tensors for a consumer on the device."""
        if self._as_tensors:
            return self.index, self._vectors, self.counts, self._dense
        if self._copied is None:  # CPU (no copy: .cpu() is the tensor itself) or MPS
            return self.index, self._vectors.cpu().numpy(), self.counts, self._dense.cpu().numpy()
        vectors, dense = self._copied.result()
        return self.index, vectors, self.counts, dense


def _to_pageable(event: Any, host: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    event.synchronize()  # releases the GIL while the copy from the device runs
    # Out of page-locked memory (scarce, and a caller may keep the result for long). numpy's
    # copy, not torch's: next to the busy tokenizer threads torch's pool was 5x slower.
    vectors, dense = (np.array(t.numpy()) for t in host)
    return vectors, dense
