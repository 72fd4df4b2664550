"""Encode on several devices at once: one worker process per device.

Why our own pool and not sentence-transformers' ``start_multi_process_pool``: that one pickles
the model into each worker and runs the library's own ``encode``, which knows neither our
tokenisation rules nor our batching. Ours is a small ``torch.multiprocessing`` spawn pool: each
worker loads the encoder again, from the same folder with the same arguments
(``Pipeline.load_args``), on its device, and runs the same ``Pipeline.run`` on the groups of
the one plan (``batches.plan_groups``) that it is given. So every text is encoded in the batch
it would have been in in one process, and the result is the same, bit for bit on equal devices.

Groups go to the workers round-robin (the plan is longest first, so each worker gets a fair
share of long and short texts), and each worker gets its whole share at once, so its
tokenising thread runs ahead across groups and the device never waits between them. Results
come back batch by batch: the token vectors through a few shared-memory slots each worker reuses
(``result_slots.py``), copied out at once, the rest pickled.

The workers share the host's cores: each gets ``cores // workers`` threads for torch (CPU
workers) and for the Rust tokenizer (every worker; ``RAYON_NUM_THREADS``, unless the caller set
it). On a GPU host the tokenizer sets the pace of a small model, and two workers each starting
one tokenizer thread per core oversubscribe the cores twice over.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from late_interaction._encoding.batches import plan_groups
from late_interaction._encoding.flight import place_rows
from late_interaction._encoding.result_slots import SlotReader, SlotWriter
from late_interaction._encoding.tokenizer_worker import describe

logger = logging.getLogger(__name__)

_POLL_S = 1.0  # how often the parent checks for dead workers while it waits
_START_TIMEOUT_S = 600.0  # loading a model: generous (a cold disk, a large checkpoint)


def _worker(rank: int, load_args: dict[str, Any], device: str, threads: int,
            inbox: Any, outbox: Any, free: Any) -> None:  # fmt: skip
    """A worker's life: load the encoder, then encode jobs until told to stop (None)."""
    began = time.perf_counter()
    try:
        # Set before the tokenizer's first parallel call builds its thread pool (a spawned
        # process starts fresh); a value the caller set is inherited and kept.
        os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
        where = torch.device(device)
        if where.type == "cpu":  # CPU workers share the cores instead of each taking them all
            torch.set_num_threads(threads)
        if where.type == "cuda" and where.index is not None:  # else a context opens on cuda:0 too
            torch.cuda.set_device(where)
        from late_interaction._encoding.load import load_pipeline

        args = dict(load_args)
        pipeline = load_pipeline(args.pop("name_or_path"), args.pop("arguments"), device=device,
                                 **args)  # fmt: skip
        # Its tokenizer processes (on a GPU) share the cores this worker was given.
        pipeline.cpu_share = max(1, (os.cpu_count() or 1) // threads)
    except BaseException as exc:  # reported to the parent, which raises it there
        outbox.put(("error", rank, None, describe(exc)))
        return
    ready = {"device": str(pipeline.device), "torch_threads": torch.get_num_threads(),
             "tokenizer_threads": os.environ["RAYON_NUM_THREADS"],
             "load_seconds": round(time.perf_counter() - began, 2)}  # fmt: skip
    outbox.put(("ready", rank, None, ready))
    slots = SlotWriter(free)
    while (job := inbox.get()) is not None:
        job_id, texts, groups, is_query, batch_size = job
        try:
            for index, rows, counts, dense in pipeline.run(
                texts, groups, is_query, batch_size, show_progress_bar=False
            ):
                # The rows (most of the bytes) go through a reused slot; the rest is pickled.
                outbox.put(("batch", rank, job_id, (index, counts, dense, slots.put(rows))))
            outbox.put(("done", rank, job_id, None))
        except Exception as exc:  # the job fails, the worker lives on; the parent closes the pool
            outbox.put(("error", rank, job_id, describe(exc)))


class EncodePool:
    """Worker processes that encode with one encoder on several devices.

    Made by :meth:`ColBERT.start_pool <late_interaction.ColBERT.start_pool>`; use it as a
    context manager, or call :meth:`close`.

    Args:
        load_args: ``Pipeline.load_args`` of the encoder to load in each worker.
        devices: One worker per entry, e.g. ``["cuda:0", "cuda:1"]`` or ``["cpu", "cpu"]``.

    Raises:
        ValueError: If ``devices`` is empty.
        RuntimeError: If a worker could not load the encoder (its error is in the message).
    """

    def __init__(self, load_args: dict[str, Any], devices: Sequence[str | torch.device]) -> None:
        if isinstance(devices, (str, torch.device)) or not devices:
            msg = f"devices must be a non-empty list like ['cuda:0', 'cuda:1']; got {devices!r}."
            raise ValueError(msg)
        self.devices = [str(d) for d in devices]
        threads = max(1, (os.cpu_count() or 1) // len(self.devices))
        # What each worker reported when it started: device, torch and tokenizer threads.
        self.workers: list[dict[str, Any]] = [{} for _ in self.devices]
        context = torch.multiprocessing.get_context("spawn")
        self._inboxes = [context.Queue() for _ in self.devices]
        self._outbox = context.Queue()
        frees = [context.Queue() for _ in self.devices]
        self._slots = [SlotReader(free) for free in frees]
        self._jobs = 0
        # One job at a time: the workers' results share one queue (two threads encoding at once,
        # e.g. queries and documents, take turns).
        self._lock = threading.Lock()
        self._processes: list[Any] = []
        try:
            for rank, device in enumerate(self.devices):
                args = (rank, load_args, device, threads, self._inboxes[rank], self._outbox,
                        frees[rank])  # fmt: skip
                process = context.Process(
                    target=_worker, args=args, name=f"late-interaction-encode-{rank}", daemon=True
                )
                process.start()  # spawn: the caller's script needs `if __name__ == "__main__":`
                self._processes.append(process)
            logger.info("Encoding pool started on %s.", ", ".join(self.devices))
            for _ in self._processes:
                _, rank, ready = self._receive(None, timeout=_START_TIMEOUT_S)
                self.workers[rank] = ready
        except BaseException:
            self.close(wait=False)
            raise

    @property
    def closed(self) -> bool:
        """Whether the workers have been stopped."""
        return not self._processes

    def encode(
        self, texts: list[str], is_query: bool, batch_size: int, show_progress_bar: bool | None
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """``Pipeline.encode`` on the pool's devices: same arguments, same results.

        Raises:
            RuntimeError: If the pool is closed, or a worker failed (the pool is then closed,
                and the message carries the worker's device and traceback).
        """
        with self._lock:
            return self._encode(texts, is_query, batch_size, show_progress_bar)

    def _encode(
        self, texts: list[str], is_query: bool, batch_size: int, show_progress_bar: bool | None
    ) -> tuple[list[np.ndarray], np.ndarray]:
        if self.closed:
            msg = "this encoding pool is closed; start a new one with ColBERT.start_pool(...)."
            raise RuntimeError(msg)
        from late_interaction._progress import encode_bar

        groups = plan_groups(texts, batch_size)
        self._jobs += 1
        job_id, busy = self._jobs, set()
        positions: list[np.ndarray] = []
        out: list[Any] = [None] * len(texts)
        dense: np.ndarray | None = None
        try:  # from the first send: a job some workers got and others did not must close too
            for rank, inbox in enumerate(self._inboxes):
                mine = groups[rank :: len(self._inboxes)]
                where = np.concatenate(mine) if mine else np.empty(0, np.int64)
                positions.append(where)
                if not mine:
                    continue
                starts = np.cumsum([0] + [len(g) for g in mine])
                local = [np.arange(a, b) for a, b in itertools.pairwise(starts)]
                inbox.put((job_id, [texts[i] for i in where], local, is_query, batch_size))
                busy.add(rank)
            with encode_bar(len(texts), is_query, show_progress_bar) as bar:
                while busy:
                    kind, rank, payload = self._receive(job_id)
                    if kind == "done":
                        busy.discard(rank)
                        continue
                    index, counts, vectors, slot = payload
                    rows = self._slots[rank].take(*slot)
                    where = positions[rank][index]
                    place_rows(out, where, rows, counts)
                    if dense is None:
                        dense = np.empty((len(texts), vectors.shape[1]), np.float32)
                    dense[where] = vectors
                    bar.update(len(index))
        except BaseException:
            self.close(wait=False)  # a worker may be mid-job: its later messages would be stale
            raise
        return out, dense if dense is not None else np.empty((0, 0), np.float32)

    def _receive(self, job_id: int | None, timeout: float | None = None) -> tuple[str, int, Any]:
        """The next message of ``job_id`` (None: start-up), raising a worker's error."""
        waited = 0.0
        while True:
            try:
                kind, rank, job, payload = self._outbox.get(timeout=_POLL_S)
            except queue.Empty:
                waited += _POLL_S
                pairs = zip(self.devices, self._processes, strict=False)
                dead = [(d, p.exitcode) for d, p in pairs if not p.is_alive()]
                if dead:
                    self.close(wait=False)
                    msg = f"encoding worker(s) died: {dead} (device, exit code); pool closed."
                    if job_id is None:  # at start: most often the script's missing guard
                        msg += (
                            " Workers are spawned and import the main script again: a script"
                            " that starts a pool must do it under"
                            ' `if __name__ == "__main__":` (see the workers\' error above).'
                        )
                    raise RuntimeError(msg) from None
                if timeout is not None and waited >= timeout:
                    self.close(wait=False)
                    msg = f"encoding workers did not start within {timeout:.0f} s; pool closed."
                    raise RuntimeError(msg) from None
                continue
            if kind == "error":
                device = self.devices[rank]
                self.close(wait=False)
                msg = f"the encoding worker on {device} failed; pool closed. Its error:\n{payload}"
                raise RuntimeError(msg)
            if job == job_id:
                return kind, rank, payload
            if kind == "batch":  # an earlier job's: its slot goes back, or the worker would stall
                self._slots[rank].skip(*payload[3])

    def close(self, wait: bool = True) -> None:
        """Stop the workers (idempotent).

        Args:
            wait: Let each worker finish its job and exit (else terminate them at once).
        """
        processes, self._processes = self._processes, []
        for rank, process in enumerate(processes):
            if wait and process.is_alive():
                self._inboxes[rank].put(None)
        for process in processes:
            process.join(timeout=10 if wait else 0)
            if process.is_alive():
                process.terminate()
                process.join()
        readers, self._slots = self._slots, []  # their shared segments are unmapped with them
        for q in (*self._inboxes, self._outbox, *(reader.free for reader in readers)):
            q.cancel_join_thread()
            q.close()

    def __enter__(self) -> EncodePool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten pool must not leave processes behind
        if getattr(self, "_processes", None):
            self.close()
