"""Encode on several GPUs from one process: one encoder copy and one thread per device.

Used for one-off ``encode_*(texts, devices=[...])`` calls on GPUs; ``start_pool`` takes
``pool.py``'s worker processes. Why threads for a one-off call: a process pool starts in 12-14 s
(each worker imports torch and loads the encoder) and needs the caller's ``__main__`` guard;
threads start in about a second and hand back the arrays where they are made. What they cost:
two threads' forward passes overlap only 1.4x for a BERT-base backbone (launched op by op from
Python, in one interpreter; ``gpu-pool-stages-h200x2-20261130-1445.md``), so on two H200s threads
scale a BERT-base-sized encoder 1.37-1.38x against 1.80-1.82x for worker processes
(``benchmarks/results/gpu-pool-scaling-h200x2-20261130-2000.md``).

The plan is the one of ``pool.py``: ``batches.plan_groups`` cut into groups, dealt round-robin
to the devices, so every text is encoded in the batch it would have been in on one device, and
the results are the same, bit for bit on equal devices. CPU devices keep the process pool: the
forward pass on a CPU holds the GIL for much of its time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from late_interaction._encoding.batches import plan_groups
from late_interaction._encoding.flight import place_rows


class DeviceThreads:
    """One encoder copy per device, each run by its own thread for every encode call.

    Made for a one-off ``encode_*(texts, devices=[...])`` call when every device is a GPU
    (``pool_methods.PoolMethods._one_off_pool`` says why); the same interface as
    :class:`~late_interaction._encoding.pool.EncodePool`.

    Args:
        load_args: ``Pipeline.load_args`` of the encoder to load on each device.
        devices: One entry per device, e.g. ``["cuda:0", "cuda:1"]``.

    Raises:
        ValueError: If ``devices`` is empty.
    """

    def __init__(self, load_args: dict[str, Any], devices: Sequence[str | torch.device]) -> None:
        from late_interaction._encoding.load import load_pipeline

        if isinstance(devices, (str, torch.device)) or not devices:
            msg = f"devices must be a non-empty list like ['cuda:0', 'cuda:1']; got {devices!r}."
            raise ValueError(msg)
        self.devices = [str(d) for d in devices]
        self._pipelines: list[Any] = []
        for device in self.devices:
            args = dict(load_args)
            name, arguments = args.pop("name_or_path"), args.pop("arguments")
            pipeline = load_pipeline(name, arguments, device=device, **args)
            pipeline.cpu_share = len(self.devices)  # their tokenizer processes split the cores
            self._pipelines.append(pipeline)
        # What each copy runs on (the same keys as the process pool's workers report).
        self.workers = [{"device": str(p.device), "thread": True} for p in self._pipelines]
        self._lock = threading.Lock()  # one job at a time, as the process pool

    @property
    def closed(self) -> bool:
        """Whether the encoder copies have been released."""
        return not self._pipelines

    def encode(
        self, texts: list[str], is_query: bool, batch_size: int, show_progress_bar: bool | None
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """``Pipeline.encode`` on the devices: same arguments, same results.

        Raises:
            RuntimeError: If the pool is closed, or encoding failed on a device (the message
                names it; the exception is chained).
        """
        with self._lock:
            if self.closed:
                msg = "this encoding pool is closed; start a new one with ColBERT.start_pool(...)."
                raise RuntimeError(msg)
            return self._encode(texts, is_query, batch_size, show_progress_bar)

    def _encode(
        self, texts: list[str], is_query: bool, batch_size: int, show_progress_bar: bool | None
    ) -> tuple[list[np.ndarray], np.ndarray]:
        from late_interaction._progress import encode_bar

        groups = plan_groups(texts, batch_size)
        out: list[Any] = [None] * len(texts)
        hidden = int(self._pipelines[0].checkpoint.backbone.config.hidden_size)
        dense = np.empty((len(texts), hidden), np.float32)
        errors: list[tuple[str, BaseException]] = []
        stop = threading.Event()
        bar = encode_bar(len(texts), is_query, show_progress_bar)
        bar_lock = threading.Lock()

        def work(rank: int) -> None:
            pipeline, mine = self._pipelines[rank], groups[rank :: len(self._pipelines)]
            try:
                if pipeline.device.type == "cuda":  # this thread's streams and events
                    torch.cuda.set_device(pipeline.device)
                outputs = pipeline.run(texts, mine, is_query, batch_size, False)
                for index, rows, counts, vectors in outputs:
                    if stop.is_set():  # another device failed: stop early
                        outputs.close()
                        return
                    place_rows(out, index, rows, counts)
                    dense[index] = vectors
                    with bar_lock:
                        bar.update(len(index))
            except BaseException as exc:  # raised in the caller, with the device named
                errors.append((self.devices[rank], exc))
                stop.set()

        threads = [
            threading.Thread(target=work, args=(rank,), name=f"late-interaction-encode-{rank}")
            for rank in range(len(self._pipelines))
        ]
        with bar:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if errors:
            device, exc = errors[0]
            msg = f"encoding on {device} failed: {type(exc).__name__}: {exc}"
            raise RuntimeError(msg) from exc
        return out, dense

    def close(self, wait: bool = True) -> None:
        """Release the encoder copies (idempotent; ``wait`` is accepted for the same interface).

        Args:
            wait: Ignored: a call in progress holds the lock, so closing waits for it.
        """
        with self._lock:
            pipelines, self._pipelines = self._pipelines, []
        for pipeline in pipelines:
            pipeline.close()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __enter__(self) -> DeviceThreads:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
