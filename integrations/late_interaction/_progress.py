"""Progress output: tqdm bars where the user asked for them, nothing else.

Two sources of noise are removed here, without changing what the bars themselves do:

* ``tqdm.auto`` warns "IProgress not found" when first imported in a Jupyter kernel without
  ipywidgets, then uses the text bar anyway. transformers imports it on the first model load,
  so a notebook that only loads a model showed the warning.
* transformers >= 5 draws a "Loading weights" bar on every ``from_pretrained``: on every model
  load, and so on every reload of a saved index.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["auto_tqdm", "encode_bar", "no_loading_bar", "quiet_in_notebooks", "quiet_loading"]

ENCODE_BAR_FROM = 256  # an encode call shows its bar by default from this many texts on


def auto_tqdm() -> Any:
    """Return ``tqdm.auto.tqdm``, imported without its "IProgress not found" warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        from tqdm.auto import tqdm
    return tqdm


def encode_bar(n_texts: int, is_query: bool, show: bool | None) -> Any:
    """The progress bar of one encode call (one process, a GPU-thread pool or a process pool).

    Args:
        n_texts: Texts the call encodes.
        is_query: Queries (else documents), for the bar's label.
        show: ``show_progress_bar`` as the caller passed it: None shows the bar from
            :data:`ENCODE_BAR_FROM` texts on.

    Returns:
        A ``tqdm.auto`` bar (disabled when not shown), to use as a context manager.
    """
    visible = n_texts >= ENCODE_BAR_FROM if show is None else show
    kind = "queries" if is_query else "documents"
    return auto_tqdm()(total=n_texts, disable=not visible, desc=f"Encoding {kind}")


def quiet_in_notebooks() -> None:
    """In a Jupyter kernel, import ``tqdm.auto`` now, quietly, before any other library does.

    Called when ``late_interaction`` is imported, so that a notebook importing it (or an
    adapter) before, say, a BM25 retriever does not show that library's first tqdm.auto import
    warning either. The bars themselves are what they would be. Outside a kernel: nothing.
    """
    if "ipykernel.zmqshell" in sys.modules:  # the condition under which tqdm.auto warns
        auto_tqdm()


@contextmanager
def no_loading_bar() -> Iterator[None]:
    """Hide transformers' per-load progress bar inside the block; restore every setting after.

    ``transformers.utils.logging.disable_progress_bar`` also switches Hugging Face Hub bars
    off, so the Hub's own setting is put back too (the block loads local files only).
    """
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars
    from transformers.utils import logging as hf_logging

    if not hf_logging.is_progress_bar_enabled():
        yield
        return
    hub_disabled = are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()
        if hub_disabled:
            disable_progress_bars()


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Load a model without library noise: no loading bar, transformers' log at ERROR.

    A normal load prints nothing: transformers' "Loading weights" bar, its load report (a
    Stanford checkpoint's top-level ``linear.weight`` is "UNEXPECTED" to ``BertModel``, as
    expected) and sentence-transformers' notes on legacy formats are kept out. With the
    ``late_interaction`` logger at DEBUG they are all shown, for diagnosing a load.
    """
    import logging

    auto_tqdm()  # before transformers imports tqdm.auto itself (see module docstring)
    from transformers.utils import logging as hf_logging

    if logging.getLogger("late_interaction").isEnabledFor(logging.DEBUG):
        yield
        return
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with no_loading_bar():
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
