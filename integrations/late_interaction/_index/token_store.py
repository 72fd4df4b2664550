"""The token store: every document's token matrix, one after another, exact or compressed.

Exact (no codec): one contiguous ``(n_tokens, dim)`` float16/float32 array. Compressed (a
:class:`~late_interaction._index.codec.ResidualCodec`): per token a centroid id and its packed
residual, decoded on read (:class:`~late_interaction._index.codec.DecodedRows`). Either way with
int64 document offsets; the exact store also keeps an int32 map from token row to document slot
(the token HNSW answers with token rows). A compressed store has no such map (4 bytes per token,
a tenth of its size): its candidates come from inverted lists of slots, and the slots of new rows
follow from the offsets (:meth:`TokenStore.row_slots`). Exact MaxSim reads from here, never from
Voyager (whose vectors are normalised or quantised). Saved as ``.npy`` and loaded memory-mapped.

The exact rows grow in RAM (a doubling copy). The compressed rows grow in an append-only scratch
file (:class:`~late_interaction._index.file_rows.FileRows`): nothing that exists is copied, so
adding to a compressed index needs RAM for the chunk, not for the corpus.

Slots are append-only: an upsert appends a new slot and marks the old one dead, so rows that a
concurrent reader may be looking at are never rewritten. ``compact()`` builds a new store.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from late_interaction._index.codec import DecodedRows, ResidualCodec
from late_interaction._index.file_rows import FileRows
from late_interaction._index.token_store_files import (
    CODES_FILE,
    RESIDUALS_FILE,
    TOKENS_FILE,
    load_store,
    save_store,
)

_UNIT_TOLERANCE = 1e-2  # float16 inputs are unit to ~1e-3


def _grow(buffer: np.ndarray, needed: int, *, exact: bool = False) -> np.ndarray:
    """Return ``buffer`` or a larger in-RAM copy of at least ``needed`` rows (doubling; exact)."""
    if needed <= buffer.shape[0] and buffer.flags.writeable:
        return buffer
    capacity = max(needed, 16) if exact else max(needed, 2 * buffer.shape[0], 16)
    grown = np.empty((capacity, *buffer.shape[1:]), dtype=buffer.dtype)
    grown[: buffer.shape[0]] = buffer
    return grown


class TokenStore:
    """Append-only contiguous token rows (exact or compressed) with document offsets.

    Rows past the published length may be written by the single writer while readers hold views
    of the published prefix; an exact buffer that must grow is copied and a compressed row file
    only grows, so old views stay valid.

    Args:
        dim: Token vector dimension.
        dtype: ``"float16"`` or ``"float32"``: precision of the exact rows (no codec).
        codec: A trained residual codec: rows are stored as centroid ids + packed residuals
            and decoded on read. Vectors must then be unit-norm (ColBERT's output).
    """

    def __init__(
        self, dim: int, dtype: str = "float16", codec: ResidualCodec | None = None
    ) -> None:
        self.dim = int(dim)
        self.dtype = np.dtype(dtype)
        self.codec = codec
        if codec is not None and codec.dim != self.dim:
            msg = f"the codec is for dim {codec.dim}; the store holds dim {self.dim}."
            raise ValueError(msg)
        self._rows: dict[str, Any] = {  # exact: ndarray grown in RAM; compressed: FileRows
            name: np.empty(shape, dt) if codec is None else FileRows(shape[1:], dt)
            for name, (shape, dt) in self._row_specs(0).items()
        }
        self.appended_codes = np.empty(0, np.int32)  # centroid ids of the latest append (in RAM)
        self._offsets = np.zeros(1, dtype=np.int64)
        self._token_doc = np.empty(0, dtype=np.int32)
        self.n_tokens = 0
        self.n_docs = 0
        # Residuals of the tokens encoded so far: [tokens, sum of squared norms] overall and for
        # the latest batch appended (compared with codec.trained_residual by drift()).
        self._drift = np.zeros(4, dtype=np.float64)

    def _row_specs(self, n_tokens: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """File name -> (shape, dtype) of each per-token array."""
        if self.codec is None:
            return {TOKENS_FILE: ((n_tokens, self.dim), self.dtype)}
        return {
            CODES_FILE: ((n_tokens,), self.codec.code_dtype),
            RESIDUALS_FILE: ((n_tokens, self.codec.packed_width), np.dtype(np.uint8)),
        }

    def _encode(self, tokens: np.ndarray) -> dict[str, np.ndarray]:
        if self.codec is None:
            return {TOKENS_FILE: tokens}
        tokens = np.asarray(tokens, dtype=np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", tokens, tokens))
        if tokens.shape[0] and np.abs(norms - 1.0).max() > _UNIT_TOLERANCE:
            msg = (
                "a compressed index (IndexConfig.nbits) stores unit-norm token vectors, as ColBERT "
                f"encoders produce; got norms from {norms.min():.3f} to {norms.max():.3f}. "
                "Normalise the embeddings or use nbits=None (the exact store)."
            )
            raise ValueError(msg)
        codes, residuals, error = self.codec.encode_with_error(tokens)
        n = tokens.shape[0]
        self._drift = np.array([self._drift[0] + n, self._drift[1] + error, n, error])
        self.appended_codes = codes
        return {CODES_FILE: codes, RESIDUALS_FILE: residuals}

    def append(self, matrices: Sequence[np.ndarray]) -> tuple[int, int]:
        """Append token matrices as new document slots.

        Args:
            matrices: float arrays of shape ``(n_tokens_i, dim)``, ``n_tokens_i >= 1``.

        Returns:
            ``(first_slot, first_row)`` of the appended data.

        Raises:
            ValueError: If the store is compressed and a vector is not unit-norm.
        """
        lengths = np.fromiter((m.shape[0] for m in matrices), dtype=np.int64, count=len(matrices))
        first_slot, first_row = self.n_docs, self.n_tokens
        end_row = first_row + int(lengths.sum())
        encoded = self._encode(np.concatenate(matrices) if matrices else np.empty((0, self.dim)))
        for name, rows in encoded.items():
            if self.codec is not None:
                self._rows[name].write(first_row, rows)
                continue
            self._rows[name] = _grow(self._rows[name], end_row)
            self._rows[name][first_row:end_row] = rows
        if self.codec is None:
            self._token_doc = _grow(self._token_doc, end_row)
            self._token_doc[first_row:end_row] = np.repeat(
                np.arange(first_slot, first_slot + len(matrices), dtype=np.int32), lengths
            )
        self._offsets = _grow(self._offsets, first_slot + len(matrices) + 1)
        self._offsets[first_slot + 1 : first_slot + len(matrices) + 1] = first_row + np.cumsum(
            lengths
        )
        self.n_tokens, self.n_docs = end_row, first_slot + len(matrices)
        return first_slot, first_row

    def reserve(self, n_docs: int, n_tokens: int) -> None:
        """Grow the buffers to hold ``n_docs`` more slots of ``n_tokens`` more rows in total.

        A caller that knows the size of a bulk append grows once to it: no doubling, and no
        old and new buffer side by side per doubling.
        """
        end_row, end_slot = self.n_tokens + int(n_tokens), self.n_docs + int(n_docs)
        if self.codec is None:  # compressed rows grow in a file; the token map is derived
            self._rows[TOKENS_FILE] = _grow(self._rows[TOKENS_FILE], end_row, exact=True)
            self._token_doc = _grow(self._token_doc, end_row, exact=True)
        self._offsets = _grow(self._offsets, end_slot + 1, exact=True)

    def truncate(self, n_docs: int, n_tokens: int, *, keep_rows: int) -> bool:
        """Drop the slots appended after ``n_docs`` slots and ``n_tokens`` rows (a rollback).

        Args:
            n_docs: Slots to keep.
            n_tokens: Rows of those slots.
            keep_rows: Rows the HNSW graph already holds; if more than ``n_tokens``, rows
                ``n_tokens:keep_rows`` stay as one extra slot (the caller marks it dead), so
                graph ids keep equal to token rows.

        Returns:
            Whether that extra slot was kept.

        Raises:
            RuntimeError: If ``keep_rows`` rows were never appended (a broken invariant).
        """
        if keep_rows <= n_tokens:
            self.n_docs, self.n_tokens = n_docs, n_tokens
            return False
        if keep_rows > self.n_tokens:
            msg = f"the graph holds {keep_rows} token rows; the store only {self.n_tokens}."
            raise RuntimeError(msg)
        # Rows and offsets beyond the published prefix: no reader's view reaches them.
        self._offsets[n_docs + 1] = keep_rows
        self._token_doc[n_tokens:keep_rows] = n_docs
        self.n_docs, self.n_tokens = n_docs + 1, keep_rows
        return True

    def row_slots(self, first_slot: int) -> np.ndarray:
        """Slot of every published token row of slots ``first_slot`` onwards (int32).

        Derived from the offsets, so a compressed store needs no stored token map.
        """
        offsets = self._offsets[first_slot : self.n_docs + 1]
        slots = np.arange(first_slot, self.n_docs, dtype=np.int32)
        return np.repeat(slots, np.diff(offsets))

    def code_chunks(self, rows: int = 1 << 20) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(codes, slots)`` of a compressed store's published tokens, ~``rows`` at a time.

        Whole slots per chunk, read with file reads (not through the map): what a rebuild of
        the inverted lists takes without holding every token's code and slot at once.
        """
        codes, offsets = self._rows[CODES_FILE], self._offsets[: self.n_docs + 1]
        cuts = np.unique(
            np.r_[np.searchsorted(offsets, np.arange(0, offsets[-1], rows)), self.n_docs]
        )
        first = 0
        for last in cuts[cuts > 0].tolist():
            slots = np.arange(first, last, dtype=np.int32)
            yield (
                codes.read(offsets[first], offsets[last]),
                np.repeat(slots, np.diff(offsets[first : last + 1])),
            )
            first = last

    def drift(self) -> dict[str, float | int | None]:
        """Mean squared residual of encoded tokens against the codec's training value.

        Returns:
            ``trained_residual`` (held-out training vectors; None if unknown), ``encoded_tokens``
            and their ``mean_residual``, ``last_batch_tokens`` and ``last_batch_residual`` (the
            latest append), and ``ratio`` = mean over trained (None if either is unknown).
        """
        trained = None if self.codec is None else self.codec.trained_residual
        n, total, last_n, last_total = self._drift.tolist()
        mean = total / n if n else None
        return {
            "trained_residual": trained,
            "encoded_tokens": int(n),
            "mean_residual": mean,
            "last_batch_tokens": int(last_n),
            "last_batch_residual": last_total / last_n if last_n else None,
            "ratio": mean / trained if mean is not None and trained else None,
        }

    def codes(self) -> np.ndarray | None:
        """Centroid id of each published token (None for an exact store)."""
        return None if self.codec is None else self._rows[CODES_FILE].view(self.n_tokens)

    def views(self) -> tuple[Any, np.ndarray, np.ndarray]:
        """Return ``(tokens, offsets, token_doc)`` views of the published data (do not write).

        ``tokens`` is the exact array, or for a compressed store a :class:`DecodedRows` that
        decodes the rows it is indexed with. ``token_doc`` is empty for a compressed store (see
        :meth:`row_slots`).
        """
        n = self.n_tokens
        if self.codec is None:
            tokens: Any = self._rows[TOKENS_FILE][:n]
        else:
            rows = self._rows
            tokens = DecodedRows(self.codec, rows[CODES_FILE].view(n), rows[RESIDUALS_FILE].view(n))
        token_doc = self._token_doc[:n] if self.codec is None else self._token_doc[:0]
        return tokens, self._offsets[: self.n_docs + 1], token_doc

    def compacted(self, keep_slots: np.ndarray) -> TokenStore:
        """Return a new store holding only ``keep_slots`` (in that order), renumbered from 0.

        Stored rows are copied as they are (compressed rows are not decoded and re-encoded;
        they are copied file to file a window at a time when ``keep_slots`` ascend).
        """
        new = TokenStore(self.dim, self.dtype.name, self.codec)
        offsets = self._offsets[: self.n_docs + 1]
        starts, lengths = offsets[keep_slots], np.diff(offsets)[keep_slots]
        local = np.concatenate([[0], np.cumsum(lengths)])
        rows = np.repeat(starts - local[:-1], lengths) + np.arange(local[-1])
        if self.codec is None:
            new._rows = {name: array[rows] for name, array in self._rows.items()}
        elif len(rows) and np.all(np.diff(keep_slots) > 0):
            new._rows = {name: f.gathered(rows, self.n_tokens) for name, f in self._rows.items()}
        else:  # slots out of order: gather through the map (touches the rows read)
            for name, f in self._rows.items():
                new._rows[name].write(0, f.view(self.n_tokens)[rows])
        if self.codec is None:
            new._token_doc = np.repeat(np.arange(len(keep_slots), dtype=np.int32), lengths)
        new._offsets = local.astype(np.int64)
        new.n_tokens, new.n_docs = int(local[-1]), len(keep_slots)
        new._drift = self._drift.copy()
        return new

    def nbytes(self) -> int:
        """Bytes of the published arrays (rows + offsets + the exact store's token map)."""
        n = self.n_tokens
        rows = sum(
            array[:n].nbytes if self.codec is None else n * array.row_bytes
            for array in self._rows.values()
        )
        token_doc = self._token_doc[:n].nbytes if self.codec is None else 0
        return rows + self._offsets[: self.n_docs + 1].nbytes + token_doc

    def save(self, folder: Path) -> None:
        """Write the ``.npy`` files into ``folder`` (fsynced; compressed rows file to file)."""
        save_store(self, folder)

    @classmethod
    def load(
        cls,
        folder: Path,
        *,
        dim: int,
        dtype: str,
        n_docs: int,
        n_tokens: int,
        codec: ResidualCodec | None = None,
    ) -> TokenStore:
        """Load the arrays written by :meth:`save`; the per-token rows are memory-mapped.

        Nothing per-token is read into RAM (see :func:`token_store_files.load_store`).

        Raises:
            IndexFormatError: If a file is missing, unreadable or of the wrong shape or dtype.
        """
        store = cls(dim, dtype, codec)
        load_store(store, folder, n_docs=n_docs, n_tokens=n_tokens)
        return store
