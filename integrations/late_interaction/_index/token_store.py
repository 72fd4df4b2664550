"""The exact token store: every document's token matrix, one after another.

One contiguous ``(n_tokens, dim)`` float16/float32 array with int64 document offsets and an int32
map from token row to document slot. Exact MaxSim reads from here, never from Voyager (whose
vectors are normalised or quantised). Saved as ``.npy`` and loaded memory-mapped.

Slots are append-only: an upsert appends a new slot and marks the old one dead, so rows that a
concurrent reader may be looking at are never rewritten. ``compact()`` builds a new store.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from late_interaction._index.atomic import fsync_file
from late_interaction.exceptions import IndexFormatError

TOKENS_FILE = "embeddings.npy"
OFFSETS_FILE = "doc_offsets.npy"
TOKEN_DOC_FILE = "token_doc.npy"


def _grow(buffer: np.ndarray, needed: int) -> np.ndarray:
    """Return ``buffer`` or a larger in-RAM copy holding at least ``needed`` rows (doubling)."""
    if needed <= buffer.shape[0] and buffer.flags.writeable:
        return buffer
    capacity = max(needed, 2 * buffer.shape[0], 16)
    grown = np.empty((capacity, *buffer.shape[1:]), dtype=buffer.dtype)
    grown[: buffer.shape[0]] = buffer
    return grown


class TokenStore:
    """Append-only contiguous token matrix with document offsets.

    Rows past the published length may be written by the single writer while readers hold views
    of the published prefix; a buffer that must grow is copied, so old views stay valid.

    Args:
        dim: Token vector dimension.
        dtype: ``"float16"`` or ``"float32"``.
    """

    def __init__(self, dim: int, dtype: str = "float16") -> None:
        self.dim = int(dim)
        self.dtype = np.dtype(dtype)
        self._tokens = np.empty((0, self.dim), dtype=self.dtype)
        self._offsets = np.zeros(1, dtype=np.int64)
        self._token_doc = np.empty(0, dtype=np.int32)
        self.n_tokens = 0
        self.n_docs = 0

    def append(self, matrices: Sequence[np.ndarray]) -> tuple[int, int]:
        """Append token matrices as new document slots.

        Args:
            matrices: float arrays of shape ``(n_tokens_i, dim)``, ``n_tokens_i >= 1``.

        Returns:
            ``(first_slot, first_row)`` of the appended data.
        """
        lengths = np.fromiter((m.shape[0] for m in matrices), dtype=np.int64, count=len(matrices))
        first_slot, first_row = self.n_docs, self.n_tokens
        end_row = first_row + int(lengths.sum())
        self._tokens = _grow(self._tokens, end_row)
        self._token_doc = _grow(self._token_doc, end_row)
        self._offsets = _grow(self._offsets, first_slot + len(matrices) + 1)
        row = first_row
        for slot, matrix in enumerate(matrices, start=first_slot):
            self._tokens[row : row + matrix.shape[0]] = matrix
            self._token_doc[row : row + matrix.shape[0]] = slot
            row += matrix.shape[0]
        self._offsets[first_slot + 1 : first_slot + len(matrices) + 1] = first_row + np.cumsum(
            lengths
        )
        self.n_tokens, self.n_docs = end_row, first_slot + len(matrices)
        return first_slot, first_row

    def views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(tokens, offsets, token_doc)`` views of the published data (do not write)."""
        return (
            self._tokens[: self.n_tokens],
            self._offsets[: self.n_docs + 1],
            self._token_doc[: self.n_tokens],
        )

    def compacted(self, keep_slots: np.ndarray) -> TokenStore:
        """Return a new store holding only ``keep_slots`` (in that order), renumbered from 0."""
        new = TokenStore(self.dim, self.dtype.name)
        tokens, offsets, _ = self.views()
        new.append([tokens[offsets[s] : offsets[s + 1]] for s in keep_slots.tolist()])
        return new

    def nbytes(self) -> int:
        """Bytes of the published arrays (tokens + offsets + token map)."""
        return sum(a.nbytes for a in self.views())

    def save(self, folder: Path) -> None:
        """Write the three ``.npy`` files into ``folder`` (fsynced)."""
        tokens, offsets, token_doc = self.views()
        for name, array in (
            (TOKENS_FILE, tokens),
            (OFFSETS_FILE, offsets),
            (TOKEN_DOC_FILE, token_doc),
        ):
            with open(folder / name, "wb") as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
                fsync_file(f)

    @classmethod
    def load(cls, folder: Path, *, dim: int, dtype: str, n_docs: int, n_tokens: int) -> TokenStore:
        """Load the arrays written by :meth:`save`; the token matrix is memory-mapped.

        Raises:
            IndexFormatError: If a file is missing, unreadable or of the wrong shape or dtype.
        """
        store = cls(dim, dtype)
        expected = {
            TOKENS_FILE: ((n_tokens, dim), store.dtype),
            OFFSETS_FILE: ((n_docs + 1,), np.dtype(np.int64)),
            TOKEN_DOC_FILE: ((n_tokens,), np.dtype(np.int32)),
        }
        arrays = {}
        for name, (shape, dt) in expected.items():
            try:
                array = np.load(folder / name, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                msg = (
                    f"cannot read {folder / name}: {exc}. The index folder is damaged; rebuild it."
                )
                raise IndexFormatError(msg) from exc
            if array.shape != shape or array.dtype != dt:
                msg = (
                    f"{folder / name} holds {array.dtype}{array.shape}; expected {dt}{shape}. "
                    "The index folder is damaged or mixes files of two saves; rebuild it."
                )
                raise IndexFormatError(msg)
            arrays[name] = array
        # Offsets and the token map are small: keep them in RAM so appends need no copy of them.
        store._tokens = arrays[TOKENS_FILE]
        store._offsets = np.array(arrays[OFFSETS_FILE])
        store._token_doc = np.array(arrays[TOKEN_DOC_FILE])
        lengths = np.diff(store._offsets)
        if store._offsets[0] != 0 or store._offsets[-1] != n_tokens or (lengths < 1).any():
            msg = f"{folder / OFFSETS_FILE} is not a valid offset array; rebuild the index."
            raise IndexFormatError(msg)
        store.n_docs, store.n_tokens = n_docs, n_tokens
        return store
