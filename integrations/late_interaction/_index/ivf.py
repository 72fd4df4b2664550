"""Inverted lists of a compressed index: centroid -> the document slots holding a token there.

One entry per distinct (centroid, slot) pair, in CSR form (``offsets`` per centroid, ``slots``
sorted within each list). The lists are immutable, so a published snapshot can keep reading
them: an append builds a new segment for the new slots and returns a new object. Segments are
merged as a log-structured merge does (when the newest is at least half the size of the one
before), so there are O(log n) segments and appends cost O(n log n) in total instead of a full
rebuild per batch. Dead slots stay listed until ``compact()``; searches mask them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class _Segment:
    offsets: np.ndarray  # int64, (n_centroids + 1,)
    slots: np.ndarray  # int32, (n_pairs,)

    @classmethod
    def build(cls, n_centroids: int, codes: np.ndarray, slots: np.ndarray) -> _Segment:
        # Performance note: sort + neighbour comparison; np.unique's hashing is ~3x slower here.
        pairs = np.sort(codes.astype(np.int64) << 32 | slots.astype(np.int64))
        pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs
        centroid = pairs >> 32
        offsets = np.zeros(n_centroids + 1, dtype=np.int64)
        np.cumsum(np.bincount(centroid, minlength=n_centroids), out=offsets[1:])
        return cls(offsets, (pairs & 0xFFFFFFFF).astype(np.int32))

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(centroid, slot)`` of every entry."""
        centroid = np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))
        return centroid, self.slots

    @classmethod
    def merged(cls, segments: list[_Segment]) -> _Segment:
        """One segment listing every entry of ``segments``."""
        if len(segments) == 1:
            return segments[0]
        pairs = [s.pairs() for s in segments]
        centroids = np.concatenate([c for c, _ in pairs])
        slots = np.concatenate([s for _, s in pairs])
        return cls.build(len(segments[0].offsets) - 1, centroids, slots)


class InvertedLists:
    """Centroid -> document slots, as immutable CSR segments.

    Args:
        n_centroids: Number of centroids of the codec.
        segments: Existing segments (internal; use :meth:`appended` and :meth:`from_arrays`).
    """

    def __init__(self, n_centroids: int, segments: tuple[_Segment, ...] = ()) -> None:
        self.n_centroids = int(n_centroids)
        self._segments = segments

    def appended(self, codes: np.ndarray, token_doc: np.ndarray) -> InvertedLists:
        """A new object that also lists the given tokens (``codes`` and their slots)."""
        if len(codes) == 0:
            return self
        segments = [*self._segments, _Segment.build(self.n_centroids, codes, token_doc)]
        while len(segments) > 1 and len(segments[-1].slots) * 2 >= len(segments[-2].slots):
            newer, older = segments.pop(), segments.pop()
            segments.append(_Segment.merged([older, newer]))
        return InvertedLists(self.n_centroids, tuple(segments))

    def pairs_of(self, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every ``(position in centroids, slot)`` entry listed under ``centroids``.

        A slot appears once per listed centroid (and once per segment holding it).
        """
        found_c, found_s = [], []
        for seg in self._segments:
            starts, ends = seg.offsets[centroids], seg.offsets[centroids + 1]
            lengths = ends - starts
            total = int(lengths.sum())
            if total:
                local = np.cumsum(lengths) - lengths
                found_s.append(seg.slots[np.repeat(starts - local, lengths) + np.arange(total)])
                found_c.append(np.repeat(np.arange(len(centroids)), lengths))
        if not found_s:
            return np.zeros(0, np.int64), np.zeros(0, np.int32)
        return np.concatenate(found_c), np.concatenate(found_s)

    def slots_of(self, centroids: np.ndarray) -> np.ndarray:
        """Sorted unique slots listed under any of ``centroids``."""
        return np.unique(self.pairs_of(centroids)[1])

    def nbytes(self) -> int:
        """Bytes held by the lists."""
        return sum(s.offsets.nbytes + s.slots.nbytes for s in self._segments)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """One merged ``(offsets, slots)`` CSR pair (what is saved)."""
        if not self._segments:
            return np.zeros(self.n_centroids + 1, np.int64), np.zeros(0, np.int32)
        seg = _Segment.merged(list(self._segments))
        return seg.offsets, seg.slots

    @classmethod
    def from_arrays(cls, offsets: np.ndarray, slots: np.ndarray) -> InvertedLists:
        """Inverse of :meth:`arrays` (the arrays may be memory-mapped)."""
        return cls(len(offsets) - 1, (_Segment(offsets, slots),))
