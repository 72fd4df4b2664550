"""One dense vector per document slot, kept beside its tokens for the fused score.

The vector is the text's mean-pooled backbone output (``ColBERT.encode_documents(...,
return_dense=True)``); search fuses its cosine with MaxSim when the index's ``dense_weight`` is
above 0 (``late_interaction.fusion``). Rows are append-only like the token store (a slot's row is
never rewritten), saved as ``dense.npy`` in the index folder and loaded memory-mapped. An index
holds a vector for every slot or for none: an index built before dense vectors existed (or with
fusion off) has none and ranks by MaxSim alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from late_interaction._index.atomic import fsync_file
from late_interaction._index.token_store import _grow
from late_interaction.exceptions import IndexFormatError

DENSE_FILE = "dense.npy"


class DenseStore:
    """Append-only ``(n_slots, dense_dim)`` rows, one per document slot.

    Args:
        dense_dim: Width of the dense vectors (the backbone's hidden size).
        dtype: Storage precision. float32 (the default) keeps the cosine exact at ~1% of the
            size of the document's token rows.
    """

    def __init__(self, dense_dim: int, dtype: str = "float32") -> None:
        self.dense_dim = int(dense_dim)
        self._rows = np.empty((0, self.dense_dim), np.dtype(dtype))
        self.n = 0

    @staticmethod
    def checked(vectors: object, n: int) -> np.ndarray:
        """``vectors`` as a float32 ``(n, dense_dim)`` array of finite values.

        Raises:
            ValueError: If the shape is not ``(n, d)`` or a value is not finite.
        """
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != n or array.shape[1] < 1:
            msg = (
                f"dense must be an array of shape (n_documents={n}, dense_dim), one vector per "
                f"document (encode_documents(..., return_dense=True)); got shape {array.shape}."
            )
            raise ValueError(msg)
        if not np.isfinite(array).all():
            msg = "dense vectors hold NaN or infinite values; pass finite vectors."
            raise ValueError(msg)
        return array

    def append(self, vectors: np.ndarray) -> None:
        """Append one row per new slot (the caller checked the shape with :meth:`checked`).

        Raises:
            ValueError: If the width differs from the stored vectors'.
        """
        if vectors.shape[1] != self.dense_dim:
            msg = (
                f"dense vectors of width {vectors.shape[1]} cannot join an index whose dense "
                f"vectors have width {self.dense_dim}; use the encoder that built the index."
            )
            raise ValueError(msg)
        end = self.n + vectors.shape[0]
        rows = _grow(self._rows, end)
        rows[self.n : end] = vectors
        self._rows, self.n = rows, end  # a grown buffer is published after it is filled

    def rows(self, slots: np.ndarray) -> np.ndarray:
        """float32 rows of ``slots`` (each below the count a reader's snapshot holds)."""
        return np.asarray(self._rows[slots], dtype=np.float32)

    def save(self, folder: Path) -> None:
        """Write ``dense.npy`` into ``folder`` (fsynced)."""
        with open(folder / DENSE_FILE, "wb") as f:
            np.save(f, np.ascontiguousarray(self._rows[: self.n]), allow_pickle=False)
            fsync_file(f)

    @classmethod
    def load(cls, folder: Path, n_docs: int) -> DenseStore:
        """Read ``dense.npy`` memory-mapped.

        Raises:
            IndexFormatError: If it is unreadable or does not hold one row per slot.
        """
        try:
            array = np.load(folder / DENSE_FILE, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            msg = f"cannot read {folder / DENSE_FILE}: {exc}. The index folder is damaged."
            raise IndexFormatError(msg) from exc
        if array.ndim != 2 or array.shape[0] != n_docs:
            msg = f"{folder / DENSE_FILE} holds {array.shape}; expected ({n_docs}, dense_dim)."
            raise IndexFormatError(msg)
        store = cls(array.shape[1], array.dtype.name)
        store._rows, store.n = array, n_docs
        return store
