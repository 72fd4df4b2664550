"""What a :class:`~late_interaction.LateInteractionIndex` keeps besides the HNSW graph.

* :class:`TokenStore`: every document's token matrix, one after another in one contiguous
  ``(n_tokens, dim)`` float16/float32 array, with int64 document offsets and an int32 map from
  token row to document slot. Exact MaxSim reads from here, never from Voyager (whose vectors are
  normalised or quantised). Saved as ``.npy`` and loaded memory-mapped.
* :class:`DocumentStore`: per slot the caller's string id, text and JSON metadata, plus a live
  mask; saved as ``docs.jsonl``.
* :func:`score_slots`: exact MaxSim of one query against chosen slots, in bounded chunks.

Slots are append-only: an upsert appends a new slot and marks the old one dead, so rows that a
concurrent reader may be looking at are never rewritten. ``compact()`` builds new stores.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from late_interaction.exceptions import DimensionMismatchError, IndexFormatError
from late_interaction.scoring import maxsim_packed

__all__ = [
    "DocumentStore",
    "TokenStore",
    "as_list",
    "as_token_matrices",
    "validate_documents",
    "fsync_file",
    "normalise_metadata",
    "score_slots",
]

logger = logging.getLogger(__name__)

TOKENS_FILE = "embeddings.npy"
OFFSETS_FILE = "doc_offsets.npy"
TOKEN_DOC_FILE = "token_doc.npy"
DOCS_FILE = "docs.jsonl"


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


def fsync_file(f: Any) -> None:
    """Flush a file object and fsync it, so its bytes survive a crash."""
    f.flush()
    os.fsync(f.fileno())


def normalise_metadata(metadata: Any, position: int) -> dict[str, Any]:
    """Validate metadata and return the JSON round-tripped copy that the index keeps.

    Args:
        metadata: A mapping with string keys and JSON-serialisable values (or None for ``{}``).
        position: Position of the document in the caller's batch, for the error message.

    Returns:
        A new dict equal to what a save/load round trip gives back (tuples become lists).

    Raises:
        TypeError: If ``metadata`` is not a mapping with string keys.
        ValueError: If a value is not JSON-serialisable (NaN and infinity included).
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        msg = f"metadatas[{position}] must be a dict; got {type(metadata).__name__}."
        raise TypeError(msg)
    bad_keys = [k for k in metadata if not isinstance(k, str)]
    if bad_keys:
        msg = f"metadatas[{position}] keys must be strings; got {bad_keys[:5]!r}."
        raise TypeError(msg)
    try:
        return json.loads(json.dumps(dict(metadata), allow_nan=False))
    except (TypeError, ValueError) as exc:
        msg = (
            f"metadatas[{position}] is not JSON-serialisable ({exc}). Metadata is saved as JSON: "
            "use str, int, float (finite), bool, None, lists and dicts only."
        )
        raise ValueError(msg) from exc


class DocumentStore:
    """Per-slot id, text and metadata.

    Lists are append-only, so a reader holding a slot count sees fixed data below it. Which slots
    are live is tracked by the caller (a mask it replaces rather than writes in place).
    """

    def __init__(self) -> None:
        self.ids: list[str | None] = []
        self.texts: list[str] = []
        self.metadatas: list[dict[str, Any]] = []

    def append(self, ids: Sequence[str], texts: Sequence[str], metadatas: Sequence[dict]) -> None:
        """Append slots (the caller publishes them as live)."""
        self.ids.extend(ids)
        self.texts.extend(texts)
        self.metadatas.extend(metadatas)

    def save(self, folder: Path, live: np.ndarray) -> None:
        """Write ``docs.jsonl``: one line per slot, ``{"deleted": true}`` for dead slots."""
        with open(folder / DOCS_FILE, "w", encoding="utf-8") as f:
            for slot, alive in enumerate(live.tolist()):
                if alive:
                    record = {
                        "id": self.ids[slot],
                        "text": self.texts[slot],
                        "metadata": self.metadatas[slot],
                    }
                else:
                    record = {"deleted": True}
                f.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
            fsync_file(f)

    @classmethod
    def load(cls, folder: Path, n_docs: int) -> tuple[DocumentStore, np.ndarray]:
        """Read ``docs.jsonl`` written by :meth:`save`; return the store and its live mask.

        Raises:
            IndexFormatError: If the file is missing, not JSON lines, or has the wrong length.
        """
        store = cls()
        live = []
        try:
            with open(folder / DOCS_FILE, encoding="utf-8") as f:
                for line in f:
                    record = json.loads(line)
                    alive = not record.get("deleted", False)
                    live.append(alive)
                    store.ids.append(str(record["id"]) if alive else None)
                    store.texts.append(str(record["text"]) if alive else "")
                    store.metadatas.append(dict(record["metadata"]) if alive else {})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            msg = f"cannot read {folder / DOCS_FILE}: {exc!r}. The index folder is damaged."
            raise IndexFormatError(msg) from exc
        if len(live) != n_docs:
            msg = f"{folder / DOCS_FILE} has {len(live)} records; config.json says {n_docs}."
            raise IndexFormatError(msg)
        return store, np.array(live, dtype=bool)


