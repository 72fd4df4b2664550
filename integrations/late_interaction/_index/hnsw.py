"""Voyager HNSW over token vectors: the candidate generator of a LateInteractionIndex.

Token ids are rows of the exact token store (``0..n_tokens-1``). This wrapper keeps its own live
mask because Voyager 2.2's ``len()``, ``ids`` and ``in`` still count deleted items, clamps ``k``
to the live count (Voyager raises ``RecallError`` otherwise) and grows capacity geometrically
before bulk inserts (Voyager's own growth resizes to exactly the needed size on every add).

.. warning::
    Vectors read back from Voyager are normalised (``cosine``) or quantised; never score with
    them. Exact scores come from the token store (``token_store.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import voyager

from late_interaction.config import IndexConfig
from late_interaction.exceptions import IndexFormatError

logger = logging.getLogger(__name__)


RecallError = voyager.RecallError


def _space(name: str) -> Any:
    return {"cosine": voyager.Space.Cosine, "inner_product": voyager.Space.InnerProduct}[name]


def _storage(name: str) -> Any:
    return {"float32": voyager.StorageDataType.Float32, "e4m3": voyager.StorageDataType.E4M3}[name]


class VoyagerTokenIndex:
    """Token vectors in a Voyager HNSW index, addressed by integer token id.

    One writer at a time (the caller serialises writes); queries may run concurrently with one
    writer, as Voyager locks internally and releases the GIL.

    Args:
        dim: Vector dimension.
        space: ``"cosine"`` or ``"inner_product"``.
        m: HNSW graph degree.
        ef_construction: Build-time candidate list size.
        random_seed: Voyager's seed.
        storage: Precision of the graph's own vector copy, ``"float32"`` or ``"e4m3"`` (8-bit
            float: a quarter of the bytes, coarser candidate distances).
    """

    def __init__(
        self,
        dim: int,
        *,
        space: str = "cosine",
        m: int = 12,
        ef_construction: int = 200,
        random_seed: int = 1,
        storage: str = "float32",
    ) -> None:
        self.dim = int(dim)
        self.space = space
        self._index = voyager.Index(
            _space(space),
            num_dimensions=self.dim,
            M=m,
            ef_construction=ef_construction,
            random_seed=random_seed,
            max_elements=16,
            storage_data_type=_storage(storage),
        )
        self._live = np.zeros(0, dtype=bool)
        self.n_live = 0

    @classmethod
    def from_config(cls, dim: int, config: IndexConfig) -> VoyagerTokenIndex:
        """An empty graph with the HNSW settings of an :class:`IndexConfig`."""
        return cls(
            dim,
            space=config.space,
            m=config.hnsw_m,
            ef_construction=config.ef_construction,
            random_seed=config.random_seed,
            storage=config.hnsw_storage,
        )

    @property
    def num_elements(self) -> int:
        """Number of token ids ever inserted (deleted ones included)."""
        return int(self._index.num_elements)

    def add(self, vectors: np.ndarray, first_id: int) -> None:
        """Insert vectors with consecutive ids ``first_id, first_id + 1, ...``.

        Args:
            vectors: Shape ``(n, dim)``; converted to float32.
            first_id: Id of the first vector; must equal :attr:`num_elements` (append-only ids).

        Raises:
            ValueError: If ids would not be consecutive with the existing ones.
        """
        n = vectors.shape[0]
        if n == 0:
            return
        if first_id != self.num_elements:
            msg = (
                f"token ids must be appended in order: expected {self.num_elements}, got {first_id}"
            )
            raise ValueError(msg)
        needed = first_id + n
        if needed > self._index.max_elements:
            # Performance note: Voyager grows to exactly the needed size on each add; doubling
            # here keeps many small adds from reallocating the whole graph every time.
            self._index.resize(max(needed, 2 * self._index.max_elements))
        ids = np.arange(first_id, needed, dtype=np.uint64)
        self._index.add_items(np.ascontiguousarray(vectors, dtype=np.float32), ids=ids)
        if needed > self._live.shape[0]:
            live = np.zeros(max(needed, 2 * self._live.shape[0]), dtype=bool)
            live[: self._live.shape[0]] = self._live
            self._live = live
        self._live[first_id:needed] = True
        self.n_live += n

    def add_all(self, tokens: np.ndarray, chunk: int = 65_536) -> None:
        """Insert every row of a token store (float16 rows are widened chunk by chunk)."""
        for start in range(0, tokens.shape[0], chunk):
            self.add(np.asarray(tokens[start : start + chunk], np.float32), start)

    def mark_deleted(self, ids: np.ndarray) -> None:
        """Hide token ids from queries (space is reclaimed only by a rebuild)."""
        for token_id in np.asarray(ids, dtype=np.int64).tolist():
            if token_id < self._live.shape[0] and self._live[token_id]:
                self._index.mark_deleted(token_id)
                self._live[token_id] = False
                self.n_live -= 1

    def discard_from(self, first_id: int) -> None:
        """Mark every id from ``first_id`` on deleted: the items of a rolled-back write.

        Voyager cannot remove items, so they stay in the graph, hidden from queries; ids stay
        equal to token rows (the caller keeps those rows as a dead slot).
        """
        end = self.num_elements
        if end <= first_id:
            return
        if self._live.shape[0] < end:  # the write was interrupted before its mask update
            live = np.zeros(end, dtype=bool)
            live[: self._live.shape[0]] = self._live
            self._live = live
        for token_id in range(first_id, end):
            try:
                self._index.mark_deleted(token_id)
            except RuntimeError:  # already deleted
                pass
        self._live[first_id:end] = False
        self.n_live = int(self._live.sum())

    def sync_live(self, token_live: np.ndarray) -> None:
        """Mark deleted every id still live here whose token is dead in ``token_live``.

        Completes the deletions of a write interrupted after it was published.
        """
        n = min(token_live.shape[0], self._live.shape[0])
        self.mark_deleted(np.flatnonzero(self._live[:n] & ~token_live[:n]))

    def query(self, vectors: np.ndarray, k: int, query_ef: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest live token ids for each query vector.

        Args:
            vectors: Query token vectors. Shape: ``(n, dim)``.
            k: Neighbours per vector; clamped to the live count.
            query_ef: HNSW search breadth; raised to at least ``k``.

        Returns:
            ``(ids, distances)``, int64 and float32 arrays of shape ``(n, k')`` with ``k' <= k``.

        Raises:
            RecallError: (``voyager.RecallError``) If the graph, degraded by many deletions,
                cannot return ``k'`` live neighbours even after a wider retry; ``compact()``
                fixes it.
        """
        k = min(int(k), self.n_live)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if k < 1 or vectors.shape[0] == 0:
            return np.zeros((vectors.shape[0], 0), np.int64), np.zeros(
                (vectors.shape[0], 0), np.float32
            )
        ef = max(int(query_ef), k)
        try:
            ids, dists = self._index.query(vectors, k=k, query_ef=ef)
        except RecallError:
            # Deleted nodes still occupy the graph; a wider beam usually finds enough live ones.
            logger.info("Voyager RecallError at k=%d ef=%d; retrying with ef=%d", k, ef, 4 * ef)
            ids, dists = self._index.query(vectors, k=k, query_ef=4 * ef)
        return ids.astype(np.int64), dists

    def save(self, path: Path) -> None:
        """Write Voyager's own file format to ``path``."""
        self._index.save(str(path))

    @classmethod
    def load(
        cls, path: Path, *, dim: int, space: str, live: np.ndarray, storage: str | None = None
    ) -> VoyagerTokenIndex:
        """Load a file written by :meth:`save`.

        Args:
            path: The ``tokens.voyager`` file.
            dim: Expected dimension.
            space: Expected space name.
            storage: Expected vector precision (``IndexConfig.hnsw_storage``); None accepts
                whatever the file holds.
            live: Boolean mask over token ids, true for tokens of live documents.

        Raises:
            IndexFormatError: If the file is unreadable or disagrees with ``dim``/``live``.
        """
        try:
            index = voyager.Index.load(str(path))
        except Exception as exc:  # Voyager raises RuntimeError/ValueError/OSError variants
            msg = f"cannot load the HNSW file {path}: {exc}. The index folder is damaged."
            raise IndexFormatError(msg) from exc
        if (
            index.num_dimensions != dim
            or index.num_elements != live.shape[0]
            or index.space != _space(space)
            or (storage is not None and index.storage_data_type != _storage(storage))
        ):
            msg = (
                f"{path} holds {index.num_elements} vectors of dim {index.num_dimensions} in "
                f"{index.space} ({index.storage_data_type}); expected {live.shape[0]} of dim "
                f"{dim} in {space} ({storage or 'any precision'}). Rebuild it."
            )
            raise IndexFormatError(msg)
        self = cls.__new__(cls)
        self.dim, self.space, self._index = dim, space, index
        self._live = np.array(live, dtype=bool)
        self.n_live = int(self._live.sum())
        return self
