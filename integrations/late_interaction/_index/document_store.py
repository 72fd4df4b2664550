"""The document store: per slot the caller's string id, text and JSON metadata.

Saved as ``docs.jsonl`` (one line per slot, ``{"deleted": true}`` for dead slots), and the
slots' dense vectors, if the index keeps them, as ``dense.npy`` (``dense_store.py``). Lists are
append-only, so a reader holding a slot count sees fixed data below it; which slots are live is
tracked by the index (a mask it replaces rather than writes in place).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from late_interaction._index.atomic import fsync_file
from late_interaction._index.dense_store import DenseStore
from late_interaction._validation import as_list, check_unicode
from late_interaction.exceptions import IndexFormatError

DOCS_FILE = "docs.jsonl"


MAX_METADATA_DEPTH = 32  # nesting levels of dicts/lists; json would recurse ~1000 deep


def _check_values(metadata: Mapping[str, Any], position: int) -> None:
    """Bound the nesting depth and check every string (keys too) is valid Unicode.

    Iterative, so a 5,000-level dict gets this error and not a ``RecursionError``.
    """
    stack: list[tuple[Any, str, int]] = [(metadata, f"metadatas[{position}]", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            check_unicode(value, path)
            continue
        if isinstance(value, Mapping):
            for key in value:
                if isinstance(key, str):
                    check_unicode(key, f"a key of {path}")
            children = [(v, f"{path}[{k!r}]") for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            children = [(v, f"{path}[{i}]") for i, v in enumerate(value)]
        else:
            continue
        if depth > MAX_METADATA_DEPTH and children:
            where = path if len(path) <= 80 else f"{path[:60]}...{path[-10:]}"
            msg = (
                f"{where} is nested more than {MAX_METADATA_DEPTH} levels deep (dicts and "
                "lists); flatten the metadata (e.g. join a key path into one key)."
            )
            raise ValueError(msg)
        stack.extend((child, child_path, depth + 1) for child, child_path in children)


def normalise_metadata(metadata: Any, position: int) -> dict[str, Any]:
    """Validate metadata and return the JSON round-tripped copy that the index keeps.

    Args:
        metadata: A mapping with string keys and JSON-serialisable values (or None for ``{}``).
        position: Position of the document in the caller's batch, for the error message.

    Returns:
        A new dict equal to what a save/load round trip gives back (tuples become lists).

    Raises:
        TypeError: If ``metadata`` is not a mapping with string keys.
        ValueError: If a value is not JSON-serialisable (NaN and infinity included), a string
            is not valid Unicode, or it nests deeper than ``MAX_METADATA_DEPTH``.
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
    _check_values(metadata, position)
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
        self.dense: DenseStore | None = None  # one dense vector per slot, or none at all

    def check_dense(self, dense: np.ndarray | None) -> None:
        """Refuse dense vectors that would leave some slots with and some without one.

        Raises:
            ValueError: Saying how to make the index consistent.
        """
        if dense is None and self.dense is not None:
            msg = (
                "this index keeps a dense vector per document (for the fused score); pass them "
                "too: add_embeddings(..., dense=encode_documents(..., return_dense=True)[1])."
            )
            raise ValueError(msg)
        if dense is not None and self.dense is None and self.ids:
            msg = (
                "this index holds no dense vectors (built without them, or before they existed), "
                "so it ranks by MaxSim alone; drop dense=, or rebuild the index to fuse them."
            )
            raise ValueError(msg)
        if dense is not None and self.dense is not None and dense.shape[1] != self.dense.dense_dim:
            msg = (
                f"dense vectors of width {dense.shape[1]} cannot join an index whose dense "
                f"vectors have width {self.dense.dense_dim}; use the encoder that built it."
            )
            raise ValueError(msg)

    def append(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[dict],
        dense: np.ndarray | None = None,
    ) -> None:
        """Append slots (the caller publishes them as live), with their dense vectors if any.

        Raises:
            ValueError: As :meth:`check_dense`, before anything is appended.
        """
        self.check_dense(dense)
        if dense is not None:
            if self.dense is None:
                self.dense = DenseStore(dense.shape[1])
            self.dense.append(dense)
        self.ids.extend(ids)
        self.texts.extend(texts)
        self.metadatas.extend(metadatas)

    def truncate(self, n_slots: int) -> None:
        """Drop the slots from ``n_slots`` on (a rolled-back write; never published)."""
        del self.ids[n_slots:], self.texts[n_slots:], self.metadatas[n_slots:]
        if self.dense is not None:  # a store the write created goes with it
            self.dense.n = min(self.dense.n, n_slots)
            self.dense = self.dense if n_slots else None

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
        if self.dense is not None:
            self.dense.save(folder)

    @classmethod
    def load(
        cls, folder: Path, n_docs: int, *, dense: bool = False
    ) -> tuple[DocumentStore, np.ndarray]:
        """Read ``docs.jsonl`` (and ``dense.npy`` if ``dense``); return the store and live mask.

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
        if dense:
            store.dense = DenseStore.load(folder, n_docs)
        return store, np.array(live, dtype=bool)


def validate_documents(
    texts: list[str], ids: Any, metadatas: Any
) -> tuple[list[str], list[dict[str, Any]]]:
    """Check the ids and metadatas of one ``add`` call against its texts; generate missing ids.

    Returns:
        ``(ids, metadatas)``: one string id (uuid4 hex if none given) and one normalised
        metadata dict per text.

    Raises:
        TypeError: On non-string ids or non-dict metadata.
        ValueError: On length mismatches, duplicate ids, or non-JSON metadata.
    """
    if ids is None:
        id_list = [uuid.uuid4().hex for _ in texts]
    else:
        id_list = as_list(ids, "ids")
        if len(id_list) != len(texts):
            msg = f"got {len(id_list)} ids for {len(texts)} texts; pass one id per text."
            raise ValueError(msg)
        wrong = [(n, i) for n, i in enumerate(id_list) if not isinstance(i, str) or not i]
        if wrong:
            msg = (
                f"ids must be non-empty strings; got ids[{wrong[0][0]}] = {wrong[0][1]!r}"
                f"{f' and {len(wrong) - 1} more' if len(wrong) > 1 else ''}. Convert them with "
                "str() (and give every document a non-empty id)."
            )
            raise TypeError(msg)
        for n, doc_id in enumerate(id_list):
            check_unicode(doc_id, f"ids[{n}]")
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
