"""A copy of an index's token store resident on a device (a GPU), where MaxSim runs.

Layout: documents are grouped into *length buckets* (lengths 1, 2, 3, 4, 6, 8, 12, ... so a
document wastes at most a third of its bucket). A bucket is one padded tensor ``(n, L, ...)`` whose
padding repeats the document's own last token: a repeated token cannot change a max, so no mask
is ever built or applied (``_torch_maxsim.padded_maxsim``). An exact store keeps its float16/32
vectors; a compressed store keeps its centroid ids and packed residuals and is decoded on the
device, bucket by bucket, as it is scored.

The mirror follows the append-only :class:`~late_interaction._index.token_store.TokenStore`:
``sync`` uploads only the slots published since the last sync, so a search after an ``add`` costs
one upload of the new documents. Deleted slots stay on the device (the snapshot's live mask hides
them) until ``compact`` builds a new store, which gets a new mirror.
"""

from __future__ import annotations

import math
import threading
import weakref
from typing import Any

import numpy as np
import torch

from late_interaction._index.snapshot import Snapshot
from late_interaction._torch_maxsim import padded_maxsim

# Slots uploaded per step of a sync: bounds the host-side gather (n x L x dim) it builds.
_SYNC_SLOTS = 16_384
# Decoded vectors per scoring step of a compressed bucket: bounds the device scratch space.
_DECODE_ROWS = 1 << 20
_MIRRORS: weakref.WeakKeyDictionary[Any, dict[str, DeviceMirror]] = weakref.WeakKeyDictionary()
_MIRRORS_LOCK = threading.Lock()


def bucket_length(n_tokens: int) -> int:
    """Smallest bucket length >= ``n_tokens``: 1, 2, 3, 4, 6, 8, 12, 16, 24, ..."""
    if n_tokens <= 2:
        return max(n_tokens, 1)
    power = 1 << (n_tokens - 1).bit_length()  # next power of two
    three_quarters = 3 * power // 4
    return three_quarters if n_tokens <= three_quarters else power


def mirror_for(store: Any, device: torch.device) -> DeviceMirror:
    """The mirror of ``store`` on ``device`` (created on first use, dropped with the store)."""
    with _MIRRORS_LOCK:
        per_device = _MIRRORS.setdefault(store, {})
        key = str(device)
        if key not in per_device:
            per_device[key] = DeviceMirror(device, store.codec)
        return per_device[key]