def score_slots(
    query: np.ndarray,
    tokens: np.ndarray,
    offsets: np.ndarray,
    slots: np.ndarray,
    *,
    chunk_tokens: int = 16_384,
) -> np.ndarray:
    """Exact MaxSim of ``query`` against the documents in ``slots`` of a token store.

    Args:
        query: float32 query matrix. Shape: ``(n_query_tokens, dim)``.
        tokens: Token store rows. Shape: ``(n_tokens, dim)``.
        offsets: Slot offsets into ``tokens``. Shape: ``(n_slots + 1,)``.
        slots: Slot numbers to score, ascending. Shape: ``(n,)``.
        chunk_tokens: Rows gathered (and widened to float32) at a time, bounding temporary RAM.

    Returns:
        float32 scores aligned with ``slots``.
    """
    out = np.empty(len(slots), dtype=np.float32)
    if len(slots) == 0:
        return out
    starts = offsets[slots]
    lengths = offsets[slots + 1] - starts
    ends = np.cumsum(lengths)
    cuts = np.searchsorted(ends, np.arange(chunk_tokens, ends[-1], chunk_tokens), side="left") + 1
    edges = np.unique(np.concatenate([[0], cuts, [len(slots)]]))
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        s, n = starts[a:b], lengths[a:b]
        local = np.zeros(b - a + 1, dtype=np.int64)
        np.cumsum(n, out=local[1:])
        if (s[1:] == s[:-1] + n[:-1]).all():  # adjacent slots: a slice, no gather
            rows = tokens[s[0] : s[0] + local[-1]]
        else:
            rows = tokens[np.repeat(s - local[:-1], n) + np.arange(local[-1])]
        out[a:b] = maxsim_packed(query, rows, local)
    return out


def as_list(values: Any, name: str) -> list[Any]:
    """Return ``values`` as a list; a bare string is one item, not a sequence of characters."""
    if isinstance(values, str):
        return [values]
    try:
        return list(values)
    except TypeError as exc:
        msg = f"{name} must be a string or a sequence of them; got {type(values).__name__}."
        raise TypeError(msg) from exc


def validate_documents(
    texts: list[Any], ids: Any, metadatas: Any
) -> tuple[list[str], list[dict[str, Any]]]:
    """Check texts, ids and metadatas of one ``add`` call; generate missing ids.

    Returns:
        ``(ids, metadatas)``: one string id (uuid4 hex if none given) and one normalised
        metadata dict per text.

    Raises:
        TypeError: On non-string texts or ids, or non-dict metadata.
        ValueError: On length mismatches, duplicate ids, or non-JSON metadata.
    """
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        msg = f"texts must be strings; positions {bad[:5]} hold {type(texts[bad[0]]).__name__}."
        raise TypeError(msg)
    if ids is None:
        id_list = [uuid.uuid4().hex for _ in texts]
    else:
        id_list = as_list(ids, "ids")
        if len(id_list) != len(texts):
            msg = f"got {len(id_list)} ids for {len(texts)} texts; pass one id per text."
            raise ValueError(msg)
        wrong = [i for i in id_list if not isinstance(i, str) or not i]
        if wrong:
            msg = f"ids must be non-empty strings; got {wrong[:5]!r}. Convert them with str()."
            raise TypeError(msg)
        counts = Counter(id_list)
        dups = sorted(i for i, c in counts.items() if c > 1)
        if dups:
            msg = f"duplicate ids in one call: {dups[:10]}; each id may appear once per call."
            raise ValueError(msg)
    metas = [None] * len(texts) if metadatas is None else as_list(metadatas, "metadatas")
    if len(metas) != len(texts):
        msg = f"got {len(metas)} metadatas for {len(texts)} texts; pass one (or None) per text."
        raise ValueError(msg)
    return id_list, [normalise_metadata(m, i) for i, m in enumerate(metas)]


def as_token_matrices(embeddings: Sequence[Any], dim: int, what: str) -> list[np.ndarray]:
    """Convert token matrices (numpy or torch) to float32 and check their shape.

    Args:
        embeddings: Matrices of shape ``(n_tokens, dim)``, ``n_tokens >= 1``.
        dim: The index's dimension.
        what: ``"embeddings"`` or ``"query"``, for messages.

    Raises:
        DimensionMismatchError: If a matrix's dim differs from ``dim``.
        ValueError: If a matrix is not 2-D, has no rows, or holds NaN/inf.
    """
    out = []
    for i, emb in enumerate(embeddings):
        matrix = np.asarray(emb.detach().cpu() if hasattr(emb, "detach") else emb, np.float32)
        if matrix.ndim != 2 or matrix.shape[0] < 1:
            msg = f"{what}[{i}] must be a (n_tokens >= 1, dim) matrix; got shape {matrix.shape}."
            raise ValueError(msg)
        if matrix.shape[1] != dim:
            msg = (
                f"{what}[{i}] has dim {matrix.shape[1]}; the index holds dim {dim}. "
                "Encode with the index's model."
            )
            raise DimensionMismatchError(msg)
        if not np.isfinite(matrix).all():
            msg = f"{what}[{i}] holds NaN or infinite values."
            raise ValueError(msg)
        out.append(matrix)
    return out
