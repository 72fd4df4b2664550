"""Where a pipeline's batches come from: tokenizer processes on a GPU, else a thread.

Why two ways: on a GPU the launch loop must keep the interpreter to itself, so batches are
made in tokenizer processes (``tokenizer_process.py``); elsewhere the forward pass sets the pace
and a background thread (``prefetch.py``) is enough, and cheaper to start. Both give the same
batches. The processes start on the first encode of more than one group and are kept for the
next ones; one job uses them at a time (a second thread encoding at once tokenises in-process).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from late_interaction._encoding.batches import Batch, make_batches
from late_interaction._encoding.prefetch import Prefetch

if TYPE_CHECKING:  # pragma: no cover
    from late_interaction._encoding.pipeline import Pipeline

logger = logging.getLogger(__name__)

_AHEAD = 4  # tokenised batches waiting for the device (a few: enough to ride out a slow group)
# Tokenizer processes per CUDA pipeline (tokenizer_process.py). One was as fast as two to four
# on an H200 host (16 cores): benchmarks/results/gpu-one-overlap-h200-20261130-1650.md.
_GPU_TOKENIZER_PROCESSES = 1


class BatchSource:
    """The batches of one pipeline's encode jobs, and the tokenizer processes behind them.

    Args:
        pipeline: The pipeline it serves (its device, tokenizer, rules, ``tokenizer_processes``
            and ``cpu_share`` are read at each job).
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self.tokenizers: Any = None  # the running TokenizerProcesses, made on first use
        self.lock = threading.Lock()  # one job at a time uses them
        self.failed = False  # they could not start: tokenise in-process from then on

    @contextlib.contextmanager
    def open(
        self, texts: list[str], groups: list[np.ndarray], is_query: bool, batch_size: int
    ) -> Iterator[Iterator[Batch]]:
        """The batches of ``groups``, made a few ahead of the device in the background."""
        pipe = self._pipeline
        pin = pipe.device.type == "cuda"
        remote = self._take(len(groups))
        if remote is not None:
            try:
                made = remote.batches(texts, groups, is_query=is_query, batch_size=batch_size,
                                      pin=pin)  # fmt: skip
                with Prefetch(made, _AHEAD, name="late-interaction-receive") as batches:
                    done = False
                    try:
                        yield batches
                        done = True
                    finally:
                        if not done:  # the receiving thread may be blocked reading a worker
                            remote.kill()
            finally:
                self.lock.release()
            return
        source = make_batches(
            pipe.tokenizer, pipe.rules, pipe.config, texts, groups,
            is_query=is_query, batch_size=batch_size, pin=pin,
        )  # fmt: skip
        # One batch: tokenise it here (a background thread would only add its start-up time).
        if sum(len(g) for g in groups) <= batch_size:
            yield source
            return
        with Prefetch(source, _AHEAD) as batches:
            yield batches

    def _take(self, n_groups: int) -> Any:
        """The tokenizer processes, started if needed and locked for one job; else None.

        None (tokenise in this process; the batches are the same) when they are off for this
        device, when one group is all there is, when the tokenizer has no direct Rust path (a
        slow tokenizer, or one without a pad token), when another thread's job holds them, or
        when they could not start before (a warning said so then).

        Raises:
            RuntimeError: If ``tokenizer_processes`` was set explicitly and they cannot start.
        """
        pipe = self._pipeline
        wanted = pipe.tokenizer_processes
        if wanted is None:
            wanted = _GPU_TOKENIZER_PROCESSES if pipe.device.type == "cuda" else 0
        from late_interaction._encoding.rust_tokenizer import has_direct_path
        from late_interaction._encoding.tokenizer_process import TokenizerProcesses

        if wanted <= 0 or n_groups < 2 or self.failed or not has_direct_path(pipe.tokenizer):
            return None
        if os.name != "posix":  # the workers' pipes are passed as inherited file descriptors
            if pipe.tokenizer_processes is not None:
                msg = "tokenizer processes need a POSIX system; set tokenizer_processes=0."
                raise RuntimeError(msg)
            return None
        if not self.lock.acquire(blocking=False):
            return None

        try:
            if (
                self.tokenizers is None
                or self.tokenizers.closed
                or (self.tokenizers.processes != wanted)
            ):
                if self.tokenizers is not None:
                    self.tokenizers.close()
                threads = max(1, (os.cpu_count() or 1) // (wanted * max(1, pipe.cpu_share)))
                self.tokenizers = TokenizerProcesses(
                    pipe.tokenizer, pipe.rules, pipe.config, wanted, threads
                )
        except Exception as exc:
            self.lock.release()
            if pipe.tokenizer_processes is not None:
                raise
            self.failed = True
            logger.warning(
                "Could not start tokenizer processes (%s); tokenising in this process from now "
                "on (the same results, slower on a GPU).", exc,
            )  # fmt: skip
            return None
        except BaseException:  # an interrupt while they start
            self.lock.release()
            raise
        return self.tokenizers

    def close(self) -> None:
        """Stop the tokenizer processes, if any, once a running job is done with them."""
        with self.lock:
            if self.tokenizers is not None:
                self.tokenizers.close()
