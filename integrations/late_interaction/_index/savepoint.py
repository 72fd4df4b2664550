"""Rollback points: a write to the index happens whole or not at all, whatever is raised inside.

A write (``add``, ``add_embeddings``, an upsert, ``delete``) appends to the stores and the graph,
then publishes one snapshot: that assignment is its commit point. :func:`transaction` takes a
:class:`Savepoint` first; if anything is raised before the commit (a bad document, the encoder,
``KeyboardInterrupt``, ``MemoryError``), the appended rows and slots are dropped and the stores
are back in step with the published snapshot, so later writes and ``save()`` work.

Voyager cannot remove an item. Token ids already inserted into the graph for the rolled-back
write are marked deleted there and their rows stay in the token store as one dead slot (a
deleted document, as ``save`` writes and ``compact`` reclaims), so graph ids keep equal to token
rows and no search can return them. Raised after the commit, the write stands; the graph's
deletions of replaced documents are completed before the exception goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from late_interaction._index.hnsw import VoyagerTokenIndex
from late_interaction._index.ivf import InvertedLists
from late_interaction._index.snapshot import Snapshot
from late_interaction._index.token_store import TokenStore

if TYPE_CHECKING:  # pragma: no cover
    from late_interaction._index.state import IndexState


@dataclass(frozen=True)
class Savepoint:
    """What an index held before a write: enough to drop whatever the write appended."""

    store: TokenStore | None
    hnsw: VoyagerTokenIndex | None
    ivf: InvertedLists | None
    n_docs: int
    n_tokens: int
    n_slots: int
    n_graph: int
    snap: Snapshot
    drift: np.ndarray | None = None  # the store's codec-drift counters (replaced, never mutated)

    @classmethod
    def take(cls, state: IndexState) -> Savepoint:
        """The rollback point of ``state`` now (the caller holds its write lock)."""
        store, hnsw = state.store, state.hnsw
        return cls(
            store, hnsw, state.ivf,
            store.n_docs if store is not None else 0,
            store.n_tokens if store is not None else 0,
            len(state.docs.ids),
            hnsw.num_elements if hnsw is not None else 0,
            state.snap,
            store._drift if store is not None else None,
        )  # fmt: skip

    def restore(self, state: IndexState) -> None:
        """Drop what was appended since this point (nothing of it was published)."""
        state.docs.truncate(self.n_slots)
        if self.store is None:  # the write created the stores: drop them, graph included
            state.store, state.hnsw, state.ivf = None, None, None
            return
        state.store, state.hnsw, state.ivf = self.store, self.hnsw, self.ivf
        if self.drift is not None:
            self.store._drift = self.drift
        graph_end = self.n_graph
        if self.hnsw is not None:
            graph_end = self.hnsw.num_elements
            self.hnsw.discard_from(self.n_graph)
        if self.store.truncate(self.n_docs, self.n_tokens, keep_rows=graph_end):
            # Rows the graph holds stay as one dead slot: publish it as dead, so the stores,
            # the document records and the snapshot count the same slots (what save() needs).
            dense = state.docs.dense  # the dead slot needs a (zero) vector where others have one
            filler = None if dense is None else np.zeros((1, dense.dense_dim), np.float32)
            state.docs.append([None], [""], [{}], filler)  # type: ignore[list-item]
            live = np.zeros(self.store.n_docs, dtype=bool)
            live[: self.snap.live.shape[0]] = self.snap.live
            state.publish(live, [], {})


@contextmanager
def transaction(state: IndexState) -> Iterator[None]:
    """Run a write whole or not at all; the caller holds ``state.write_lock``.

    Raises:
        BaseException: Whatever the write raised, after rolling it back (before its commit)
            or completing its graph deletions (after).
    """
    point = Savepoint.take(state)
    try:
        yield
    except BaseException:
        if state.snap is point.snap:
            point.restore(state)
        elif state.hnsw is not None:
            snap = state.snap
            state.hnsw.sync_live(snap.live[snap.token_doc])
        raise