class _Bucket:
    """Documents of one padded length: payload tensors ``(capacity, length, ...)``.

    ``payload["slots"]`` (on the device) holds each row's slot number.
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self.n = 0
        self.payload: dict[str, torch.Tensor] = {}

    def append(self, slots: torch.Tensor, payload: dict[str, torch.Tensor]) -> None:
        start, end = self.n, self.n + len(slots)
        payload = {**payload, "slots": slots}
        for name, rows in payload.items():
            held = self.payload.get(name)
            if held is None or held.shape[0] < end:  # grow by doubling, amortised O(1) per slot
                grown = rows.new_empty((max(end, 2 * start, 16), *rows.shape[1:]))
                if held is not None:
                    grown[:start] = held[:start]
                self.payload[name] = grown
            self.payload[name][start:end] = rows
        self.n = end


class DeviceMirror:
    """The device copy of one token store, in length buckets; thread-safe.

    Args:
        device: Where the copy lives and MaxSim runs.
        codec: The store's residual codec (None: an exact store).
    """

    def __init__(self, device: torch.device, codec: Any = None) -> None:
        self.device = device
        self.codec = codec
        self.n_slots = 0
        self.buckets: dict[int, _Bucket] = {}
        self.slot_bucket = np.empty(0, dtype=np.int32)  # slot -> bucket length
        self.slot_row = np.empty(0, dtype=np.int64)  # slot -> row within its bucket
        self._lock = threading.Lock()
        self._mask: tuple[np.ndarray, torch.Tensor] | None = None  # last mask and its upload
        self.dense: torch.Tensor | None = None  # documents' dense vectors (fused score), by slot
        if codec is not None:
            self._centroids = torch.as_tensor(codec.centroids, device=device)
            self._lut = torch.as_tensor(codec._lut, device=device)  # byte -> residual values

    def nbytes(self) -> int:
        """Device bytes held by the payload tensors."""
        tensors = [t for bucket in self.buckets.values() for t in bucket.payload.values()]
        return sum(t.numel() * t.element_size() for t in tensors)

    def sync(self, snap: Snapshot) -> None:
        """Upload the slots of ``snap`` that the mirror does not hold yet."""
        n_slots = snap.offsets.shape[0] - 1
        if n_slots <= self.n_slots:
            return
        with self._lock:
            first = self.n_slots
            for start in range(self.n_slots, n_slots, _SYNC_SLOTS):
                self._upload(snap, np.arange(start, min(start + _SYNC_SLOTS, n_slots)))
            if snap.docs.dense is not None:  # the fused score's document side
                rows = torch.as_tensor(snap.docs.dense.rows(np.arange(first, n_slots)))
                rows = rows.to(self.device)
                held = self.dense[:first] if self.dense is not None else rows[:0]
                self.dense = torch.cat([held, rows])

    def _upload(self, snap: Snapshot, slots: np.ndarray) -> None:
        starts = snap.offsets[slots]
        lengths = snap.offsets[slots + 1] - starts
        blens = np.fromiter((bucket_length(int(n)) for n in lengths), np.int32, len(slots))
        rows = np.empty(len(slots), dtype=np.int64)
        for blen in np.unique(blens).tolist():
            chosen = np.flatnonzero(blens == blen)
            bucket = self.buckets.setdefault(blen, _Bucket(blen))
            # Row indices padded by repeating each document's last token (no mask needed).
            index = starts[chosen, None] + np.minimum(np.arange(blen), lengths[chosen, None] - 1)
            rows[chosen] = bucket.n + np.arange(len(chosen))
            slot_ids = torch.as_tensor(slots[chosen], device=self.device)
            bucket.append(slot_ids, self._payload(snap, index))
        self.slot_bucket = np.concatenate([self.slot_bucket, blens])
        self.slot_row = np.concatenate([self.slot_row, rows])
        self.n_slots = int(slots[-1]) + 1

    def _payload(self, snap: Snapshot, index: np.ndarray) -> dict[str, torch.Tensor]:
        flat = index.reshape(-1)
        if self.codec is None:
            vectors = np.asarray(snap.tokens[flat]).reshape(*index.shape, -1)
            return {"vectors": torch.from_numpy(vectors).to(self.device)}
        codes = np.asarray(snap.codes[flat]).astype(np.int32).reshape(index.shape)
        residuals = np.asarray(snap.tokens.residuals[flat]).reshape(*index.shape, -1)
        return {
            "codes": torch.from_numpy(codes).to(self.device),
            "residuals": torch.from_numpy(residuals).to(self.device),
        }

    def _vectors(self, bucket: _Bucket, rows: slice | torch.Tensor) -> torch.Tensor:
        """Document vectors of ``bucket[rows]`` on the device, decoded if compressed."""
        if self.codec is None:
            return bucket.payload["vectors"][rows]
        codes, packed = bucket.payload["codes"][rows], bucket.payload["residuals"][rows]
        dim = self._centroids.shape[1]
        out = self._lut[packed.long()].reshape(*packed.shape[:2], -1)[..., :dim]
        out = out + self._centroids[codes.long()]
        out = torch.nn.functional.normalize(out, dim=-1)
        return out.half() if self.device.type != "cpu" else out

    def _chunks(self, bucket: _Bucket) -> list[slice]:
        if self.codec is None:
            return [slice(0, bucket.n)]
        step = max(1, _DECODE_ROWS // bucket.length)
        return [slice(a, min(a + step, bucket.n)) for a in range(0, bucket.n, step)]

    def device_mask(self, mask: np.ndarray) -> torch.Tensor:
        """``mask`` on the device; the upload is reused while the same array is asked for.

        A snapshot's live mask is one array for the snapshot's life, so a series of searches
        uploads it once.
        """
        cached = self._mask
        if cached is None or cached[0] is not mask:
            cached = (mask, torch.as_tensor(mask, device=self.device))
            self._mask = cached
        return cached[1]

    def score_all(self, queries: torch.Tensor) -> torch.Tensor:
        """Exact MaxSim of each query against every synced slot.

        Args:
            queries: ``(n_queries, n_query_tokens, dim)`` on the device, zero-row padded.

        Returns:
            float32 scores ``(n_queries, n_slots)`` on the device.
        """
        with self._lock:  # a concurrent sync must not grow a bucket mid-read
            return self._score_all(queries)

    def _score_all(self, queries: torch.Tensor) -> torch.Tensor:
        out = torch.empty(queries.shape[0], self.n_slots, device=self.device)
        for bucket in self.buckets.values():
            slots = bucket.payload["slots"]
            for rows in self._chunks(bucket):
                out[:, slots[rows]] = padded_maxsim(queries, self._vectors(bucket, rows))
        return out

    def dense_cosines(self, query_dense: np.ndarray) -> torch.Tensor:
        """Dot products of ``(n_queries, dense_dim)`` unit vectors with every slot's dense vector.

        Raises:
            ValueError: If the store's documents have no dense vectors.
        """
        if self.dense is None:
            msg = "this index keeps no dense vectors; it cannot fuse a dense score."
            raise ValueError(msg)
        with self._lock:
            return (
                torch.as_tensor(query_dense, dtype=torch.float32, device=self.device) @ self.dense.T
            )

    def score_slots(self, query: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Exact MaxSim of one query ``(n_query_tokens, dim)`` against chosen slots.

        Returns:
            float32 numpy scores aligned with ``slots``.
        """
        with self._lock:
            return self._score_slots(query, slots)

    def _score_slots(self, query: np.ndarray, slots: np.ndarray) -> np.ndarray:
        queries = torch.as_tensor(query, dtype=torch.float32, device=self.device)[None]
        out = torch.empty(len(slots), device=self.device)
        blens = self.slot_bucket[slots]
        for blen in np.unique(blens).tolist():
            chosen = np.flatnonzero(blens == blen)
            bucket = self.buckets[blen]
            rows = torch.as_tensor(self.slot_row[slots[chosen]], device=self.device)
            scores = padded_maxsim(queries, self._vectors(bucket, rows))[0]
            out[torch.as_tensor(chosen, device=self.device)] = scores
        return out.cpu().numpy()


def fits(snap: Snapshot, device: torch.device, headroom: float = 0.8) -> bool:
    """Whether a mirror of ``snap`` (padded: at most 1.5x the store's rows) fits in free memory."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    if snap.codec is None:
        per_token = snap.tokens.shape[1] * snap.tokens.dtype.itemsize
    else:
        per_token = 4 + snap.codec.packed_width
    needed = math.ceil(snap.tokens.shape[0] * per_token * 1.5)
    return needed <= headroom * free
