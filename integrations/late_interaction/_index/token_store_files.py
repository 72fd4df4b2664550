"""The files of a :class:`~late_interaction._index.token_store.TokenStore`: save and load.

One ``.npy`` per array. Exact rows are written from RAM; compressed rows
(:class:`~late_interaction._index.file_rows.FileRows`) are copied file to file and loaded as
read-only maps that a later append copies file to file too, so neither a save nor a load reads
the corpus's rows into RAM. Offsets and the exact store's token map are small and loaded into RAM
so that appends need no copy of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from late_interaction._index.atomic import fsync_file
from late_interaction._index.file_rows import FileRows
from late_interaction.exceptions import IndexFormatError

if TYPE_CHECKING:  # pragma: no cover
    from late_interaction._index.token_store import TokenStore

TOKENS_FILE = "embeddings.npy"
CODES_FILE = "codes.npy"
RESIDUALS_FILE = "residuals.npy"
OFFSETS_FILE = "doc_offsets.npy"
TOKEN_DOC_FILE = "token_doc.npy"
DRIFT_FILE = "codec_drift.npy"  # float64 [trained residual, tokens, sum, last tokens, last sum]


def save_store(store: TokenStore, folder: Path) -> None:
    """Write the ``.npy`` files of ``store`` into ``folder`` (fsynced)."""
    arrays: dict[str, Any] = dict(store._rows)
    arrays[OFFSETS_FILE] = store._offsets[: store.n_docs + 1]
    if store.codec is None:
        arrays[TOKENS_FILE] = store._rows[TOKENS_FILE][: store.n_tokens]
        arrays[TOKEN_DOC_FILE] = store._token_doc[: store.n_tokens]
    else:
        trained = store.codec.trained_residual
        arrays[DRIFT_FILE] = np.r_[np.nan if trained is None else trained, store._drift]
    for name, array in arrays.items():
        with open(folder / name, "wb") as f:
            if isinstance(array, FileRows):
                array.save(f, store.n_tokens)
            else:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
            fsync_file(f)


def load_store(store: TokenStore, folder: Path, *, n_docs: int, n_tokens: int) -> None:
    """Fill the empty ``store`` from the files :func:`save_store` wrote (rows memory-mapped).

    A compressed folder's ``token_doc.npy`` (written before the map was derived from the
    offsets) is ignored.

    Raises:
        IndexFormatError: If a file is missing, unreadable or of the wrong shape or dtype.
    """
    codec = store.codec
    expected = dict(store._row_specs(n_tokens))
    expected[OFFSETS_FILE] = ((n_docs + 1,), np.dtype(np.int64))
    if codec is None:
        expected[TOKEN_DOC_FILE] = ((n_tokens,), np.dtype(np.int32))
    arrays = {}
    for name, (shape, dt) in expected.items():
        try:
            array = np.load(folder / name, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            msg = f"cannot read {folder / name}: {exc}. The index folder is damaged; rebuild it."
            raise IndexFormatError(msg) from exc
        if array.shape != shape or array.dtype != dt:
            msg = (
                f"{folder / name} holds {array.dtype}{array.shape}; expected {dt}{shape}. "
                "The index folder is damaged or mixes files of two saves; rebuild it."
            )
            raise IndexFormatError(msg)
        arrays[name] = array
    store._rows = {
        name: arrays[name] if codec is None else FileRows(shape[1:], dt, saved=arrays[name])
        for name, (shape, dt) in store._row_specs(n_tokens).items()
    }
    store._offsets = np.array(arrays[OFFSETS_FILE])
    if codec is None:
        store._token_doc = np.array(arrays[TOKEN_DOC_FILE])
    elif (folder / DRIFT_FILE).exists():  # absent from folders saved before it existed
        stats = np.load(folder / DRIFT_FILE, allow_pickle=False)
        if stats.shape == (5,) and np.isfinite(stats[1:]).all():
            codec.trained_residual = None if np.isnan(stats[0]) else float(stats[0])
            store._drift = stats[1:].astype(np.float64)
    lengths = np.diff(store._offsets)
    if store._offsets[0] != 0 or store._offsets[-1] != n_tokens or (lengths < 1).any():
        msg = f"{folder / OFFSETS_FILE} is not a valid offset array; rebuild the index."
        raise IndexFormatError(msg)
    store.n_docs, store.n_tokens = n_docs, n_tokens
