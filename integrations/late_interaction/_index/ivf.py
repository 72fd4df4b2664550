"""Inverted lists of a compressed index: centroid -> the document slots holding a token there.

One entry per distinct (centroid, slot) pair, in CSR form (``offsets`` per centroid, ``slots``
sorted within each list). The lists are immutable, so a published snapshot can keep reading
them: an append builds a new segment for the new slots and returns a new object. Segments are
merged as a log-structured merge does (when the newest is at least half the size of the one
before), so there are O(log n) segments and appends cost O(n log n) in total instead of a full
rebuild per batch. Dead slots stay listed until ``compact()``; searches mask them.

Slots are append-only, so a newer segment lists only slots above those of the segments before
it: merging is then a per-centroid concatenation, done a bounded block of centroids at a time
into the one new slot array (4 bytes per entry, no sort, no 8-byte pair per entry).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

_MERGE_BLOCK = 1 << 20  # entries moved per step of a concatenating merge (bounds its scratch)


@dataclass(frozen=True)
class _Segment:
    offsets: np.ndarray  # int64, (n_centroids + 1,)
    slots: np.ndarray  # int32, (n_pairs,)
    first_slot: int = 0  # every listed slot is in [first_slot, end_slot)
    end_slot: int = 2**31

    @classmethod
    def build(cls, n_centroids: int, codes: np.ndarray, slots: np.ndarray) -> _Segment:
        # Performance note: sort + neighbour comparison; np.unique's hashing is ~3x slower here.
        # Built per appended chunk, so the 8-byte pairs are the chunk's, not the corpus's.
        pairs = np.sort(codes.astype(np.int64) << 32 | slots.astype(np.int64))
        pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs
        centroid = pairs >> 32
        offsets = np.zeros(n_centroids + 1, dtype=np.int64)
        np.cumsum(np.bincount(centroid, minlength=n_centroids), out=offsets[1:])
        bounds = (int(slots.min()), int(slots.max()) + 1) if len(slots) else (0, 0)
        return cls(offsets, (pairs & 0xFFFFFFFF).astype(np.int32), *bounds)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(centroid, slot)`` of every entry."""
        centroid = np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))
        return centroid, self.slots

    @classmethod
    def merged(cls, segments: list[_Segment]) -> _Segment:
        """One segment listing every entry of ``segments``."""
        if len(segments) == 1:
            return segments[0]
        ordered = all(a.end_slot <= b.first_slot for a, b in itertools.pairwise(segments))
        if ordered:
            return cls._concatenated(segments)
        pairs = [s.pairs() for s in segments]
        centroids = np.concatenate([c for c, _ in pairs])
        slots = np.concatenate([s for _, s in pairs])
        return cls.build(len(segments[0].offsets) - 1, centroids, slots)

    @classmethod
    def _concatenated(cls, segments: list[_Segment]) -> _Segment:
        """Merge segments whose slot ranges ascend: each list is theirs, one after another."""
        offsets = np.sum([s.offsets for s in segments], axis=0)
        slots = np.empty(int(offsets[-1]), np.int32)
        dest = offsets[:-1].copy()  # where each centroid's entries of the next segment go
        n_centroids = len(offsets) - 1
        for seg in segments:
            # Blocks of centroids holding about _MERGE_BLOCK entries of this segment each.
            cuts = np.searchsorted(seg.offsets, np.arange(0, seg.offsets[-1], _MERGE_BLOCK))
            cuts = np.unique(np.r_[cuts, n_centroids].clip(0, n_centroids))
            lo_c = 0
            for hi_c in cuts[cuts > 0]:
                lo, hi = int(seg.offsets[lo_c]), int(seg.offsets[hi_c])
                if hi > lo:
                    counts = np.diff(seg.offsets[lo_c : hi_c + 1])
                    shift = np.repeat(dest[lo_c:hi_c] - seg.offsets[lo_c:hi_c], counts)
                    slots[np.arange(lo, hi) + shift] = seg.slots[lo:hi]
                lo_c = int(hi_c)
            dest += np.diff(seg.offsets)
        return cls(offsets, slots, segments[0].first_slot, segments[-1].end_slot)


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
    def from_arrays(
        cls, offsets: np.ndarray, slots: np.ndarray, n_slots: int | None = None
    ) -> InvertedLists:
        """Inverse of :meth:`arrays` (the arrays may be memory-mapped).

        Args:
            offsets: Per-centroid offsets into ``slots``.
            slots: The listed slots.
            n_slots: Slots of the store (every listed slot is below it); None reads ``slots``.
        """
        end = (int(slots.max()) + 1 if len(slots) else 0) if n_slots is None else int(n_slots)
        return cls(len(offsets) - 1, (_Segment(offsets, slots, 0, end),))
