"""Tokenise in other processes, so a GPU's launch loop keeps its interpreter to itself.

Why: on an H200 (MiniLM-L6, bfloat16, 10k SciFact passages) the pipeline's launch-and-collect
loop alone runs at 94% of the forward bound. With the tokeniser working in another process at the
same time it keeps 74% (the two share the host's cores). With the same tokeniser in a thread of
its own process it falls to 26%: the loop launches hundreds of small kernels per batch, and it
waits for the interpreter lock after each one while the tokenising threads read encodings
(``benchmarks/results/gpu-one-overlap-h200-20261130-1650.md``). So on a GPU the Rust tokenizer,
the reads and the ColBERT rules run here, in worker processes, and only finished numpy arrays
come back.

Why ``subprocess`` and not ``multiprocessing``: a spawned ``multiprocessing`` child imports the
caller's main script again, so a script without an ``if __name__ == "__main__":`` guard would run
a second time. This child runs ``python -m`` on ``tokenizer_worker.py`` and nothing else.

The workers make the same batches as ``batches.make_batches`` in one process (groups go to them
round-robin, each group is batched alone), so results are the same, bit for bit. Messages are
pickled over pipes: the parent sends each worker its groups' texts a few groups ahead, and reads
the batches back in the plan's order. A worker that dies is reported as a ``RuntimeError``; one
whose job is abandoned half-way is stopped (the next job starts fresh ones).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from late_interaction._encoding import tokenize as _tokenize
from late_interaction.config import EncoderConfig

if TYPE_CHECKING:  # pragma: no cover
    from late_interaction._encoding.batches import Batch

logger = logging.getLogger(__name__)

LEAD = 3  # groups each worker holds ahead of the parent (texts sent, batches not yet read)
_START_TIMEOUT_S = 120.0
_WORKER = "late_interaction._encoding.tokenizer_worker"  # what the child runs (python -m)


class TokenizerProcesses:
    """Worker processes that turn groups of texts into batches (``batches.Batch``).

    Args:
        tokenizer: The Hugging Face tokenizer (pickled to each worker).
        rules: The ColBERT token rules.
        config: The settings in effect.
        processes: How many workers.
        threads: Rust tokenizer threads per worker (``RAYON_NUM_THREADS``, unless the caller
            set it).

    Raises:
        RuntimeError: If a worker does not start (its error output is on stderr).
    """

    def __init__(
        self, tokenizer: Any, rules: _tokenize.TokenRules, config: EncoderConfig,
        processes: int, threads: int,
    ) -> None:  # fmt: skip
        env = dict(os.environ)
        env.setdefault("RAYON_NUM_THREADS", str(max(1, threads)))
        # The child must import this package from where the parent did, whatever sys.path held.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        setup = (_Facts.of(tokenizer), _rule_fields(rules), config)
        self.processes = processes
        self._workers: list[_Worker] = []
        self._closing = threading.Lock()  # close() may run in two threads (a job's, an owner's)
        try:
            for _ in range(processes):
                worker = _start(env)
                self._workers.append(worker)
                # Sent from a thread: the setup outgrows a pipe's buffer, and a child that hangs
                # before reading it must not hang this one past the time-out below.
                threading.Thread(target=_send_quietly, args=(worker[1], setup), daemon=True,
                                 name="late-interaction-tokenizer-setup").start()  # fmt: skip
            for process, _, inbox in self._workers:
                if not inbox.poll(_START_TIMEOUT_S):
                    msg = f"a tokenizer process did not start within {_START_TIMEOUT_S:.0f} s."
                    raise RuntimeError(msg)
                _expect(_receive(inbox, process))  # a child that exits is an error
        except BaseException:
            self.close()
            raise

    @property
    def closed(self) -> bool:
        """Whether the workers have been stopped."""
        return not self._workers

    def batches(
        self, texts: list[str], groups: list[np.ndarray], *, is_query: bool, batch_size: int,
        pin: bool,
    ) -> Iterator[Batch]:  # fmt: skip
        """The batches of ``groups`` of ``texts``, as ``make_batches`` gives them, in plan order.

        Leaving the iteration early stops the workers (they may be mid-group).

        Raises:
            RuntimeError: If a worker died or failed (its traceback is in the message).
        """
        from late_interaction._encoding.batches import Batch

        workers = self._workers
        sent = [0] * len(workers)  # groups sent to each worker

        def send(w: int) -> None:
            mine = range(w, len(groups), len(workers))
            if sent[w] < len(mine):
                g = mine[sent[w]]
                _send(workers[w], [texts[i] for i in groups[g]])
                sent[w] += 1

        finished = False
        try:
            for w, worker in enumerate(workers):
                _send(worker, ("job", is_query, batch_size))
                for _ in range(LEAD):
                    send(w)
            for g, group in enumerate(groups):
                w = g % len(workers)
                process, _, inbox = workers[w]
                seen = 0
                while seen < len(group):
                    index, features, keep = _expect(_receive(inbox, process))
                    yield Batch.from_arrays(group[index], features, keep, pin)
                    seen += len(index)
                send(w)
            for worker in workers:
                _send(worker, None)  # end of the job's groups
            finished = True
        finally:
            if not finished:  # abandoned or failed: the workers may be mid-group
                self.close()

    def kill(self) -> None:
        """Stop the worker processes at once; a thread blocked reading from one gets an error.

        Their pipes stay open until :meth:`close` (closing one under a blocked reader would not
        wake it, and its number could be reused meanwhile).
        """
        for process, _, _ in list(self._workers):
            if process.poll() is None:
                process.terminate()

    def close(self) -> None:
        """Stop the workers and close their pipes (idempotent)."""
        with self._closing:
            workers, self._workers = self._workers, []
            for process, outbox, inbox in workers:
                if process.poll() is None:
                    process.terminate()
                process.wait()
                for conn in (outbox, inbox):
                    conn.close()

    def __del__(self) -> None:  # a forgotten instance must not leave processes behind
        if getattr(self, "_workers", None):
            self.close()


@dataclass(frozen=True)
class _Facts:
    """What the direct Rust path reads of a Hugging Face tokenizer, without transformers.

    Why: a child that unpickles the tokenizer itself imports transformers and torch, seconds of
    start-up; this holds the Rust tokenizer (pickled by the ``tokenizers`` library) and the few
    attributes ``rust_tokenizer.py`` and ``tokenize.py`` read.
    """

    backend_tokenizer: Any
    pad_token_id: int | None
    pad_token_type_id: int
    padding_side: str
    model_input_names: list[str]
    is_fast: bool = True

    @classmethod
    def of(cls, tokenizer: Any) -> _Facts:
        return cls(
            tokenizer.backend_tokenizer, tokenizer.pad_token_id,
            int(tokenizer.pad_token_type_id or 0), tokenizer.padding_side,
            list(tokenizer.model_input_names),
        )  # fmt: skip


def _rule_fields(rules: _tokenize.TokenRules) -> dict[str, Any]:
    # The lock and the cached Rust copies are per process: the worker makes its own.
    return {f.name: getattr(rules, f.name) for f in fields(rules) if f.name not in _PER_PROCESS}


_PER_PROCESS = ("lock", "backends")


_Worker = tuple[subprocess.Popen[bytes], Connection, Connection]  # process, to it, from it


def _start(env: dict[str, str]) -> _Worker:
    to_child, child_in = os.pipe()
    child_out, from_child = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", _WORKER, str(to_child), str(from_child)],
            env=env, pass_fds=(to_child, from_child), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal interrupts the caller, which stops the
            # worker; interrupted itself, a worker could die half-way through a message.
            start_new_session=True,
        )  # fmt: skip
    except BaseException:
        os.close(child_in)
        os.close(child_out)
        raise
    finally:
        os.close(to_child)
        os.close(from_child)
    return process, Connection(child_in, readable=False), Connection(child_out, writable=False)


def _send_quietly(outbox: Connection, message: Any) -> None:
    try:
        outbox.send(message)
    except OSError:  # the child is gone: the parent's read reports it, with its exit code
        pass


def _send(worker: _Worker, message: Any) -> None:
    process, outbox, _ = worker
    try:
        outbox.send(message)
    except OSError:  # a broken pipe: the worker is gone
        _died(process)


def _died(process: subprocess.Popen[bytes]) -> None:
    code = process.wait()
    msg = f"a tokenizer process died (exit code {code}); its error output is on stderr."
    raise RuntimeError(msg) from None


def _receive(inbox: Connection, process: subprocess.Popen[bytes]) -> Any:
    try:
        return inbox.recv()
    except (EOFError, OSError):
        _died(process)


def _expect(message: tuple[str, Any]) -> Any:
    kind, payload = message
    if kind == "error":
        msg = f"a tokenizer process failed. Its error:\n{payload}"
        raise RuntimeError(msg)
    return payload
