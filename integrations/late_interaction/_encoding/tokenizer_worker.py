"""A tokenizer process's side: receive groups of texts, send back padded numpy batches.

Started by ``tokenizer_process.TokenizerProcesses`` as ``python -m`` on this module, with the
two pipe descriptors as arguments. It imports neither torch nor transformers (the tokenizer
arrives as ``tokenizer_process._Facts``: the Rust tokenizer and a few attributes), so it starts
in a fraction of a second.

Messages in: the setup ``(facts, rule fields, config)``; then per job a header
``("job", is_query, batch_size)``, each group's texts (a list of str), and ``None`` after the
job's last group. Out: ``("ready", ...)``; ``("batch", (positions in the group, features,
keep))`` per batch, in order; ``("error", traceback)`` (the parent raises it and stops this
process). The parent closing its end of the pipe ends the process.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from late_interaction._encoding import token_arrays as _arrays
from late_interaction._encoding import tokenize as _tokenize
from late_interaction._encoding.tokenizer_process import LEAD

_AHEAD = 4  # finished batches this process may hold while the parent reads another worker


def _serve(inbox: Connection, outbox: Connection) -> None:
    """A worker's life: receive the setup, then serve jobs until the parent closes the pipe."""
    from late_interaction._encoding.prefetch import Prefetch

    try:
        tokenizer, fields, config = inbox.recv()
        rules = _tokenize.TokenRules(**fields, lock=threading.Lock())
    except BaseException as exc:
        outbox.send(("error", describe(exc)))
        return
    outbox.send(("ready", os.environ.get("RAYON_NUM_THREADS")))
    # A reader thread takes the parent's messages as they come, so the parent never blocks
    # writing texts while this process blocks writing batches back.
    with Prefetch(_messages(inbox), depth=LEAD + 2, name="late-interaction-tokenizer-in") as m:
        incoming = iter(m)
        for _, is_query, batch_size in incoming:
            made = _arrays.arrays_of(tokenizer, rules, config, _groups(incoming),
                                     is_query=is_query, batch_size=batch_size)  # fmt: skip
            try:
                with Prefetch(made, depth=_AHEAD, name="late-interaction-tokenizer-out") as out:
                    for index, features, keep in out:
                        narrow = {name: _narrow(a) for name, a in features.items()}
                        outbox.send(("batch", (index, narrow, keep)))
            except Exception as exc:  # the parent raises it and stops this process
                outbox.send(("error", describe(exc)))
                return


def _narrow(values: np.ndarray) -> np.ndarray:
    """``values`` in the narrowest integer type that holds them exactly, for the pipe.

    Why: token ids, masks and type ids are int64 model inputs, 8 bytes where 1 or 2 hold them;
    pickling and piping 4-8x fewer bytes costs both processes less. The pipeline widens them
    back on the device (``Pipeline._flight``).
    """
    if values.dtype != np.int64 or values.size == 0:
        return values
    low, high = int(values.min()), int(values.max())
    for kind in (np.uint8, np.int16, np.int32):  # types torch fully supports (not uint16)
        info = np.iinfo(kind)
        if info.min <= low and high <= info.max:
            return values.astype(kind)
    return values


def _messages(inbox: Connection) -> Iterator[Any]:
    while True:
        try:
            yield inbox.recv()
        except EOFError:  # the parent closed the pipe: no more work
            return


def _groups(incoming: Iterator[Any]) -> Iterator[tuple[np.ndarray, list[str]]]:
    """One job's groups: texts until the parent's ``None``, each group numbered from 0."""
    while (raw := next(incoming, None)) is not None:
        yield np.arange(len(raw)), raw


def describe(exc: BaseException) -> str:
    """An exception with its traceback, as text for the parent process to raise."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).strip()


if __name__ == "__main__":
    _serve(
        Connection(int(sys.argv[1]), writable=False),
        Connection(int(sys.argv[2]), readable=False),
    )
