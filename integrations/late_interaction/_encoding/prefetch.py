"""Run an iterator in a background thread, a few items ahead of its consumer.

Why: on a GPU, encoding used to alternate between tokenising on the CPU (most of the time, the
GPU idle) and the forward pass. The pipeline tokenises the next batches here while the GPU runs
the current one. The Rust tokenizer releases the GIL, and most of the rest is numpy and torch
work that does too, so the two overlap even in one process.

The thread never outlives its :class:`Prefetch`: leaving the ``with`` block, by the end of the
items, an exception in the consumer or a ``KeyboardInterrupt``, stops the producer at its next
item and joins it. An exception in the producer is raised in the consumer, at the point where
its item would have come.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_ITEM, _DONE, _ERROR = "item", "done", "error"
_POLL_S = 0.05  # how often a blocked producer checks whether it should stop


class Prefetch(Generic[T]):
    """Iterate ``source`` in a background thread, at most ``depth`` items ahead.

    Use it as a context manager and iterate it once::

        with Prefetch(batches(), depth=4) as ahead:
            for batch in ahead:
                ...

    Args:
        source: The items, produced in the background thread (its ``__iter__`` and ``__next__``
            run there).
        depth: How many finished items may wait for the consumer.
        name: The thread's name (shown in debuggers and thread dumps).
    """

    def __init__(self, source: Iterable[T], depth: int, name: str = "late-interaction-prefetch"):
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(source,), name=name)
        self._thread.daemon = True  # never keeps the interpreter alive, even if close is skipped
        self._thread.start()

    def _produce(self, source: Iterable[T]) -> None:
        items = iter(source)
        try:
            for item in items:
                if not self._put((_ITEM, item)):
                    return
            self._put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, who raises it
            self._put((_ERROR, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator's own finally blocks run in this thread
                close()

    def _put(self, message: tuple[str, Any]) -> bool:
        """Queue ``message`` unless the consumer has stopped; False once it has."""
        while not self._stop.is_set():
            try:
                self._queue.put(message, timeout=_POLL_S)
            except queue.Full:
                continue
            return True
        return False

    def __iter__(self) -> Iterator[T]:
        while True:
            kind, value = self._queue.get()
            if kind == _DONE:
                return
            if kind == _ERROR:
                raise value
            yield value

    def close(self) -> None:
        """Stop the producer and wait for its thread to end (idempotent)."""
        self._stop.set()
        while self._thread.is_alive():
            try:  # unblock a put that is waiting for room
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=_POLL_S)

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
