"""Spread numpy work over Python threads that each run BLAS single-threaded.

Nearest-centroid assignment (``kmeans.py``) is hundreds of small matrix products per chunk (one
per centroid group). Threaded BLAS splits each of them over its threads and makes the caller wait
for all of them at every product; on a machine whose cores are shared (a busy server, a laptop),
a BLAS thread that is not scheduled stalls every product. A 20k-passage build with 2 BLAS
threads at load ~4 on 2 cores ran 5.1x slower in wall time than with its rows spread as here
(``benchmarks/results/compressed-build20000-*-ab-threads.md``): rows split over as many Python
threads as BLAS would use, each product single-threaded, keep the cores busy without lock-step.

The BLAS thread limit is process-wide: while :func:`single_threaded_blas` is held (by any
thread), every BLAS call in the process runs on one thread; the limit is set by the first holder
and restored by the last one, so concurrent builds cannot leave it lowered. OpenBLAS may ignore a
limit set from a thread other than the main one once other threads have run BLAS (seen with
0.3.31), so the holder learns whether the limit took (:func:`single_threaded_blas` yields it)
and callers spread work over threads only if it did.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_holders = 0
_limiter: Any = None  # threadpoolctl's limiter while held (restores the original limits)
_controller: Any = None


def _blas() -> Any:
    """The BLAS libraries loaded now (numpy's), as a threadpoolctl controller made once."""
    global _controller
    if _controller is None:
        import numpy  # noqa: F401  (its BLAS must be loaded before the libraries are listed)
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController().select(user_api="blas")
    return _controller


def blas_threads() -> int:
    """Threads the BLAS libraries would use now (1 if none is found: then nothing is spread)."""
    return max((lib.num_threads for lib in _blas().lib_controllers), default=1)


@contextmanager
def single_threaded_blas() -> Iterator[bool]:
    """Limit every BLAS library of the process to one thread while held (shared by holders).

    Yields:
        Whether BLAS runs single-threaded now (False if the library ignored the limit).
    """
    global _holders, _limiter
    with _lock:
        if _holders == 0:
            _limiter = _blas().limit(limits=1)
        _holders += 1
    try:
        yield blas_threads() == 1
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                original = _limiter.get_original_num_threads().get("blas")
                _limiter.restore_original_limits()
                _limiter = None
                if original is not None and blas_threads() != original:
                    logger.warning(
                        "BLAS kept %d thread(s) after a build asked to restore %d; set it with "
                        "threadpoolctl.threadpool_limits(%d) if products run slower.",
                        blas_threads(), original, original,
                    )  # fmt: skip
