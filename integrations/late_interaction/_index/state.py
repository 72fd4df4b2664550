"""The mutable contents of a LateInteractionIndex and how writes publish them.

Concurrency: reads run concurrently; writes (add, delete, compact, save) are serialised by a
re-entrant lock that the caller holds. A writer appends to the stores and inserts into the graph
first and then publishes a new immutable :class:`Snapshot` in one assignment, so a search sees the
index before or after each write. A write raised out of before that assignment is rolled back
(``savepoint.py``).
"""

from __future__ import annotations

import copy
import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from late_interaction._index.codec import ResidualCodec, centroid_count, outgrown_message
from late_interaction._index.document_store import DocumentStore
from late_interaction._index.hnsw import VoyagerTokenIndex
from late_interaction._index.ivf import InvertedLists
from late_interaction._index.persistence import LoadedIndex
from late_interaction._index.pooling import pool_tokens
from late_interaction._index.savepoint import transaction
from late_interaction._index.snapshot import Snapshot
from late_interaction._index.token_store import TokenStore
from late_interaction.config import IndexConfig
from late_interaction.types import StoredDocument

logger = logging.getLogger(__name__)

# positions -> (token matrices, dense vectors or None) of those documents
Encode = Callable[[Sequence[int]], tuple[list[np.ndarray], np.ndarray | None]]
# Token vectors a codec trains on at most: bounds the k-means work and the sample's RAM
# (2**18 x 384 float32 = 400 MB); ColBERTv2 would sample ~1M for a 1M-token corpus.
_MAX_TRAIN_TOKENS = 2**18
_TYPICAL_DOC_TOKENS = 120  # colbert-ai's doclen guess for sizing the training sample


