"""LateInteractionIndex: a durable store of documents searchable by exact late interaction.

Search is two-stage, as colbert-live: every query token fetches its nearest document tokens from
a Voyager HNSW graph (candidate generation), then the union of their documents is scored by
exact MaxSim on the token store (float16/float32 copies of the encoder output, never vectors
read back from Voyager). See ``_retrieval.py`` (read path) and ``_persistence.py`` (folder).

Concurrency: reads run concurrently; writes (add, delete, compact, save) are serialised by a
re-entrant lock. A writer inserts into the graph first and then publishes a new immutable
snapshot in one assignment, so a search sees the index before or after each published batch.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from late_interaction._persistence import (
    check_model,
    model_from_fingerprint,
    read_index,
    write_index,
)
from late_interaction._retrieval import Filter, Snapshot, prepare_search, rank, search_snapshot
from late_interaction.config import IndexConfig
from late_interaction.index import VoyagerTokenIndex
from late_interaction.pooling import pool_tokens
from late_interaction.store import (
    DocumentStore,
    TokenStore,
    as_list,
    as_token_matrices,
    validate_documents,
)
from late_interaction.types import SearchHit, StoredDocument

__all__ = ["LateInteractionIndex"]

_PROGRESS_MIN_TEXTS = 1000  # show a progress bar by default from this many texts on
_ADD_CHUNK = 256  # documents encoded and published per step of add()


class LateInteractionIndex:
    """A searchable, saveable collection of documents encoded by a ColBERT model.

    Args:
        model: An encoder (``late_interaction.ColBERT`` or any object with ``encode_queries``,
            ``encode_documents``, ``fingerprint()`` and ``dim``). None loads the embedded default
            model (``ColBERT.from_pretrained()``) on first use.
        path: Default folder for :meth:`save`; must not already hold an index (use :meth:`load`).
        config: Storage and search settings; defaults to ``IndexConfig()``.

    Raises:
        FileExistsError: If ``path`` already holds a saved index.

    Example:
        >>> index = LateInteractionIndex()  # doctest: +SKIP
        >>> _ = index.add(["ColBERT scores tokens.", "BM25 counts."])  # doctest: +SKIP
        >>> index.search("token-level matching", k=1)[0].text  # doctest: +SKIP
        'ColBERT scores tokens.'

    .. warning::
        Candidate generation is approximate (HNSW): a document that no query token reaches is
        never scored. Raise ``k_token``/``query_ef`` for recall, or use :meth:`exact_search`.
        Deleted documents keep their space until :meth:`compact`.
    """

    def __init__(
        self,
        model: Any = None,
        path: str | Path | None = None,
        *,
        config: IndexConfig | None = None,
    ) -> None:
        self.config = config if config is not None else IndexConfig()
        if not isinstance(self.config, IndexConfig):
            msg = f"config must be an IndexConfig; got {type(self.config).__name__}."
            raise TypeError(msg)
        self.path = Path(path) if path is not None else None
        if self.path is not None and (self.path / "config.json").exists():
            msg = (
                f"{self.path} already holds a saved index; open it with "
                "LateInteractionIndex.load(path) or choose another folder."
            )
            raise FileExistsError(msg)
        self._model = model
        self._model_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._publish_lock = threading.Lock()  # short: pairs the id map with the snapshot
        self._store: TokenStore | None = None
        self._docs = DocumentStore()
        self._hnsw: VoyagerTokenIndex | None = None
        self._slot_of: dict[str, int] = {}
        self._snap = Snapshot.empty(self._docs)

    @property
    def model(self) -> Any:
        """The encoder; the embedded default ColBERT is loaded on first access if none was given."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    from late_interaction.encoder import ColBERT

                    self._model = ColBERT.from_pretrained()
        return self._model

    @property
    def dim(self) -> int:
        """Token vector dimension (the encoder's)."""
        return int(self.model.dim)

    # --- inspection ----------------------------------------------------------------------

    def __len__(self) -> int:
        return self._snap.n_live

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self._resolve([doc_id])[1][0] is not None

    def __repr__(self) -> str:
        return f"LateInteractionIndex(documents={len(self)}, path={self.path!r})"

    @property
    def ids(self) -> list[str]:
        """Ids of live documents, in storage order (an upserted document moves to the end)."""
        snap = self._snap
        return [snap.docs.ids[s] for s in np.flatnonzero(snap.live).tolist()]  # type: ignore[misc]

    def get(self, ids: str | Iterable[str]) -> list[StoredDocument]:
        """Return stored documents (metadata copied) by id, in the order asked.

        Raises:
            KeyError: Listing every id that is not in the index.
        """
        wanted = as_list(ids, "ids")
        snap, slots = self._resolve(wanted)
        missing = [i for i, s in zip(wanted, slots, strict=True) if s is None]
        if missing:
            msg = f"ids not in the index: {missing[:20]}{' ...' if len(missing) > 20 else ''}"
            raise KeyError(msg)
        docs = snap.docs
        return [
            StoredDocument(docs.ids[s], docs.texts[s], copy.deepcopy(docs.metadatas[s]))  # type: ignore[arg-type,index]
            for s in slots
        ]

    def _resolve(self, ids: Sequence[Any]) -> tuple[Snapshot, list[int | None]]:
        with self._publish_lock:  # the id map and the snapshot must be read together
            snap = self._snap
            return snap, [self._slot_of.get(i) if isinstance(i, str) else None for i in ids]

    # --- writes --------------------------------------------------------------------------

    def add(
        self,
        texts: str | Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> list[str]:
        """Encode and add documents; an id already in the index is replaced (upsert).

        Documents are published every few hundred: a concurrent search sees whole batches.

        Args:
            texts: Document texts (a bare string is one document).
            ids: One unique string id per text; None generates uuid4 hex ids.
            metadatas: One JSON-serialisable dict (or None) per text; stored as its JSON round
                trip (tuples become lists).
            batch_size: Encoder batch size.
            show_progress_bar: tqdm bar; None shows it from 1000 texts on.

        Returns:
            The ids of the added documents, in input order.

        Raises:
            ValueError: On length mismatches, duplicate ids, or non-JSON metadata.
            TypeError: On non-string texts or ids.
        """
        texts = as_list(texts, "texts")
        id_list, metas = validate_documents(texts, ids, metadatas)
        if not texts:
            return []
        from tqdm.auto import tqdm

        show = len(texts) >= _PROGRESS_MIN_TEXTS if show_progress_bar is None else show_progress_bar
        with self._write_lock, tqdm(total=len(texts), disable=not show, desc="Indexing") as bar:
            for start in range(0, len(texts), _ADD_CHUNK):
                part = slice(start, start + _ADD_CHUNK)
                embs = self.model.encode_documents(
                    texts[part], batch_size=batch_size, show_progress_bar=False
                )
                matrices = as_token_matrices(embs, self.dim, "embeddings")
                self._insert(matrices, texts[part], id_list[part], metas[part])
                bar.update(len(matrices))
        return id_list

    def add_embeddings(
        self,
        embeddings: Sequence[np.ndarray],
        texts: str | Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Add documents whose token matrices were computed already (by this index's encoder).

        Args:
            embeddings: One ``(n_tokens_i, dim)`` matrix per document, ``n_tokens_i >= 1``.
            texts: The texts they encode.
            ids: As in :meth:`add`.
            metadatas: As in :meth:`add`.

        Returns:
            The ids, in input order.

        Raises:
            DimensionMismatchError: If a matrix's dim differs from the encoder's.
            ValueError: On empty or non-finite matrices, or any :meth:`add` validation error.
        """
        texts = as_list(texts, "texts")
        embeddings = list(embeddings)
        if len(embeddings) != len(texts):
            msg = f"got {len(embeddings)} embeddings for {len(texts)} texts; pass one per text."
            raise ValueError(msg)
        id_list, metas = validate_documents(texts, ids, metadatas)
        matrices = as_token_matrices(embeddings, self.dim, "embeddings")
        if matrices:
            with self._write_lock:
                self._insert(matrices, texts, id_list, metas)
        return id_list

    def _insert(
        self, matrices: list[np.ndarray], texts: list[str], ids: list[str], metas: list[dict]
    ) -> None:
        """Append documents and publish them (the caller holds the write lock)."""
        if self._store is None or self._hnsw is None:
            self._store = TokenStore(self.dim, self.config.storage_dtype)
            self._hnsw = VoyagerTokenIndex.from_config(self.dim, self.config)
        if self.config.pool_factor > 1:
            matrices = [pool_tokens(m, self.config.pool_factor) for m in matrices]
        first_slot, first_row = self._store.append(matrices)
        self._docs.append(ids, texts, metas)
        # Graph first, then publish: a reader meeting the new token ids early drops them, as
        # they lie beyond its snapshot's token count.
        self._hnsw.add(np.concatenate(matrices), first_row)
        live = np.zeros(self._store.n_docs, dtype=bool)
        live[: self._snap.live.shape[0]] = self._snap.live
        live[first_slot:] = True
        replaced = [self._slot_of[i] for i in ids if i in self._slot_of]
        self._publish(
            live, replaced, dict(zip(ids, range(first_slot, self._store.n_docs), strict=True))
        )

    def delete(self, ids: str | Iterable[str]) -> None:
        """Delete documents by id (their space is reclaimed by :meth:`compact`).

        Raises:
            KeyError: Listing every id that is not in the index; nothing is deleted then.
        """
        wanted = list(dict.fromkeys(as_list(ids, "ids")))
        with self._write_lock:
            _, slots = self._resolve(wanted)
            missing = [i for i, s in zip(wanted, slots, strict=True) if s is None]
            if missing:
                msg = f"cannot delete ids that are not in the index: {missing[:20]}"
                raise KeyError(msg)
            if wanted:
                self._publish(self._snap.live.copy(), slots, dict.fromkeys(wanted))  # type: ignore[arg-type]

    def _publish(
        self, live: np.ndarray, dead: list[int], id_updates: dict[str, int | None]
    ) -> None:
        """Mark ``dead`` slots dead, update the id map and swap in a new snapshot."""
        live[dead] = False
        snap = Snapshot.build(self._store, self._docs, live, self._hnsw)  # type: ignore[arg-type]
        offsets = snap.offsets
        with self._publish_lock:
            for doc_id, slot in id_updates.items():
                if slot is None:
                    self._slot_of.pop(doc_id, None)
                else:
                    self._slot_of[doc_id] = slot
            self._snap = snap
        for slot in dead:  # after publishing: no published snapshot needs these tokens
            self._hnsw.mark_deleted(np.arange(offsets[slot], offsets[slot + 1]))  # type: ignore[union-attr]

    def compact(self) -> None:
        """Rebuild the HNSW graph and token store without deleted documents (ids are kept).

        Searches continue on the old structures meanwhile. Costs a full graph build.
        """
        with self._write_lock:
            snap = self._snap
            if self._store is None or snap.n_live == snap.live.shape[0]:
                return
            keep = np.flatnonzero(snap.live)
            store = self._store.compacted(keep)
            docs = DocumentStore()
            docs.append(
                [snap.docs.ids[s] for s in keep.tolist()],  # type: ignore[misc]
                [snap.docs.texts[s] for s in keep.tolist()],
                [snap.docs.metadatas[s] for s in keep.tolist()],
            )
            hnsw = VoyagerTokenIndex.from_config(self.dim, self.config)
            hnsw.add_all(store.views()[0])
            new = Snapshot.build(store, docs, np.ones(store.n_docs, bool), hnsw)
            slot_of = {doc_id: slot for slot, doc_id in enumerate(docs.ids)}
            self._store, self._docs, self._hnsw = store, docs, hnsw
            with self._publish_lock:
                self._slot_of, self._snap = slot_of, new  # type: ignore[assignment]

    # --- persistence ---------------------------------------------------------------------

    def save(self, path: str | Path | None = None) -> Path:
        """Write the index to a folder, atomically; pickle-free (JSON, .npy, Voyager's file).

        A crash at any point leaves the previously saved folder loadable. Searches may run
        during a save; writes wait for it.

        Args:
            path: Target folder; defaults to the ``path`` given at construction or load.

        Returns:
            The absolute folder path.

        Raises:
            ValueError: If no path was given now or before.
            FileExistsError: If ``path`` is a non-empty folder that holds no index.
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            msg = "save() needs a path: pass index.save(path) or construct the index with path=."
            raise ValueError(msg)
        with self._write_lock:
            snap = self._snap
            saved = write_index(
                target, config=self.config, fingerprint=self.model.fingerprint(), dim=self.dim,
                store=self._store, docs=self._docs, live=snap.live, hnsw=self._hnsw,
            )  # fmt: skip
        if self.path is None:
            self.path = saved
        return saved

    @classmethod
    def load(cls, path: str | Path, model: Any = None) -> LateInteractionIndex:
        """Open a folder written by :meth:`save` (token store memory-mapped, read-only).

        An interrupted save is recovered first (to the old or the new complete state).

        Args:
            path: The index folder.
            model: The encoder that built it; None rebuilds it from the saved fingerprint.

        Returns:
            The index; later :meth:`save` calls default to ``path``.

        Raises:
            FileNotFoundError: If nothing was saved at ``path``.
            IndexFormatError: If files are missing, damaged or of an unknown format version.
            DimensionMismatchError: If ``model`` produces vectors of another dimension.
            ModelMismatchError: If ``model`` is not the encoder that built the index.
        """
        loaded = read_index(Path(path))
        if model is None:
            model = model_from_fingerprint(loaded.manifest.get("encoder") or {}, Path(path))
        check_model(loaded.manifest, model, Path(path))
        self = cls(model, config=loaded.config)
        self.path = Path(path)
        self._store, self._docs, self._hnsw = loaded.store, loaded.docs, loaded.hnsw
        self._slot_of = {
            self._docs.ids[s]: s  # type: ignore[misc]
            for s in np.flatnonzero(loaded.live).tolist()
        }
        if self._store is not None:
            self._snap = Snapshot.build(self._store, self._docs, loaded.live, self._hnsw)
        return self

    # --- search --------------------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        filter: Filter = None,
        ids: Iterable[str] | None = None,
        query_ef: int | None = None,
        k_token: int | None = None,
    ) -> list[SearchHit]:
        """Find the ``k`` documents with the highest exact MaxSim among ANN candidates.

        Args:
            query: Query text.
            k: Number of results; more than the allowed documents returns all of them.
            filter: None, a mapping ``{key: value}`` (every key must equal; a list/tuple/set
                value means "any of"; a missing key fails) or a callable taking a copy of the
                metadata dict and returning a bool.
            ids: Only search these document ids (ids not in the index are ignored).
            query_ef: HNSW search breadth (default ``config.query_ef``, at least ``k_token``).
            k_token: Document tokens fetched per query token (default
                ``max(config.k_token, 2 * k)``).

        Returns:
            Hits, best first, with ranks 0..n-1, texts and metadata copies.

        Raises:
            EmptyIndexError: If the index holds no documents.
            ValueError: If ``k``, ``query_ef`` or ``k_token`` is not a positive integer.
            TypeError: If ``filter`` is neither a mapping nor a callable.

        .. note::
            A restriction whose allowed documents are few (``config.exact_scan_tokens``,
            ``exact_scan_fraction``) is answered by an exact scan of them; otherwise candidates
            are over-fetched and filtered, with an exact scan of the allowed set when fewer than
            ``k`` pass. A document failing the filter is never returned.
        """
        if not isinstance(query, str):
            msg = f"query must be a string; got {type(query).__name__}. Use search_embeddings."
            raise TypeError(msg)
        return self.search_batch(
            [query], k, filter=filter, ids=ids, query_ef=query_ef, k_token=k_token
        )[0]

    def search_batch(
        self,
        queries: Sequence[str],
        k: int = 10,
        *,
        filter: Filter = None,
        ids: Iterable[str] | None = None,
        query_ef: int | None = None,
        k_token: int | None = None,
        batch_size: int = 32,
    ) -> list[list[SearchHit]]:
        """:meth:`search` for many queries (one encoder pass, one HNSW query); one list each."""
        queries = as_list(queries, "queries")
        if any(not isinstance(q, str) for q in queries):
            msg = "queries must be strings; use search_embeddings for precomputed matrices."
            raise TypeError(msg)
        args = self._search_args(k, filter, ids, query_ef, k_token)
        if not queries:
            return []
        embs = self.model.encode_queries(queries, batch_size=batch_size, show_progress_bar=False)
        return search_snapshot(queries=as_token_matrices(embs, self.dim, "query"), **args)

    def search_embeddings(
        self,
        query_embeddings: np.ndarray,
        k: int = 10,
        *,
        filter: Filter = None,
        ids: Iterable[str] | None = None,
        query_ef: int | None = None,
        k_token: int | None = None,
    ) -> list[SearchHit]:
        """:meth:`search` with a precomputed query matrix of shape ``(n_query_tokens, dim)``."""
        args = self._search_args(k, filter, ids, query_ef, k_token)
        return search_snapshot(
            queries=as_token_matrices([query_embeddings], self.dim, "query"), **args
        )[0]

    def exact_search(
        self,
        query_or_embeddings: str | np.ndarray,
        k: int = 10,
        *,
        filter: Filter = None,
        ids: Iterable[str] | None = None,
    ) -> list[SearchHit]:
        """Brute-force exact MaxSim over every allowed live document (no ANN), best first.

        The reference for recall measurements; its cost grows with the index. Takes a query text
        or a ``(n_query_tokens, dim)`` matrix; ``k``, ``filter`` and ``ids`` as in :meth:`search`.
        """
        args = self._search_args(k, filter, ids, None, None)
        query = query_or_embeddings
        if isinstance(query, str):
            query = self.model.encode_queries([query], show_progress_bar=False)[0]
        matrix = as_token_matrices([query], self.dim, "query")[0]
        view = args["view"]
        return rank(view.snap, matrix, np.flatnonzero(view.mask()), args["k"])

    def _search_args(
        self, k: Any, filter: Filter, ids: Any, query_ef: Any, k_token: Any
    ) -> dict[str, Any]:
        """Validate search arguments and take the snapshot view (before any encoding)."""
        if ids is not None:
            snap, slots = self._resolve(as_list(ids, "ids"))
        else:
            snap, slots = self._snap, None
        return prepare_search(snap, slots, self.config, k, filter, query_ef, k_token)
