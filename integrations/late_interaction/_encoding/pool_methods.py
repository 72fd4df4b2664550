"""The multi-device methods of :class:`~late_interaction.ColBERT`.

``start_pool``, and the routing of every encode call through an open pool.

Kept apart from ``encoder.py`` (loading and encoding) so each file stays one concept; ``ColBERT``
inherits them. The work is in ``pool.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from late_interaction._encoding.device_threads import DeviceThreads
from late_interaction._encoding.pool import EncodePool
from late_interaction._validation import positive_int

if TYPE_CHECKING:  # pragma: no cover
    from late_interaction._encoding.pipeline import Pipeline


class PoolMethods:
    """``start_pool`` and ``_encode``, over the pipeline of the inheriting encoder."""

    _pipeline: Pipeline
    _pool: EncodePool | None

    def _encode(
        self, texts: list[str], is_query: bool, batch_size: int, show: bool | None, devices: Any
    ) -> tuple[list[Any], Any]:
        if self._pool is not None and self._pool.closed:
            self._pool = None
        if not texts or (devices is None and self._pool is None):
            return self._pipeline.encode(texts, is_query, batch_size, show)
        batch_size = positive_int(batch_size, "batch_size")  # type: ignore[assignment]
        if devices is not None:
            with self._one_off_pool(devices) as pool:
                return pool.encode(texts, is_query, batch_size, show)
        return self._pool.encode(texts, is_query, batch_size, show)  # type: ignore[union-attr]

    def start_pool(
        self, devices: Sequence[str | torch.device] | None = None, *, attach: bool = True
    ) -> EncodePool:
        """Start encoding on several devices; while the pool is open, this encoder encodes there.

        Every ``encode_queries``/``encode_documents`` call (and so an index's ``add``) then
        splits its texts over the devices, each text encoded exactly as on one device. The
        encoder is loaded again in one worker process per entry, from its folder, with the same
        arguments and dtype (CPU workers split the cores between them). Starting takes a little
        longer than loading the encoder; keep the pool open across calls. A script that starts a
        pool needs the usual ``if __name__ == "__main__":`` guard (workers are spawned)::

            with model.start_pool(["cuda:0", "cuda:1"]):
                index.add(texts)

        (A one-off ``encode_documents(texts, devices=[...])`` on GPUs uses one thread per GPU
        in this process instead: it starts in about a second but scales less.) ``rerank`` on a
        GPU encoder stays in this process on the encoder's own device: one query's candidates
        are too few to gain from the pool, and its rows stay on the GPU for scoring.

        Args:
            devices: One entry per device, e.g. ``["cuda:0", "cuda:1"]`` (``["cpu", "cpu"]``
                works: two processes, the cores split between them). None: every CUDA device,
                else two CPU processes.
            attach: Make this encoder use the pool until it is closed (else only hand it back).

        Returns:
            The pool: a context manager; ``close()`` stops its processes or releases the
            encoder copies.

        Raises:
            ValueError: If ``devices`` is empty, or this encoder was not made by
                :meth:`from_pretrained` (a worker could not load it again).
            RuntimeError: If a worker process cannot load the encoder (its error is in the
                message).
        """
        pool = EncodePool(*self._pool_args(devices))
        if attach:
            if self._pool is not None:
                self._pool.close()
            self._pool = pool
        return pool

    def _one_off_pool(self, devices: Sequence[str | torch.device]) -> EncodePool | DeviceThreads:
        """The pool of one ``devices=`` call: threads of this process on GPUs, else processes.

        Why not ``start_pool``'s worker processes on GPUs: on two H200s they scale a
        BERT-base-sized encoder 1.80-1.82x and threads 1.37-1.38x (two threads launch their forward
        passes op by op under one interpreter), but they start in 12-14 s against about 1 s
        (``benchmarks/results/gpu-pool-scaling-h200x2-20261130-2000.md``). A pool kept open pays
        that once; a one-off call would pay it every time. CPUs always take processes: a CPU
        forward pass holds the interpreter for much of its time.
        """
        load_args, devices = self._pool_args(devices)
        listed = not isinstance(devices, (str, torch.device)) and len(devices) > 0
        on_gpus = listed and all(torch.device(d).type == "cuda" for d in devices)
        return (DeviceThreads if on_gpus else EncodePool)(load_args, devices)

    def _pool_args(
        self, devices: Sequence[str | torch.device] | None
    ) -> tuple[dict[str, Any], Sequence[str | torch.device]]:
        """The encoder's load arguments, and the devices (None: every GPU, else two CPUs)."""
        if self._pipeline.load_args is None:
            msg = "a pool loads the encoder again in each process; build it with from_pretrained."
            raise ValueError(msg)
        if devices is None:
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            devices = [f"cuda:{i}" for i in range(count)] or ["cpu", "cpu"]
        return self._pipeline.load_args, devices