class IndexState:
    """Token store, document store, HNSW graph or inverted lists, id map and the published snapshot.

    Args:
        config: Storage and search settings.
    """

    def __init__(self, config: IndexConfig) -> None:
        self.config = config
        self.write_lock = threading.RLock()
        self._publish_lock = threading.Lock()  # short: pairs the id map with the snapshot
        self.store: TokenStore | None = None
        self.docs = DocumentStore()
        self.hnsw: VoyagerTokenIndex | None = None
        self.ivf: InvertedLists | None = None
        self._slot_of: dict[str, int] = {}
        self.snap = Snapshot.empty(self.docs)
        self._warned_codec: ResidualCodec | None = None  # outgrown: once per codec

    @classmethod
    def from_loaded(cls, loaded: LoadedIndex) -> IndexState:
        """The state of an index read back from a folder."""
        self = cls(loaded.config)
        self.store, self.docs, self.hnsw = loaded.store, loaded.docs, loaded.hnsw
        self.ivf = loaded.ivf
        live_slots = np.flatnonzero(loaded.live).tolist()
        self._slot_of = {self.docs.ids[s]: s for s in live_slots}  # type: ignore[misc]
        if self.store is not None:
            self.snap = Snapshot.build(self.store, self.docs, loaded.live, self.hnsw, self.ivf)
        return self

    def resolve(self, ids: Sequence[Any]) -> tuple[Snapshot, list[int | None]]:
        """The current snapshot and the slot of each id in it (None if absent or not a str)."""
        with self._publish_lock:  # the id map and the snapshot must be read together
            snap = self.snap
            return snap, [self._slot_of.get(i) if isinstance(i, str) else None for i in ids]

    def add(
        self,
        dim: int,
        encode: Encode,
        texts: list[str],
        ids: list[str],
        metas: list[dict[str, Any]],
        *,
        show_progress_bar: bool = False,
        chunk: int = 256,
        n_tokens: int | None = None,
    ) -> list[str]:
        """Encode and append documents ``chunk`` at a time, then publish them all at once.

        One write: whatever is raised inside, the index is left as before (``savepoint.py``).

        Args:
            dim: Token vector dimension.
            encode: ``positions -> (matrices, dense)``: the token matrices of ``texts[i]`` for
                each position ``i``, and their dense vectors (None if the index keeps none).
            texts: Document texts (validated).
            ids: One id per text (validated, unique).
            metas: One normalised metadata dict per text.
            show_progress_bar: Show a tqdm bar.
            chunk: Documents encoded and appended per step.
            n_tokens: Total token rows of the call, if known: the store grows once to it.
        """
        from late_interaction._progress import auto_tqdm

        if not texts:
            return ids
        tqdm = auto_tqdm()

        bar = tqdm(total=len(texts), disable=not show_progress_bar, desc="Indexing")
        with self.write_lock, bar, transaction(self):
            sample: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
            if self.store is None and self.config.nbits is not None:
                sample = self._train_codec(dim, encode, len(texts), chunk)
            elif self.store is None:
                self.store = TokenStore(dim, self.config.storage_dtype)
                if self.config.ann:  # ann=False: exact scans only, no graph
                    self.hnsw = VoyagerTokenIndex.from_config(dim, self.config)
            store: TokenStore = self.store  # type: ignore[assignment]
            if n_tokens is not None and self.config.pool_factor == 1:
                store.reserve(len(texts), n_tokens)
            first_slot = store.n_docs
            for start in range(0, len(texts), chunk):
                part = slice(start, start + chunk)
                positions = range(start, min(start + chunk, len(texts)))
                if sample:  # the training sample covered every text: no second encoding
                    pairs = [sample.pop(i) for i in positions]
                    matrices = [m for m, _ in pairs]
                    dense = None if pairs[0][1] is None else np.stack([d for _, d in pairs])
                else:
                    matrices, dense = encode(positions)
                self._append(matrices, texts[part], ids[part], metas[part], dense)
                bar.update(len(matrices))
            self._publish_appended(first_slot, ids)
            self._warn_if_outgrown()
        return ids

    def _warn_if_outgrown(self) -> None:
        codec = None if self.store is None else self.store.codec
        if codec is None or self.config.n_centroids is not None or codec is self._warned_codec:
            return
        message = outgrown_message(codec.n_centroids, self.store.n_tokens)  # type: ignore[union-attr]
        if message is not None:
            self._warned_codec = codec
            logger.warning(message)

    def _train_codec(self, dim: int, encode: Encode, n: int, chunk: int) -> dict[int, Any]:
        """Train the residual codec on a sample of ``n`` documents and create the store.

        ColBERTv2 samples ``16 * sqrt(120 * n)`` documents; here at most ``_MAX_TRAIN_TOKENS``
        of their vectors are kept. Returns the encoded sample when it covers every document (so
        ``add`` does not encode twice), else an empty dict.
        """
        rng = np.random.default_rng(self.config.random_seed)
        n_sample = min(n, math.ceil(16 * math.sqrt(_TYPICAL_DOC_TOKENS * n)))
        order = rng.permutation(n)[:n_sample]
        sample: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        n_tokens = 0
        for start in range(0, n_sample, chunk):
            positions = np.sort(order[start : start + chunk]).tolist()
            matrices, dense = encode(positions)
            for j, (i, matrix) in enumerate(zip(positions, matrices, strict=True)):
                sample[i] = (matrix, None if dense is None else dense[j])
                n_tokens += matrix.shape[0]
            if n_tokens >= _MAX_TRAIN_TOKENS:
                break
        vectors = np.concatenate([matrix for matrix, _ in sample.values()])
        if vectors.shape[0] > _MAX_TRAIN_TOKENS:
            vectors = vectors[rng.choice(vectors.shape[0], _MAX_TRAIN_TOKENS, replace=False)]
        corpus_tokens = n_tokens * n / len(sample)  # estimated from the encoded documents
        k = self.config.n_centroids or centroid_count(int(corpus_tokens), vectors.shape[0])
        codec = ResidualCodec.train(
            vectors,
            self.config.nbits,
            n_centroids=k,
            seed=self.config.random_seed,  # type: ignore[arg-type]
        )
        self.store = TokenStore(dim, self.config.storage_dtype, codec)
        self.ivf = InvertedLists(codec.n_centroids)
        return sample if len(sample) == n else {}

    def get(self, ids: list[Any]) -> list[StoredDocument]:
        """Stored documents (metadata copied) by id, in the order asked.

        Raises:
            KeyError: Listing every id that is not in the index.
        """
        snap, slots = self.resolve(ids)
        missing = [i for i, s in zip(ids, slots, strict=True) if s is None]
        if missing:
            msg = f"ids not in the index: {missing[:20]}{' ...' if len(missing) > 20 else ''}"
            raise KeyError(msg)
        docs = snap.docs
        return [
            StoredDocument(docs.ids[s], docs.texts[s], copy.deepcopy(docs.metadatas[s]))  # type: ignore[arg-type,index]
            for s in slots
        ]

    def _append(
        self,
        matrices: list[np.ndarray],
        texts: list[str],
        ids: list[str],
        metas: list[dict[str, Any]],
        dense: np.ndarray | None = None,
    ) -> None:
        """Append documents and their dense vectors, unpublished (inside a transaction)."""
        self.docs.check_dense(dense)  # before anything is written
        if self.config.pool_factor > 1:
            matrices = [pool_tokens(m, self.config.pool_factor) for m in matrices]
        first_slot, first_row = self.store.append(matrices)  # type: ignore[union-attr]
        self.docs.append(ids, texts, metas, dense)
        # Graph before publishing: a reader meeting the new token ids early drops them, as
        # they lie beyond its snapshot's token count.
        if self.hnsw is not None:
            self.hnsw.add(np.concatenate(matrices), first_row)
        if self.ivf is not None:
            # The codes just encoded, from RAM: reading them back through the file's map
            # would make every code page resident over a build.
            codes = self.store.appended_codes  # type: ignore[union-attr]
            self.ivf = self.ivf.appended(codes, self.store.row_slots(first_slot))  # type: ignore[union-attr]

    def _publish_appended(self, first_slot: int, ids: list[str]) -> None:
        """Publish the slots appended from ``first_slot`` on (``ids``); replaced ids die."""
        live = np.zeros(self.store.n_docs, dtype=bool)  # type: ignore[union-attr]
        live[: self.snap.live.shape[0]] = self.snap.live
        live[first_slot:] = True
        replaced = [self._slot_of[i] for i in ids if i in self._slot_of]
        slots = range(first_slot, self.store.n_docs)  # type: ignore[union-attr]
        self.publish(live, replaced, dict(zip(ids, slots, strict=True)))

    def delete(self, ids: list[str]) -> None:
        """Delete documents by id; the caller holds :attr:`write_lock`.

        Raises:
            KeyError: Listing every id that is not in the index; nothing is deleted then.
        """
        _, slots = self.resolve(ids)
        missing = [i for i, s in zip(ids, slots, strict=True) if s is None]
        if missing:
            msg = f"cannot delete ids that are not in the index: {missing[:20]}"
            raise KeyError(msg)
        if ids:
            with transaction(self):
                self.publish(self.snap.live.copy(), slots, dict.fromkeys(ids))  # type: ignore[arg-type]

    def publish(self, live: np.ndarray, dead: list[int], id_updates: dict[str, int | None]) -> None:
        """Mark ``dead`` slots dead, update the id map and swap in a new snapshot (the commit)."""
        live[dead] = False
        snap = Snapshot.build(self.store, self.docs, live, self.hnsw, self.ivf)  # type: ignore[arg-type]
        offsets = snap.offsets
        with self._publish_lock:
            undo = {doc_id: self._slot_of.get(doc_id) for doc_id in id_updates}
            try:
                self._map_ids(id_updates)
                self.snap = snap
            except BaseException:  # interrupted before the commit: the id map as it was
                self._map_ids(undo)
                raise
        # After publishing: no published snapshot needs these tokens.
        for slot in dead if self.hnsw is not None else ():
            self.hnsw.mark_deleted(np.arange(offsets[slot], offsets[slot + 1]))  # type: ignore[union-attr]

    def _map_ids(self, updates: dict[str, int | None]) -> None:
        for doc_id, slot in updates.items():
            if slot is None:
                self._slot_of.pop(doc_id, None)
            else:
                self._slot_of[doc_id] = slot

    def compact(self, dim: int) -> None:
        """Rebuild the store and graph (or inverted lists) without deleted documents.

        The caller holds the lock. Compressed rows are copied as they are (same codec).
        """
        snap = self.snap
        if self.store is None or snap.n_live == snap.live.shape[0]:
            return
        keep = np.flatnonzero(snap.live)
        store = self.store.compacted(keep)
        docs = DocumentStore()
        docs.append(
            [snap.docs.ids[s] for s in keep.tolist()],  # type: ignore[misc]
            [snap.docs.texts[s] for s in keep.tolist()],
            [snap.docs.metadatas[s] for s in keep.tolist()],
            None if snap.docs.dense is None else snap.docs.dense.rows(keep),
        )
        hnsw, ivf = None, None
        if store.codec is not None:  # chunk by chunk: no 8-byte pair per token of the corpus
            ivf = InvertedLists(store.codec.n_centroids)
            for codes, slots in store.code_chunks():
                ivf = ivf.appended(codes, slots)
        elif self.config.ann:  # ann=False: exact scans only, no graph to rebuild
            hnsw = VoyagerTokenIndex.from_config(dim, self.config)
            hnsw.add_all(store.views()[0])
        new = Snapshot.build(store, docs, np.ones(store.n_docs, bool), hnsw, ivf)
        self._adopt(store, docs, hnsw, ivf, new)

    def _adopt(
        self,
        store: TokenStore | None,
        docs: DocumentStore,
        hnsw: VoyagerTokenIndex | None,
        ivf: InvertedLists | None,
        snap: Snapshot,
    ) -> None:
        """Replace every structure at once and publish ``snap`` (its slots numbered from 0)."""
        slot_of = {doc_id: slot for slot, doc_id in enumerate(docs.ids)}
        self.store, self.docs, self.hnsw, self.ivf = store, docs, hnsw, ivf
        with self._publish_lock:
            self._slot_of, self.snap = slot_of, snap  # type: ignore[assignment]

    def retrain(self, dim: int, encode_texts: Callable[[list[str]], Encode]) -> None:
        """Train a new codec on the live documents and re-encode them; the caller holds the lock.

        Args:
            dim: Token vector dimension.
            encode_texts: ``texts -> encode`` (the ``positions -> matrices`` callable of
                :meth:`add` for those texts).
        """
        snap = self.snap
        keep = np.flatnonzero(snap.live).tolist()
        texts = [snap.docs.texts[s] for s in keep]
        fresh = IndexState(self.config)
        fresh.add(dim, encode_texts(texts), texts, [snap.docs.ids[s] for s in keep],  # type: ignore[misc]
                  [snap.docs.metadatas[s] for s in keep])  # fmt: skip
        self._adopt(fresh.store, fresh.docs, fresh.hnsw, fresh.ivf, fresh.snap)
