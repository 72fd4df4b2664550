"""How a pool worker hands its token vectors to the parent: a few reused shared-memory slots.

Why: sending each batch's rows as a tensor through a ``torch.multiprocessing`` queue moves them
into a new shared-memory segment per batch, which both processes then fault in page by page. On two
H200s the parent received at most ~15-16k SciFact passages a second that way, whatever the model or
the number of GPUs: a one-GPU pool of MiniLM-L6 ran at 0.55x the same GPU in-process
(``benchmarks/results/gpu-pool-scaling-h200x2-20261130-2000.md``, run 1). Here each worker owns
``SLOTS`` segments, sent to the parent once (and again only when one must grow); a batch is one
copy into a free slot in the worker and one copy out of it in the parent, on pages already mapped,
after which the parent hands the slot back. The handback also paces a worker that runs ahead of the
parent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

SLOTS = 3  # per worker: one being filled, one being read, one spare
_GROWTH = 1.25  # a slot that must grow takes a quarter more than asked, so it rarely grows again


class SlotWriter:
    """The worker's side: copies a batch's rows into a free slot.

    Args:
        free: A queue of the slot numbers the parent has finished reading (starts full).
    """

    def __init__(self, free: Any) -> None:
        self._free = free
        self._slots: dict[int, torch.Tensor] = {}

    def put(self, rows: np.ndarray) -> tuple[int, tuple[int, ...], str, torch.Tensor | None]:
        """Copy ``rows`` into a free slot (waiting for one).

        Returns:
            ``(slot, shape, dtype, segment)``: what the parent needs to read the rows back;
            ``segment`` is the slot's shared tensor when the parent has not seen it yet, else
            None (the parent keeps the ones it has seen).
        """
        rows = np.ascontiguousarray(rows)
        slot = self._free.get()
        segment = self._slots.get(slot)
        new = segment is None or segment.numel() < rows.nbytes
        if new:
            size = max(int(rows.nbytes * _GROWTH), 1)
            segment = torch.empty(size, dtype=torch.uint8).share_memory_()
            self._slots[slot] = segment
        segment.numpy()[: rows.nbytes] = rows.reshape(-1).view(np.uint8)
        return slot, rows.shape, rows.dtype.str, segment if new else None


class SlotReader:
    """The parent's side for one worker: copies rows out of a slot and hands the slot back.

    Args:
        free: The same queue as the worker's ``SlotWriter`` (filled here with every slot).
    """

    def __init__(self, free: Any) -> None:
        self.free = free
        self._slots: dict[int, torch.Tensor] = {}
        for slot in range(SLOTS):
            free.put(slot)

    def take(
        self, slot: int, shape: tuple[int, ...], dtype: str, segment: torch.Tensor | None
    ) -> np.ndarray:
        """The rows ``SlotWriter.put`` wrote into ``slot``, copied out; the slot is freed."""
        if segment is not None:
            self._slots[slot] = segment
        kind = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * kind.itemsize
        rows = self._slots[slot].numpy()[:nbytes].view(kind).reshape(shape).copy()
        self.free.put(slot)
        return rows

    def skip(
        self, slot: int, shape: tuple[int, ...], dtype: str, segment: torch.Tensor | None
    ) -> None:
        """Free ``slot`` unread (a message no job waits for), keeping a new segment it carries."""
        if segment is not None:
            self._slots[slot] = segment
        self.free.put(slot)
